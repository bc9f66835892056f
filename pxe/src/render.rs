//! The files loaders fetch to learn what to boot, rendered from profiles.
//!
//! Paths served (all relative to the TFTP root):
//!
//! - `pxelinux.cfg/01-<mac>`: pxelinux asks this first after its UUID file
//!   (`01` is the ARP hardware type of Ethernet, the MAC is lower-case hex
//!   with dashes); rendered from the host's profile, so pxelinux stops there
//!   instead of walking the IP-hex names.
//! - `pxelinux.cfg/default`: the default profile.
//! - `<stem>-01-<mac>.ipxe` next to `[pxe] ipxe_script` (`boot-01-<mac>.ipxe`
//!   for `boot.ipxe`): the host's iPXE script. labnet-dhcpd names it in the
//!   reply to an iPXE client whose host has a profile, keyed on the MAC the
//!   client sent, so it works through relays and does not depend on the
//!   lease having reached the store before the TFTP request.
//!
//! `ipxe_script` itself is never generated: a host without a profile is
//! handed that name and gets the file on disk, if the root has one.
//! Likewise a host without a profile gets no `pxelinux.cfg/01-<mac>`, and
//! without a default profile there is no generated `pxelinux.cfg/default`:
//! pxelinux then walks on to the files in the root.
//!
//! pxelinux.0 is expected at the TFTP root (its `pxelinux.cfg/` is looked up
//! next to it). Profile paths are relative to the root; the iPXE scripts
//! climb back to it when `ipxe_script` sits in a subdirectory. With `[http]`
//! (`PxeConfig::http_base`) the iPXE scripts name kernel and initrd by
//! absolute `http://` URL instead, so they load over HTTP however the
//! script itself arrived; pxelinux configs stay TFTP (pxelinux.0 has no
//! HTTP client).

use labnet_config::PxeConfig;
use labnet_store::BootProfile;

use crate::{ProfileBook, PxeError};

/// Longest kernel command line we render; x86 Linux takes 2048 bytes
/// (COMMAND_LINE_SIZE) and the loaders add `initrd=` and `BOOT_IMAGE=`.
const MAX_CMDLINE: usize = 1900;

/// A path labnet-pxe generates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeneratedPath {
    /// `pxelinux.cfg/default`
    PxelinuxDefault,
    /// `pxelinux.cfg/01-<mac>`, with the MAC as `aa:bb:cc:dd:ee:ff`.
    PxelinuxHost(String),
    /// The per-host iPXE script, with the MAC as `aa:bb:cc:dd:ee:ff`.
    IpxeHost(String),
}

/// `52-54-00-12-34-56` (any case) → `52:54:00:12:34:56`.
fn mac_from_dashes(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| parts.join(":").to_ascii_lowercase())
}

/// `(directory with trailing slash, stem)` of the iPXE script path.
fn script_parts(cfg: &PxeConfig) -> (&str, &str) {
    let s = cfg.ipxe_script.trim_start_matches('/');
    let (dir, file) = match s.rfind('/') {
        Some(i) => s.split_at(i + 1),
        None => ("", s),
    };
    let stem = file.strip_suffix(".ipxe").unwrap_or(file);
    (dir, stem)
}

/// Where the per-host iPXE script of `mac` (`aa:bb:cc:dd:ee:ff`) lives.
pub fn ipxe_host_script_path(cfg: &PxeConfig, mac: &str) -> String {
    let (dir, stem) = script_parts(cfg);
    format!(
        "{dir}{stem}-01-{}.ipxe",
        mac.replace(':', "-").to_ascii_lowercase()
    )
}

impl GeneratedPath {
    /// Recognise a requested path (leading `/` ignored).
    pub fn parse(path: &str, cfg: &PxeConfig) -> Option<GeneratedPath> {
        let path = path.trim_start_matches('/');
        if let Some(name) = path.strip_prefix("pxelinux.cfg/") {
            if name == "default" {
                return Some(GeneratedPath::PxelinuxDefault);
            }
            return mac_from_dashes(name.strip_prefix("01-")?).map(GeneratedPath::PxelinuxHost);
        }
        let (dir, stem) = script_parts(cfg);
        let mac = path
            .strip_prefix(dir)?
            .strip_prefix(stem)?
            .strip_prefix("-01-")?
            .strip_suffix(".ipxe")?;
        mac_from_dashes(mac).map(GeneratedPath::IpxeHost)
    }
}

fn bad(p: &BootProfile, reason: impl Into<String>) -> PxeError {
    PxeError::BadProfile {
        name: p.name.clone(),
        reason: reason.into(),
    }
}

/// Refuse a profile that cannot be written into a pxelinux config or an
/// iPXE script as it stands: a control character (a newline would start a
/// new directive), blanks in a path, or an overlong command line.
pub fn check_profile(p: &BootProfile) -> Result<(), PxeError> {
    let name_ok = !p.name.is_empty()
        && p.name.len() <= 64
        && p.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(bad(p, "a name is 1-64 letters, digits, `.`, `_` or `-`"));
    }
    let paths = [
        ("kernel", Some(&p.kernel)),
        ("initrd", p.initrd.as_ref()),
        ("bios loader", p.bios_loader.as_ref()),
        ("uefi loader", p.uefi_loader.as_ref()),
        ("uefi32 loader", p.uefi32_loader.as_ref()),
    ];
    for (what, path) in paths {
        if let Some(path) = path {
            if path.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(
                    p,
                    format!("the {what} path `{path}` is empty or has blanks"),
                ));
            }
        }
    }
    if p.cmdline.chars().any(char::is_control) {
        return Err(bad(p, "the command line has a control character"));
    }
    if p.cmdline.len() > MAX_CMDLINE {
        return Err(bad(
            p,
            format!("the command line is longer than {MAX_CMDLINE} bytes"),
        ));
    }
    Ok(())
}

/// A pxelinux config that boots `p` at once.
pub fn pxelinux_config(p: &BootProfile) -> String {
    let mut s = format!(
        "# labnet boot profile `{}` (generated: change it with labnetctl profiles)\n\
         DEFAULT labnet\nPROMPT 0\nTIMEOUT 0\nLABEL labnet\n  KERNEL {}\n",
        p.name, p.kernel
    );
    if let Some(initrd) = &p.initrd {
        s.push_str(&format!("  INITRD {initrd}\n"));
    }
    if !p.cmdline.is_empty() {
        s.push_str(&format!("  APPEND {}\n", p.cmdline));
    }
    s
}

/// The iPXE script that boots `p`, to be served at `script_path`. With
/// `http_base` (`[http] url`), kernel and initrd are fetched over HTTP from
/// there, whichever protocol brought the script.
pub fn ipxe_host_script(p: &BootProfile, script_path: &str, http_base: Option<&str>) -> String {
    let up = match http_base {
        // Profile paths are relative to the root, which HTTP serves at `/`.
        Some(base) => format!("{base}/"),
        None => {
            // Relative URIs resolve against the script's own URI: climb
            // back to the TFTP root, where profile paths start.
            let depth = script_path.trim_start_matches('/').matches('/').count();
            "../".repeat(depth)
        }
    };
    let mut kernel_line = format!("kernel {up}{}", p.kernel);
    if let Some(initrd) = &p.initrd {
        // iPXE's EFI build hands the initrd to the kernel's EFI stub only
        // when the command line names it (`initrd=<image name>`; the image
        // name is the last path component).
        let name = initrd.rsplit('/').next().unwrap_or(initrd);
        kernel_line.push_str(&format!(" initrd={name}"));
    }
    if !p.cmdline.is_empty() {
        kernel_line.push(' ');
        kernel_line.push_str(&p.cmdline);
    }
    let mut s = format!(
        "#!ipxe\n# labnet boot profile `{}` (generated: change it with labnetctl profiles)\n{kernel_line}\n",
        p.name
    );
    if let Some(initrd) = &p.initrd {
        s.push_str(&format!("initrd {up}{initrd}\n"));
    }
    s.push_str("boot\n");
    s
}

/// The bytes of a generated file, or `None` when `path` is not one (or the
/// host has no profile and there is no default).
pub fn generated_file(book: &ProfileBook, cfg: &PxeConfig, path: &str) -> Option<Vec<u8>> {
    let which = GeneratedPath::parse(path, cfg)?;
    let profile = match &which {
        GeneratedPath::PxelinuxDefault => book.default_profile(),
        GeneratedPath::PxelinuxHost(mac) | GeneratedPath::IpxeHost(mac) => book.profile_for(mac),
    }?;
    if let Err(e) = check_profile(profile) {
        tracing::warn!(path, error = %e, "not serving a boot profile that cannot be rendered");
        return None;
    }
    let text = match &which {
        GeneratedPath::IpxeHost(_) => ipxe_host_script(profile, path, cfg.http_base.as_deref()),
        _ => pxelinux_config(profile),
    };
    Some(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cfg, profile};
    use labnet_store::{HostProfile, Reservation, ReservationKey};
    use std::net::Ipv4Addr;

    fn book() -> ProfileBook {
        ProfileBook::new(
            vec![
                profile("rescue", "console=ttyS0 r"),
                profile("alt", "console=ttyS0 a"),
            ],
            &[Reservation {
                key: ReservationKey::Mac("52:54:00:00:00:02".into()),
                ip: Ipv4Addr::new(10, 77, 0, 12),
                hostname: None,
                profile: Some("alt".into()),
            }],
            &[HostProfile {
                mac: "52:54:00:00:00:03".into(),
                profile: "alt".into(),
            }],
            Some("rescue".into()),
        )
    }

    fn text(path: &str) -> Option<String> {
        generated_file(&book(), &cfg(), path).map(|b| String::from_utf8(b).expect("utf8"))
    }

    #[test]
    fn paths_are_recognised() {
        let c = cfg();
        let p = |s: &str| GeneratedPath::parse(s, &c);
        assert_eq!(
            p("pxelinux.cfg/default"),
            Some(GeneratedPath::PxelinuxDefault)
        );
        assert_eq!(
            p("/pxelinux.cfg/01-52-54-00-AB-cd-ef"),
            Some(GeneratedPath::PxelinuxHost("52:54:00:ab:cd:ef".into()))
        );
        assert_eq!(
            p("boot-01-52-54-00-ab-cd-ef.ipxe"),
            Some(GeneratedPath::IpxeHost("52:54:00:ab:cd:ef".into()))
        );
        // pxelinux's other guesses, and anything else, are not ours.
        for other in [
            "pxelinux.cfg/0A4D006F",
            "pxelinux.cfg/564d4c2a-1111",
            "pxelinux.cfg/01-52-54-00",
            "pxelinux.cfg/02-52-54-00-ab-cd-ef",
            "boot-01-52-54-00-ab-cd-zz.ipxe",
            "vmlinuz",
            "pxelinux.0",
            // The admin's own script, served from the root.
            "boot.ipxe",
        ] {
            assert_eq!(p(other), None, "{other}");
        }
    }

    #[test]
    fn pxelinux_files_follow_the_host_profile() {
        let host = text("pxelinux.cfg/01-52-54-00-00-00-02").expect("host");
        assert!(host.contains("KERNEL vmlinuz\n"), "{host}");
        assert!(host.contains("INITRD initrd.img\n"), "{host}");
        assert!(host.contains("APPEND console=ttyS0 a\n"), "{host}");
        // Mapping without reservation, then default for an unknown host.
        assert!(text("pxelinux.cfg/01-52-54-00-00-00-03")
            .expect("mapped")
            .contains("APPEND console=ttyS0 a\n"));
        assert!(text("pxelinux.cfg/01-52-54-00-00-00-09")
            .expect("default")
            .contains("APPEND console=ttyS0 r\n"));
        assert!(text("pxelinux.cfg/default")
            .expect("default")
            .contains("APPEND console=ttyS0 r\n"));
    }

    #[test]
    fn ipxe_host_script_boots_the_profile() {
        assert_eq!(
            ipxe_host_script_path(&cfg(), "52:54:00:00:00:02"),
            "boot-01-52-54-00-00-00-02.ipxe"
        );
        let host = text("boot-01-52-54-00-00-00-02.ipxe").expect("host");
        assert_eq!(
            host.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            vec![
                "kernel vmlinuz initrd=initrd.img console=ttyS0 a",
                "initrd initrd.img",
                "boot"
            ]
        );
        assert!(host.starts_with("#!ipxe\n"));
    }

    #[test]
    fn ipxe_script_in_a_subdirectory_climbs_to_the_root() {
        let c = PxeConfig {
            ipxe_script: "ipxe/boot.ipxe".into(),
            ..cfg()
        };
        assert_eq!(
            ipxe_host_script_path(&c, "52:54:00:00:00:02"),
            "ipxe/boot-01-52-54-00-00-00-02.ipxe"
        );
        let b = book();
        let host = generated_file(&b, &c, "ipxe/boot-01-52-54-00-00-00-02.ipxe").expect("host");
        let host = String::from_utf8(host).expect("utf8");
        assert!(
            host.contains("kernel ../vmlinuz initrd=initrd.img"),
            "{host}"
        );
        assert!(host.contains("initrd ../initrd.img\n"), "{host}");
        assert!(generated_file(&b, &c, "ipxe/boot.ipxe").is_none());
        assert!(generated_file(&b, &c, "boot-01-52-54-00-00-00-02.ipxe").is_none());
    }

    #[test]
    fn with_http_the_script_fetches_over_http() {
        let c = PxeConfig {
            ipxe_script: "ipxe/boot.ipxe".into(),
            http_base: Some("http://10.77.0.1:8080".into()),
            ..cfg()
        };
        let host =
            generated_file(&book(), &c, "ipxe/boot-01-52-54-00-00-00-02.ipxe").expect("host");
        let host = String::from_utf8(host).expect("utf8");
        assert!(
            host.contains(
                "kernel http://10.77.0.1:8080/vmlinuz initrd=initrd.img console=ttyS0 a\n"
            ),
            "{host}"
        );
        assert!(
            host.contains("initrd http://10.77.0.1:8080/initrd.img\n"),
            "{host}"
        );
    }

    #[test]
    fn no_profile_no_file() {
        let empty = ProfileBook::new(vec![], &[], &[], None);
        let c = cfg();
        assert_eq!(generated_file(&empty, &c, "pxelinux.cfg/default"), None);
        assert_eq!(
            generated_file(&empty, &c, "pxelinux.cfg/01-52-54-00-00-00-01"),
            None
        );
        assert_eq!(
            generated_file(&empty, &c, "boot-01-52-54-00-00-00-01.ipxe"),
            None
        );
        // Whatever the profiles, `ipxe_script` comes from the root.
        assert_eq!(generated_file(&empty, &c, "boot.ipxe"), None);
        assert_eq!(generated_file(&book(), &c, "boot.ipxe"), None);
    }

    #[test]
    fn profiles_that_would_inject_are_refused() {
        assert!(check_profile(&profile("ok-1.2_3", "a b=c")).is_ok());
        assert!(check_profile(&profile("bad name", "")).is_err());
        assert!(check_profile(&profile("", "")).is_err());
        assert!(check_profile(&profile("x", "quiet\nLABEL evil")).is_err());
        assert!(check_profile(&profile("x", &"a".repeat(MAX_CMDLINE + 1))).is_err());
        let mut p = profile("x", "");
        p.kernel = "vm linuz".into();
        assert!(check_profile(&p).is_err());
        // A bad profile in the store is not served.
        let b = ProfileBook::new(
            vec![profile("rescue", "a\nb")],
            &[],
            &[],
            Some("rescue".into()),
        );
        assert_eq!(generated_file(&b, &cfg(), "pxelinux.cfg/default"), None);
    }
}
