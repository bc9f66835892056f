//! PXE boot in QEMU (issue 3): a bare VM on a bridge in a namespace powers
//! on and boots from labnet alone — labnet-dhcpd hands out the boot file,
//! labnet-tftpd serves the loader, the generated pxelinux config or iPXE
//! script, the kernel and the initramfs. The guest's `/init`
//! (scripts/pxe-assets.sh) prints `LABNET-BOOT-OK` and its kernel command
//! line on the serial console, then powers off.
//!
//! Every lab's TFTP root is a dnsmasq user's: it holds the admin's own
//! `boot.ipxe` (booting `labnet.profile=disk`). Hosts with a profile must
//! get their generated files anyway; a lab without profiles must boot from
//! that file (issue 10).
//!
//! QEMU runs under TCG (KVM does not work on these machines), so a boot takes
//! about half a minute of one core. Every VM takes a slot of [`VM_SLOTS`]
//! for its lifetime, so tests running in parallel do not starve each other's
//! guests; a VM that has not printed its marker within [`BOOT_TIMEOUT`] is
//! killed and its test fails with the serial log and the daemons' logs.
//!
//! With `[http]` (issue 10, Boot), iPXE fetches kernel and initrd over
//! HTTP from labnet-tftpd, and OVMF's own UEFI HTTP boot client (option 60
//! `HTTPClient`, a URL in option 67) loads ipxe.efi over HTTP.
//!
//! Needs root (namespaces, tap devices, port 67) and the Debian packages
//! qemu-system-x86, ipxe-qemu, ovmf (and what pxe-assets.sh installs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use labnet_integration::{bin, ctl, require_root, require_tools, run, Daemon, Netns};

/// How long a VM may take from power-on to the marker.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const MARKER: &str = "LABNET-BOOT-OK";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// VMs that may run at once: one TCG guest keeps one core busy.
fn vm_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        // At least 2: test (4) holds one slot while it waits for a second.
        .clamp(2, 4)
}

struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

static VM_SLOTS: OnceLock<Slots> = OnceLock::new();

/// A slot for one VM, returned on drop.
struct Slot;

impl Slot {
    fn take() -> Slot {
        let s = VM_SLOTS.get_or_init(|| Slots {
            free: Mutex::new(vm_slots()),
            cv: Condvar::new(),
        });
        let mut free = s.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = s.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(s) = VM_SLOTS.get() {
            *s.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            s.cv.notify_one();
        }
    }
}

/// The TFTP root with loaders, kernel and initramfs, built once per run
/// (and cached across runs by the script).
fn assets() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_root();
        let cache = std::env::var("LABNET_PXE_ASSETS")
            .unwrap_or_else(|_| "/var/tmp/labnet-pxe-assets".into());
        let script = labnet_integration::workspace_root().join("scripts/pxe-assets.sh");
        let out = run(Command::new(&script).arg(&cache));
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        for f in [
            "pxelinux.0",
            "ldlinux.c32",
            "ipxe.efi",
            "vmlinuz",
            "initrd.img",
        ] {
            assert!(
                root.join(f).is_file(),
                "{} missing after scripts/pxe-assets.sh",
                root.join(f).display()
            );
        }
        root
    })
}

fn require_qemu() {
    require_root();
    require_tools("qemu-system-x86", &["qemu-system-x86_64"]);
    for (f, pkg) in [
        (OVMF_CODE, "ovmf"),
        (OVMF_VARS, "ovmf"),
        ("/usr/lib/ipxe/qemu/efi-virtio.rom", "ipxe-qemu"),
    ] {
        assert!(
            Path::new(f).is_file(),
            "{f} is missing: install the Debian package `{pkg}`"
        );
    }
}

/// The command line of the admin's own `boot.ipxe` in the root.
const DISK_PROFILE: &str = "disk";

/// A TFTP root as a dnsmasq lab has one: the assets plus the admin's own
/// `boot.ipxe`, in `dir`. Hard links where the file system allows (the
/// kernel and initramfs are tens of MB), else copies.
fn dnsmasq_root(dir: &Path) -> PathBuf {
    let root = dir.join("tftp");
    std::fs::create_dir(&root).expect("mkdir tftp root");
    for entry in std::fs::read_dir(assets()).expect("read assets") {
        let entry = entry.expect("assets entry");
        if !entry.file_type().expect("file type").is_file() {
            continue;
        }
        let to = root.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to).expect("copy asset");
        }
    }
    std::fs::write(
        root.join("boot.ipxe"),
        format!(
            "#!ipxe\n# the admin's own script, as under dnsmasq\n\
             kernel vmlinuz initrd=initrd.img {}\ninitrd initrd.img\nboot\n",
            cmdline(DISK_PROFILE)
        ),
    )
    .expect("write boot.ipxe");
    root
}

/// A lab: a namespace with bridge br0 (10.77.0.1/24), a store with boot
/// profiles, labnet-dhcpd and labnet-tftpd serving on the bridge.
struct Lab {
    // Daemons before the namespace: they stop before it is deleted.
    dhcpd: Daemon,
    tftpd: Daemon,
    ns: Netns,
    dir: tempfile::TempDir,
    config: PathBuf,
    taps: usize,
}

/// The command line of profile `name`: the guest prints it back.
fn cmdline(name: &str) -> String {
    format!("console=ttyS0 panic=-1 labnet.profile={name}")
}

impl Lab {
    /// `profiles`: boot profiles to create before the daemons start (the
    /// first is `[pxe] default_profile`; none: no default profile).
    fn start(tag: &str, profiles: &[&str]) -> Lab {
        Lab::start_with(tag, profiles, "")
    }

    /// Like [`Lab::start`], with `extra` appended to the config (sections).
    fn start_with(tag: &str, profiles: &[&str], extra: &str) -> Lab {
        require_qemu();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dnsmasq_root(dir.path());
        let config = dir.path().join("labnet.toml");
        let default = profiles
            .first()
            .map(|p| format!("default_profile = \"{p}\""))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                r#"
[store]
url = "sqlite://{db}"

[dhcp]
interfaces = ["br0"]
# Not what these tests are about, and each check delays an OFFER.
ping_check = false

[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.199"]
routers = ["10.77.0.1"]
lease_time = "1h"

[tftp]
listen = ["10.77.0.1:69"]
root = "{root}"

[pxe]
tftp_server = "10.77.0.1"
bios_boot_file = "pxelinux.0"
uefi_boot_file = "ipxe.efi"
ipxe_script = "boot.ipxe"
{default}

{extra}
"#,
                db = dir.path().join("labnet.db").display(),
                root = root.display(),
            ),
        )
        .expect("write config");
        ctl(&config, &["init"]);
        for p in profiles {
            ctl(
                &config,
                &[
                    "profiles",
                    "add",
                    p,
                    "--kernel",
                    "vmlinuz",
                    "--initrd",
                    "initrd.img",
                    "--cmdline",
                    &cmdline(p),
                ],
            );
        }
        let ns = Netns::new(tag);
        ns.add_bridge("br0", "10.77.0.1/24");
        let mut dhcpd = Daemon::start(
            Some(&ns),
            "labnet-dhcpd",
            &config,
            &dir.path().join("dhcpd.log"),
        );
        let mut tftpd = Daemon::start(
            Some(&ns),
            "labnet-tftpd",
            &config,
            &dir.path().join("tftpd.log"),
        );
        dhcpd.wait_log("serving", Duration::from_secs(20));
        tftpd.wait_log("serving", Duration::from_secs(20));
        Lab {
            dhcpd,
            tftpd,
            ns,
            dir,
            config,
            taps: 0,
        }
    }

    /// A new tap device on br0.
    fn tap(&mut self) -> String {
        let name = format!("tap{}", self.taps);
        self.taps += 1;
        self.ns.ip(&["tuntap", "add", "dev", &name, "mode", "tap"]);
        self.ns.ip(&["link", "set", &name, "master", "br0"]);
        self.ns.ip(&["link", "set", &name, "up"]);
        name
    }

    /// Power on a VM with NIC `mac` (virtio-net). Firmware and NIC ROM
    /// as `fw` says.
    fn vm(&mut self, mac: &str, fw: Firmware) -> Vm {
        let tap = self.tap();
        let serial = self.dir.path().join(format!("serial-{tap}.log"));
        let slot = Slot::take();
        let mut cmd = self.ns.cmd("qemu-system-x86_64");
        cmd.args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-monitor",
            "none",
            "-no-reboot",
            "-boot",
            "n",
            "-netdev",
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ]);
        let nic = format!("virtio-net-pci,netdev=n0,mac={mac}");
        match fw {
            Firmware::Bios => {
                cmd.args(["-device", &nic]);
            }
            Firmware::UefiHttp => {
                let vars = self.dir.path().join(format!("vars-{tap}.fd"));
                std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF vars");
                cmd.args([
                    "-drive",
                    &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
                    "-drive",
                    &format!("if=pflash,format=raw,file={}", vars.display()),
                    // OVMF's own network stack (no iPXE ROM), with its PXE
                    // boot options switched off (OvmfPkg RUNTIME_CONFIG.md),
                    // so the first network boot option is HTTP over IPv4.
                    "-fw_cfg",
                    "name=opt/org.tianocore/IPv4PXESupport,string=no",
                    "-fw_cfg",
                    "name=opt/org.tianocore/IPv6PXESupport,string=no",
                    "-device",
                    &format!("{nic},romfile="),
                ]);
            }
            Firmware::Uefi { own_pxe } => {
                let vars = self.dir.path().join(format!("vars-{tap}.fd"));
                std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF vars");
                cmd.args([
                    "-drive",
                    &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
                    "-drive",
                    &format!("if=pflash,format=raw,file={}", vars.display()),
                ]);
                // Without an option ROM the NIC is driven by OVMF's own
                // (non-iPXE) PXE client.
                let nic = if own_pxe {
                    format!("{nic},romfile=")
                } else {
                    nic
                };
                cmd.args(["-device", &nic]);
            }
        }
        let log = std::fs::File::create(&serial).expect("serial log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start qemu-system-x86_64");
        Vm {
            child,
            serial,
            started: Instant::now(),
            _slot: slot,
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- labnet-dhcpd ---\n{}\n--- labnet-tftpd ---\n{}",
            tail(&self.dhcpd.log_text(), 60),
            tail(&self.tftpd.log_text(), 80)
        )
    }

    /// GETs of `/file` over HTTP answered 200 or 206, in tftpd's log.
    fn http_gets_of(&self, file: &str) -> usize {
        let path = format!("path=\"/{file}\"");
        self.tftpd
            .log_text()
            .lines()
            .filter(|l| {
                l.contains("http request")
                    && l.contains("method=GET")
                    && l.contains(&path)
                    && (l.contains("status=200") || l.contains("status=206"))
            })
            .count()
    }

    /// Completed transfers of `file` in tftpd's log.
    fn transfers_of(&self, file: &str) -> usize {
        let quoted = format!("\"{file}\"");
        self.tftpd
            .log_text()
            .lines()
            .filter(|l| l.contains("transfer complete") && l.contains(&quoted))
            .count()
    }
}

#[derive(Clone, Copy)]
enum Firmware {
    /// SeaBIOS with Debian's iPXE NIC ROM.
    Bios,
    /// OVMF, with the iPXE NIC ROM or (own_pxe) the firmware's own client.
    Uefi { own_pxe: bool },
    /// OVMF's own UEFI HTTP boot client (PXE switched off).
    UefiHttp,
}

struct Vm {
    child: Child,
    serial: PathBuf,
    started: Instant,
    _slot: Slot,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Vm {
    /// Wait for the guest's marker; return its kernel command line and the
    /// boot's wall time. Panics (after killing the VM) on timeout or if QEMU
    /// exits without the marker.
    fn wait_boot(&mut self, lab: &Lab) -> (String, Duration) {
        loop {
            let text = String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default())
                .into_owned();
            if text.contains(MARKER) {
                if let Some(line) = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("LABNET-CMDLINE: "))
                {
                    return (line.to_owned(), self.started.elapsed());
                }
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            let late = self.started.elapsed() > BOOT_TIMEOUT;
            if exited || late {
                let _ = self.child.kill();
                panic!(
                    "{} without {MARKER} after {:?}\n--- serial ({}) ---\n{}\n{}",
                    if exited { "QEMU exited" } else { "timed out" },
                    self.started.elapsed(),
                    self.serial.display(),
                    tail(&text, 40),
                    lab.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The guest booted profile `name` and nothing else.
fn assert_profile(cmdline_seen: &str, name: &str) {
    let want = format!("labnet.profile={name}");
    assert!(
        cmdline_seen.split_whitespace().any(|w| w == want),
        "the guest's command line `{cmdline_seen}` lacks `{want}`"
    );
    assert!(
        cmdline_seen.contains("console=ttyS0 panic=-1"),
        "{cmdline_seen}"
    );
}

/// (1) BIOS (SeaBIOS) with Debian's iPXE ROM: iPXE gets pxelinux.0, which
/// reads its generated `pxelinux.cfg/01-<mac>`.
#[test]
fn bios_ipxe_rom_boots_via_pxelinux() {
    let mut lab = Lab::start("pxebios", &["rescue"]);
    let mut vm = lab.vm("52:54:00:77:01:01", Firmware::Bios);
    let (cmdline, took) = vm.wait_boot(&lab);
    eprintln!("BIOS boot through labnet: {:.1} s", took.as_secs_f64());
    assert_profile(&cmdline, "rescue");
    // pxelinux puts BOOT_IMAGE= first; iPXE would not.
    assert!(cmdline.starts_with("BOOT_IMAGE=vmlinuz"), "{cmdline}");
    assert_eq!(
        lab.transfers_of("pxelinux.cfg/01-52-54-00-77-01-01"),
        1,
        "pxelinux read its per-host config\n{}",
        lab.logs()
    );
    assert_eq!(lab.transfers_of("boot.ipxe"), 0, "{}", lab.logs());
}

/// (2) UEFI (OVMF) with Debian's iPXE ROM: iPXE gets the script at once.
#[test]
fn uefi_ipxe_rom_boots_via_the_ipxe_script() {
    let mut lab = Lab::start("pxeuefi", &["rescue"]);
    let mut vm = lab.vm("52:54:00:77:02:01", Firmware::Uefi { own_pxe: false });
    let (cmdline, took) = vm.wait_boot(&lab);
    eprintln!(
        "UEFI (iPXE ROM) boot through labnet: {:.1} s",
        took.as_secs_f64()
    );
    assert_profile(&cmdline, "rescue");
    // iPXE's EFI build needs initrd= to pass the initramfs on.
    assert!(cmdline.contains("initrd=initrd.img"), "{cmdline}");
    // The host has a profile: its generated script, not the root's own.
    assert_eq!(lab.transfers_of("boot.ipxe"), 0, "{}", lab.logs());
    assert_eq!(
        lab.transfers_of("boot-01-52-54-00-77-02-01.ipxe"),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(
        lab.transfers_of("ipxe.efi"),
        0,
        "an iPXE client was handed iPXE again\n{}",
        lab.logs()
    );
}

/// (3) UEFI with OVMF's own PXE client (no NIC ROM): it must get ipxe.efi,
/// and ipxe.efi, asking again as iPXE, must get the script — not ipxe.efi
/// again (the chainload loop).
#[test]
fn uefi_firmware_pxe_chains_ipxe_once_then_the_script() {
    let mut lab = Lab::start("pxeovmf", &["rescue"]);
    let mut vm = lab.vm("52:54:00:77:03:01", Firmware::Uefi { own_pxe: true });
    let (cmdline, took) = vm.wait_boot(&lab);
    eprintln!(
        "UEFI (firmware PXE -> ipxe.efi) boot through labnet: {:.1} s",
        took.as_secs_f64()
    );
    assert_profile(&cmdline, "rescue");
    // EDK2 may probe the size first and abort (an ERROR, not a completed
    // transfer); ipxe.efi itself is loaded exactly once.
    assert_eq!(
        lab.transfers_of("ipxe.efi"),
        1,
        "ipxe.efi loaded more than once: a chainload loop?\n{}",
        lab.logs()
    );
    assert_eq!(
        lab.transfers_of("boot-01-52-54-00-77-03-01.ipxe"),
        1,
        "{}",
        lab.logs()
    );
    assert_eq!(lab.transfers_of("boot.ipxe"), 0, "{}", lab.logs());
}

/// (5) A dnsmasq user's lab (issue 10): the TFTP root holds its own
/// `boot.ipxe`, `[pxe] ipxe_script = "boot.ipxe"`, no boot profiles at all.
/// OVMF's own PXE client gets ipxe.efi, which must then boot the file on
/// disk, as it did under dnsmasq — no generated file is involved.
#[test]
fn uefi_without_profiles_boots_the_roots_own_ipxe_script() {
    let mut lab = Lab::start("pxedisk", &[]);
    let mut vm = lab.vm("52:54:00:77:05:01", Firmware::Uefi { own_pxe: true });
    let (cmdline, took) = vm.wait_boot(&lab);
    eprintln!(
        "UEFI (firmware PXE -> ipxe.efi -> own boot.ipxe): {:.1} s",
        took.as_secs_f64()
    );
    assert_profile(&cmdline, DISK_PROFILE);
    assert_eq!(lab.transfers_of("ipxe.efi"), 1, "{}", lab.logs());
    assert_eq!(lab.transfers_of("boot.ipxe"), 1, "{}", lab.logs());
    assert!(
        !lab.tftpd.log_text().contains("generated file"),
        "a generated file was served without any profile\n{}",
        lab.logs()
    );
}

/// (4) Two VMs with different MACs and different profiles, booting at the
/// same time, each print their own command line. One profile comes with a
/// reservation, the other from `labnetctl profiles assign` (a host without
/// a reservation); both are made while the daemons serve (no restart).
#[test]
fn two_hosts_boot_their_own_profiles() {
    let mut lab = Lab::start("pxetwo", &["rescue", "alpha", "beta"]);
    ctl(
        &lab.config,
        &[
            "reservations",
            "add",
            "52:54:00:77:04:01",
            "10.77.0.41",
            "--profile",
            "alpha",
        ],
    );
    // Without a reservation: kept in the host → profile mapping.
    ctl(
        &lab.config,
        &["profiles", "assign", "52:54:00:77:04:02", "beta"],
    );
    let mut a = lab.vm("52:54:00:77:04:01", Firmware::Bios);
    let mut b = lab.vm("52:54:00:77:04:02", Firmware::Uefi { own_pxe: false });
    let (ca, ta) = a.wait_boot(&lab);
    let (cb, tb) = b.wait_boot(&lab);
    eprintln!(
        "two VMs in parallel: BIOS {:.1} s, UEFI {:.1} s",
        ta.as_secs_f64(),
        tb.as_secs_f64()
    );
    assert_profile(&ca, "alpha");
    assert_profile(&cb, "beta");
    assert!(!ca.contains("beta") && !cb.contains("alpha"), "{ca} / {cb}");
    // The reserved host got its reserved address.
    let leases = ctl(&lab.config, &["leases", "list"]);
    assert!(
        leases.contains("10.77.0.41"),
        "reserved address not leased:\n{leases}"
    );
    // Sanity: the binaries under test are labnet's.
    assert!(bin("labnet-dhcpd").exists() && bin("labnet-tftpd").exists());
}

/// `[http]` on the bridge address, port 80: what the HTTP tests add.
const HTTP: &str = "[http]\nlisten = [\"10.77.0.1:80\"]\n";

/// (6) `[http]` set: the host's generated iPXE script (fetched over TFTP by
/// the iPXE ROM) loads kernel and initrd over HTTP, not TFTP.
#[test]
fn uefi_ipxe_fetches_kernel_and_initrd_over_http() {
    let mut lab = Lab::start_with("pxehttp", &["rescue"], HTTP);
    let mut vm = lab.vm("52:54:00:77:06:01", Firmware::Uefi { own_pxe: false });
    let (cmdline, took) = vm.wait_boot(&lab);
    eprintln!(
        "UEFI (iPXE ROM) boot, kernel and initrd over HTTP: {:.1} s",
        took.as_secs_f64()
    );
    assert_profile(&cmdline, "rescue");
    assert_eq!(
        lab.transfers_of("boot-01-52-54-00-77-06-01.ipxe"),
        1,
        "{}",
        lab.logs()
    );
    assert!(lab.http_gets_of("vmlinuz") >= 1, "{}", lab.logs());
    assert!(lab.http_gets_of("initrd.img") >= 1, "{}", lab.logs());
    assert_eq!(lab.transfers_of("vmlinuz"), 0, "{}", lab.logs());
    assert_eq!(lab.transfers_of("initrd.img"), 0, "{}", lab.logs());
}

/// (7) UEFI HTTP boot by the firmware itself (UEFI spec 2.x §24.7): OVMF
/// asks with option 60 `HTTPClient:Arch:00016`, gets `HTTPClient` back and
/// `http://10.77.0.1/ipxe.efi` in option 67, loads it over HTTP; ipxe.efi
/// then boots the host's profile with kernel and initrd over HTTP. Nothing
/// is loaded over TFTP but the script.
#[test]
fn uefi_firmware_http_boot() {
    let mut lab = Lab::start_with("pxeuhttp", &["rescue"], HTTP);
    let mut vm = lab.vm("52:54:00:77:07:01", Firmware::UefiHttp);
    let (cmdline, took) = vm.wait_boot(&lab);
    eprintln!(
        "UEFI HTTP boot (OVMF -> http ipxe.efi -> script): {:.1} s",
        took.as_secs_f64()
    );
    assert_profile(&cmdline, "rescue");
    assert_eq!(lab.http_gets_of("ipxe.efi"), 1, "{}", lab.logs());
    assert_eq!(lab.transfers_of("ipxe.efi"), 0, "{}", lab.logs());
    assert!(lab.http_gets_of("vmlinuz") >= 1, "{}", lab.logs());
    assert!(lab.http_gets_of("initrd.img") >= 1, "{}", lab.logs());
}
