//! The boot decision: which boot file and server a DHCP reply carries.
//!
//! | client (options 60, 77/175)          | arch (93)       | gets                          |
//! |--------------------------------------|-----------------|-------------------------------|
//! | iPXE                                 | BIOS, loader is pxelinux | the BIOS loader (pxelinux) |
//! | iPXE, host has a profile             | any other       | the host's generated iPXE script |
//! | iPXE, no profile                     | any other       | `ipxe_script` (from the root) |
//! | `PXEClient` (firmware PXE ROM)       | 0 BIOS          | BIOS loader                   |
//! | `PXEClient`                          | 6 IA32 UEFI     | IA32 UEFI loader              |
//! | `PXEClient`                          | 7, 9, 16 x64 UEFI | x64 UEFI loader             |
//! | `PXEClient`                          | other           | nothing                       |
//! | `HTTPClient`                         | any             | `http_boot_url`, else `<[http] url>/<arch loader>` |
//! | anything else                        | —               | nothing (not a boot client)   |
//!
//! The loader comes from the host's profile when it overrides the arch's
//! loader, else from `[pxe]`. A client already running iPXE never gets an
//! iPXE loader again: that would chainload forever. On BIOS it may get
//! pxelinux, which does no DHCP of its own, so BIOS hosts boot through their
//! `pxelinux.cfg` whether their NIC ROM is a plain PXE ROM or iPXE.
//!
//! An iPXE client whose host has a profile (its own, or the default one) is
//! named its generated script, `boot-01-<mac>.ipxe`, outright. One without
//! a profile is named `[pxe] ipxe_script` itself, which labnet never
//! generates: a TFTP root that already holds its own `boot.ipxe` (as every
//! dnsmasq or netboot.xyz lab does) boots exactly as it did before labnet.

use std::net::Ipv4Addr;

use labnet_config::PxeConfig;
use labnet_store::BootProfile;

use crate::ipxe_host_script_path;

/// Client system architecture, option 93 (RFC 4578 §2.1 and the IANA
/// "Processor Architecture Types" registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientArch {
    /// 0: Intel x86PC (BIOS).
    Bios,
    /// 6: EFI IA32.
    Uefi32,
    /// 7 and 9: EFI x86-64. RFC 4578 lists 7 as "EFI BC" and 9 as "EFI
    /// x86-64", but x64 firmware (OVMF, most PCs) sends 7 and some sends 9
    /// (RFC 4578 errata 4624), so both mean x64 UEFI.
    Uefi64,
    /// 16: x64 UEFI HTTP boot (IANA registry).
    Uefi64Http,
    /// Anything else (ARM, Itanium, ...): we have no loader for it.
    Unknown(u16),
}

impl ClientArch {
    /// The arch an option 93 value names.
    pub fn from_code(code: u16) -> ClientArch {
        match code {
            0 => ClientArch::Bios,
            6 => ClientArch::Uefi32,
            7 | 9 => ClientArch::Uefi64,
            16 => ClientArch::Uefi64Http,
            n => ClientArch::Unknown(n),
        }
    }
}

/// What kind of boot client sent the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientClass {
    /// A firmware PXE client: vendor class `PXEClient...` (PXE spec 2.1 §2.2).
    Pxe,
    /// UEFI HTTP boot: vendor class `HTTPClient...` (UEFI spec §24.7).
    Http,
    /// iPXE (a NIC ROM, or a loader we handed out): user class `iPXE`
    /// (option 77) or iPXE's encapsulated option 175.
    Ipxe,
}

/// The parts of a DHCP request that the decision reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootRequest {
    /// Option 93 (the first value, when a client lists several).
    pub arch: Option<u16>,
    /// Option 60.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 77.
    pub user_class: Option<Vec<u8>>,
    /// Option 175 (iPXE's encapsulated options) was present.
    pub ipxe_encap: bool,
}

impl BootRequest {
    /// What kind of boot client this is; `None` for an ordinary DHCP client.
    pub fn client_class(&self) -> Option<ClientClass> {
        // iPXE sends user class "iPXE" as bare bytes, not in RFC 3004's
        // length-prefixed form, so look for it anywhere in the option.
        let ipxe_user_class = self
            .user_class
            .as_deref()
            .is_some_and(|u| u.windows(4).any(|w| w == b"iPXE"));
        if ipxe_user_class || self.ipxe_encap {
            return Some(ClientClass::Ipxe);
        }
        let vc = self.vendor_class.as_deref()?;
        if vc.starts_with(b"PXEClient") {
            Some(ClientClass::Pxe)
        } else if vc.starts_with(b"HTTPClient") {
            Some(ClientClass::Http)
        } else {
            None
        }
    }

    /// The client's arch: option 93; else the `Arch:xxxxx` field of the
    /// vendor class (PXE spec 2.1 §2.2.1); else BIOS, since PXE ROMs that
    /// send neither predate UEFI.
    pub fn client_arch(&self) -> ClientArch {
        if let Some(code) = self.arch {
            return ClientArch::from_code(code);
        }
        let from_vc = self
            .vendor_class
            .as_deref()
            .and_then(|vc| std::str::from_utf8(vc).ok())
            .and_then(|vc| {
                let mut it = vc.split(':');
                while let Some(field) = it.next() {
                    if field == "Arch" {
                        return it.next()?.parse::<u16>().ok();
                    }
                }
                None
            });
        ClientArch::from_code(from_vc.unwrap_or(0))
    }
}

/// What the boot file in a decision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootFileKind {
    /// A network boot program for the client's firmware (pxelinux.0, ipxe.efi).
    Loader,
    /// The iPXE script, for a client already running iPXE.
    IpxeScript,
    /// A URI, for UEFI HTTP boot.
    HttpUri,
}

/// What a DHCP reply to a boot client carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDecision {
    /// `siaddr` (RFC 2131 §2: "next server to use in bootstrap").
    pub next_server: Ipv4Addr,
    /// Option 66, TFTP server name (RFC 2132 §9.4): the same server, as text.
    pub tftp_server: String,
    /// `file` and option 67 (RFC 2132 §9.5). A name of 128 bytes or more
    /// does not fit `file`; only option 67 can carry it.
    pub boot_file: String,
    pub kind: BootFileKind,
    /// Option 60 to put in the reply: `HTTPClient` for UEFI HTTP boot
    /// (UEFI spec §24.7.2), never `PXEClient` (see [`decide`]).
    pub vendor_class: Option<&'static str>,
}

/// pxelinux (and lpxelinux/gpxelinux) never send a DHCP request of their
/// own: they read the reply their PXE stack cached (PXENV_GET_CACHED_INFO,
/// PXE spec 2.1 §3.2), so handing one to iPXE cannot chainload in a loop.
fn is_pxelinux(file: &str) -> bool {
    file.rsplit('/')
        .next()
        .is_some_and(|base| base.ends_with("pxelinux.0"))
}

/// The loader for `arch`: the profile's override, else the config's.
fn loader<'a>(
    arch: ClientArch,
    cfg: &'a PxeConfig,
    profile: Option<&'a BootProfile>,
) -> Option<&'a str> {
    let (over, base) = match arch {
        ClientArch::Bios => (
            profile.and_then(|p| p.bios_loader.as_deref()),
            &cfg.bios_boot_file,
        ),
        ClientArch::Uefi32 => (
            profile.and_then(|p| p.uefi32_loader.as_deref()),
            &cfg.uefi32_boot_file,
        ),
        ClientArch::Uefi64 | ClientArch::Uefi64Http => (
            profile.and_then(|p| p.uefi_loader.as_deref()),
            &cfg.uefi_boot_file,
        ),
        ClientArch::Unknown(_) => return None,
    };
    Some(over.unwrap_or(base))
}

/// Decide what a boot client gets; `None` when the request is not from a
/// boot client or we have nothing for it. `mac` (`aa:bb:cc:dd:ee:ff`) and
/// `profile` are the host's hardware address and profile (see
/// [`crate::ProfileBook::profile_for`]): the profile's loader overrides, and
/// whether an iPXE client gets its generated script or the one on disk.
pub fn decide(
    req: &BootRequest,
    cfg: &PxeConfig,
    mac: &str,
    profile: Option<&BootProfile>,
) -> Option<BootDecision> {
    let class = req.client_class()?;
    let arch = req.client_arch();
    let (boot_file, kind) = match class {
        ClientClass::Ipxe => match loader(arch, cfg, profile) {
            Some(l) if arch == ClientArch::Bios && is_pxelinux(l) => {
                (l.to_owned(), BootFileKind::Loader)
            }
            _ => match profile {
                Some(_) => (ipxe_host_script_path(cfg, mac), BootFileKind::IpxeScript),
                None => (cfg.ipxe_script.clone(), BootFileKind::IpxeScript),
            },
        },
        ClientClass::Pxe => (loader(arch, cfg, profile)?.to_owned(), BootFileKind::Loader),
        // UEFI spec 2.x §24.7.2: the boot file is a URI. Without one
        // configured, the x64 loader from labnet's own HTTP server.
        ClientClass::Http => {
            let uri = match (&cfg.http_boot_url, &cfg.http_base) {
                (Some(u), _) => u.clone(),
                (None, Some(base)) => {
                    let l = loader(arch, cfg, profile)?;
                    format!("{base}/{}", l.trim_start_matches('/'))
                }
                (None, None) => return None,
            };
            (uri, BootFileKind::HttpUri)
        }
    };
    // Only UEFI HTTP clients need their class echoed (UEFI spec §24.7.2:
    // offers without option 60 "HTTPClient" are ignored). A PXE client must
    // NOT get "PXEClient" back in a full DHCP offer unless the server also
    // answers boot-server discovery on port 4011: PXE spec 2.1 §2.2.5 makes
    // such an offer one from a PXE-aware server, and without vendor options
    // (43) the client then asks a boot server for its file — EDK2 sorts it
    // as a "DhcpBinl" offer and gives up with PXE-E16 when 4011 is silent.
    // A plain offer carrying the boot file is what every PXE ROM accepts.
    let vendor_class = (class == ClientClass::Http).then_some("HTTPClient");
    Some(BootDecision {
        next_server: cfg.tftp_server,
        tftp_server: cfg.tftp_server.to_string(),
        boot_file,
        kind,
        vendor_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::cfg;

    fn pxe(arch: u16) -> BootRequest {
        BootRequest {
            arch: Some(arch),
            vendor_class: Some(format!("PXEClient:Arch:{arch:05}:UNDI:003000").into_bytes()),
            ..BootRequest::default()
        }
    }

    /// What Debian's iPXE NIC ROMs send: PXEClient, user class iPXE, 175.
    fn ipxe(arch: u16) -> BootRequest {
        BootRequest {
            user_class: Some(b"iPXE".to_vec()),
            ipxe_encap: true,
            ..pxe(arch)
        }
    }

    const MAC: &str = "52:54:00:ab:cd:ef";

    fn file(req: &BootRequest, cfg: &PxeConfig) -> Option<(String, BootFileKind)> {
        decide(req, cfg, MAC, None).map(|d| (d.boot_file, d.kind))
    }

    fn loader(f: &str) -> Option<(String, BootFileKind)> {
        Some((f.into(), BootFileKind::Loader))
    }

    fn script() -> Option<(String, BootFileKind)> {
        Some(("boot.ipxe".into(), BootFileKind::IpxeScript))
    }

    #[test]
    fn option_93_codes() {
        assert_eq!(ClientArch::from_code(0), ClientArch::Bios);
        assert_eq!(ClientArch::from_code(6), ClientArch::Uefi32);
        assert_eq!(ClientArch::from_code(7), ClientArch::Uefi64);
        assert_eq!(ClientArch::from_code(9), ClientArch::Uefi64);
        assert_eq!(ClientArch::from_code(16), ClientArch::Uefi64Http);
        assert_eq!(ClientArch::from_code(11), ClientArch::Unknown(11));
        assert_eq!(ClientArch::from_code(2), ClientArch::Unknown(2));
    }

    #[test]
    fn plain_pxe_roms_get_their_arch_loader() {
        let c = cfg();
        assert_eq!(file(&pxe(0), &c), loader("pxelinux.0"));
        assert_eq!(file(&pxe(6), &c), loader("ipxe-i386.efi"));
        assert_eq!(file(&pxe(7), &c), loader("ipxe.efi"));
        assert_eq!(file(&pxe(9), &c), loader("ipxe.efi"));
        // An arch we have no loader for gets no boot file at all.
        assert_eq!(file(&pxe(11), &c), None);
    }

    #[test]
    fn ipxe_gets_the_script_never_the_loader_again() {
        let c = cfg();
        for arch in [6, 7, 9, 16, 11] {
            assert_eq!(file(&ipxe(arch), &c), script(), "arch {arch}");
        }
        // Either marker alone is enough.
        let only_77 = BootRequest {
            ipxe_encap: false,
            ..ipxe(7)
        };
        let only_175 = BootRequest {
            user_class: None,
            ..ipxe(7)
        };
        assert_eq!(file(&only_77, &c), script());
        assert_eq!(file(&only_175, &c), script());
        // RFC 3004 length-prefixed form too.
        let rfc3004 = BootRequest {
            user_class: Some(b"\x04iPXE".to_vec()),
            ipxe_encap: false,
            ..ipxe(7)
        };
        assert_eq!(file(&rfc3004, &c), script());
    }

    #[test]
    fn ipxe_on_bios_goes_through_pxelinux_but_never_an_ipxe_loader() {
        // pxelinux does no DHCP of its own, so iPXE may run it.
        assert_eq!(file(&ipxe(0), &cfg()), loader("pxelinux.0"));
        let lp = PxeConfig {
            bios_boot_file: "bios/lpxelinux.0".into(),
            ..cfg()
        };
        assert_eq!(file(&ipxe(0), &lp), loader("bios/lpxelinux.0"));
        // An iPXE BIOS loader would ask again as iPXE: the script instead.
        let undi = PxeConfig {
            bios_boot_file: "undionly.kpxe".into(),
            ..cfg()
        };
        assert_eq!(file(&pxe(0), &undi), loader("undionly.kpxe"));
        assert_eq!(file(&ipxe(0), &undi), script());
    }

    #[test]
    fn profile_overrides_the_loader() {
        let p = BootProfile {
            name: "x".into(),
            kernel: "vmlinuz".into(),
            initrd: None,
            cmdline: String::new(),
            bios_loader: Some("undionly.kpxe".into()),
            uefi_loader: Some("snponly.efi".into()),
            uefi32_loader: None,
        };
        let c = cfg();
        let f = |r: &BootRequest| decide(r, &c, MAC, Some(&p)).map(|d| d.boot_file);
        assert_eq!(f(&pxe(0)).as_deref(), Some("undionly.kpxe"));
        assert_eq!(f(&pxe(7)).as_deref(), Some("snponly.efi"));
        assert_eq!(f(&pxe(6)).as_deref(), Some("ipxe-i386.efi"));
        // The override is an iPXE loader: an iPXE client gets the host's
        // generated script.
        assert_eq!(
            f(&ipxe(0)).as_deref(),
            Some("boot-01-52-54-00-ab-cd-ef.ipxe")
        );
        assert_eq!(
            f(&ipxe(7)).as_deref(),
            Some("boot-01-52-54-00-ab-cd-ef.ipxe")
        );
    }

    #[test]
    fn ordinary_dhcp_clients_get_nothing() {
        let c = cfg();
        assert_eq!(decide(&BootRequest::default(), &c, MAC, None), None);
        let dhclient = BootRequest {
            vendor_class: Some(b"MSFT 5.0".to_vec()),
            ..BootRequest::default()
        };
        assert_eq!(decide(&dhclient, &c, MAC, None), None);
        // A client that only says arch 0 is not a PXE client either.
        let arch_only = BootRequest {
            arch: Some(0),
            ..BootRequest::default()
        };
        assert_eq!(decide(&arch_only, &c, MAC, None), None);
    }

    #[test]
    fn arch_falls_back_to_the_vendor_class_then_bios() {
        let mut r = pxe(7);
        r.arch = None;
        assert_eq!(r.client_arch(), ClientArch::Uefi64);
        r.vendor_class = Some(b"PXEClient".to_vec());
        assert_eq!(r.client_arch(), ClientArch::Bios);
        assert_eq!(file(&r, &cfg()), loader("pxelinux.0"));
    }

    #[test]
    fn reply_fields_server_and_no_pxeclient_echo() {
        let d = decide(&pxe(7), &cfg(), MAC, None).expect("decision");
        assert_eq!(d.next_server, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(d.tftp_server, "10.77.0.1");
        // Echoing PXEClient would send EDK2 looking for a boot server on
        // port 4011 (a "DhcpBinl" offer).
        assert_eq!(d.vendor_class, None);
        assert_eq!(
            decide(&ipxe(7), &cfg(), MAC, None).expect("d").vendor_class,
            None
        );
        assert_eq!(
            decide(&pxe(0), &cfg(), MAC, None).expect("d").vendor_class,
            None
        );
    }

    #[test]
    fn http_boot_needs_a_url_and_gets_its_class_echoed() {
        let http = BootRequest {
            arch: Some(16),
            vendor_class: Some(b"HTTPClient:Arch:00016:UNDI:003001".to_vec()),
            ..BootRequest::default()
        };
        assert_eq!(decide(&http, &cfg(), MAC, None), None);
        let c = PxeConfig {
            http_boot_url: Some("http://10.77.0.1/ipxe.efi".into()),
            ..cfg()
        };
        let d = decide(&http, &c, MAC, None).expect("decision");
        assert_eq!(d.boot_file, "http://10.77.0.1/ipxe.efi");
        assert_eq!(d.kind, BootFileKind::HttpUri);
        assert_eq!(d.vendor_class, Some("HTTPClient"));
        // Without a URL but with labnet's own HTTP server: the arch's loader
        // from there.
        let c = PxeConfig {
            http_base: Some("http://10.77.0.1:8080".into()),
            ..cfg()
        };
        let d = decide(&http, &c, MAC, None).expect("decision");
        assert_eq!(d.boot_file, "http://10.77.0.1:8080/ipxe.efi");
        assert_eq!(d.kind, BootFileKind::HttpUri);
    }
}
