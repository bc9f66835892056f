//! The Debian package and the systemd units (issue 10, "Operations"):
//! `scripts/package.sh` builds the .deb with cargo-deb, `dpkg -i` installs it
//! on this machine (CI runs as root on Debian), the installed binaries work
//! as the `labnet` user the package made, man pages and completions are
//! where man and the shells look, the units pass `systemd-analyze verify`
//! and rate at most "OK" in `systemd-analyze security`, and `dpkg --purge`
//! takes it all away. A second test stands in for systemd's notify socket
//! and checks that each daemon says READY=1 and then pings the watchdog.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use labnet_integration::*;

const BINARIES: [&str; 4] = ["labnet-dhcpd", "labnet-dnsd", "labnet-tftpd", "labnetctl"];
const UNITS: [&str; 3] = ["labnet-dhcpd", "labnet-dnsd", "labnet-tftpd"];

/// `dpkg-query` says the package `labnet` is installed.
fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "labnet"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn user_exists() -> bool {
    Command::new("getent")
        .args(["passwd", "labnet"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Purges the package when the test ends, however it ends, and removes the
/// `labnet` user when this test's install made it (the package keeps it, as
/// Debian does with system users; the test leaves the machine as it was).
struct Installed {
    made_user: bool,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg").args(["--purge", "labnet"]).status();
        }
        if self.made_user {
            let _ = Command::new("userdel").arg("labnet").status();
        }
    }
}

/// `runuser -u labnet -- ARGS`: (success, stdout + stderr).
fn as_labnet(args: &[&str]) -> (bool, String) {
    let out = Command::new("runuser")
        .args(["-u", "labnet", "--"])
        .args(args)
        .current_dir("/")
        .output()
        .expect("run runuser");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn deb_installs_runs_as_labnet_verifies_and_purges() {
    require_root();
    require_tools("dpkg", &["dpkg", "dpkg-query"]);
    require_tools("man-db", &["man"]);
    require_tools("systemd", &["systemd-analyze"]);
    require_tools("util-linux", &["runuser"]);
    let deb_ok = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        deb_ok,
        "`cargo deb` is missing: scripts/deps.sh installs cargo-deb with cargo install --locked"
    );
    assert!(
        !installed(),
        "the package `labnet` is installed on this machine already; this test installs and purges its own: remove it first"
    );
    let made_user = !user_exists();
    let guard = Installed { made_user };

    let out = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let script = workspace_root().join("scripts/package.sh");
    let built = run(Command::new(&script).arg(out.path()));
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    assert!(
        deb.ends_with(".deb") && Path::new(&deb).exists(),
        "scripts/package.sh printed `{deb}`"
    );
    eprintln!("built {deb} in {:?}", started.elapsed());
    let contents =
        String::from_utf8_lossy(&run(Command::new("dpkg-deb").args(["-c", &deb])).stdout)
            .into_owned();
    for path in [
        "./usr/bin/labnet-dnsd",
        "./lib/systemd/system/labnet-dhcpd.service",
        "./etc/labnet/labnet.toml",
    ] {
        assert!(contents.contains(path), "{path} not in {deb}:\n{contents}");
    }

    run(Command::new("dpkg")
        .args(["-i", &deb])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(installed(), "dpkg -i did not leave labnet installed");

    // Binaries, the config as a conffile readable by the daemons' group.
    for b in BINARIES {
        let meta = std::fs::metadata(format!("/usr/bin/{b}")).expect(b);
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "/usr/bin/{b} is not executable"
        );
    }
    let conffiles = String::from_utf8_lossy(
        &run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "labnet"])).stdout,
    )
    .into_owned();
    assert!(conffiles.contains("/etc/labnet/labnet.toml"), "{conffiles}");
    let group = sh("stat -c %G:%a /etc/labnet/labnet.toml");
    assert_eq!(group.trim(), "labnet:640");
    // The user and its state dir, made by postinst.
    let passwd = sh("getent passwd labnet");
    assert!(
        passwd
            .trim_end()
            .ends_with(":/var/lib/labnet:/usr/sbin/nologin"),
        "{passwd}"
    );
    assert_eq!(
        sh("stat -c %U:%G:%a /var/lib/labnet").trim(),
        "labnet:labnet:750"
    );

    // The installed binaries, from their installed paths, as the daemons'
    // user: the store is made in /var/lib/labnet and the shipped example
    // config passes labnet-dnsd's check.
    let (ok, text) = as_labnet(&["/usr/bin/labnetctl", "init"]);
    assert!(ok && text.contains("store ready"), "labnetctl init: {text}");
    let db = std::fs::metadata("/var/lib/labnet/labnet.db").expect("labnet.db made by init");
    assert_eq!(
        db.uid().to_string(),
        sh("id -u labnet").trim(),
        "the store belongs to labnet"
    );
    let (ok, text) = as_labnet(&["/usr/bin/labnet-dnsd", "--check-config"]);
    assert!(
        ok && text.contains("/etc/labnet/labnet.toml: ok"),
        "labnet-dnsd --check-config: {text}"
    );
    let (ok, text) = as_labnet(&["/usr/bin/labnet-dhcpd", "--check-config"]);
    assert!(ok, "labnet-dhcpd --check-config: {text}");
    let (ok, text) = as_labnet(&["/usr/bin/labnetctl", "zones", "list", "--json"]);
    assert!(
        ok && text.trim() == "[]",
        "labnetctl zones list --json: {text}"
    );
    serve_with_unit_capabilities();

    // Man pages where man finds them; completions where the shells look.
    for page in BINARIES
        .iter()
        .copied()
        .chain(["labnetctl-zones", "labnetctl-leases"])
    {
        let at = sh(&format!("man -w {page}"));
        assert!(
            at.trim().starts_with("/usr/share/man/man1/"),
            "man -w {page}: {at}"
        );
        let text = sh(&format!(
            "MANPAGER=cat MANWIDTH=100 man {page} 2>/dev/null | head -n 20"
        ));
        assert!(
            text.contains("NAME") && text.contains(page),
            "man {page}:\n{text}"
        );
    }
    for b in BINARIES {
        for f in [
            format!("/usr/share/bash-completion/completions/{b}"),
            format!("/usr/share/zsh/vendor-completions/_{b}"),
            format!("/usr/share/fish/vendor_completions.d/{b}.fish"),
        ] {
            assert!(Path::new(&f).exists(), "{f} is missing");
        }
    }
    let complete =
        sh("bash -c '. /usr/share/bash-completion/completions/labnetctl && complete -p labnetctl'");
    assert!(complete.contains("labnetctl"), "{complete}");

    // The units as installed: verify (binaries, man: links, directives) and
    // their exposure.
    let units: Vec<String> = UNITS
        .iter()
        .map(|u| format!("/lib/systemd/system/{u}.service"))
        .collect();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze verify");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    for u in &units {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(u)
            .output()
            .expect("systemd-analyze security");
        let text = String::from_utf8_lossy(&out.stdout);
        let overall = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no overall exposure for {u}: {text}"));
        eprintln!("{overall}");
        let mut words = overall
            .rsplit(": ")
            .next()
            .expect("score")
            .split_whitespace();
        let score: f64 = words.next().and_then(|s| s.parse().ok()).expect("a score");
        let level = words.next().expect("a level");
        assert!(
            ["PERFECT", "SAFE", "OK"].contains(&level) && score < 5.0,
            "{u}: {overall}"
        );
    }

    run(Command::new("dpkg").args(["--purge", "labnet"]));
    assert!(!installed());
    for gone in [
        "/usr/bin/labnetctl",
        "/usr/bin/labnet-dnsd",
        "/etc/labnet",
        "/var/lib/labnet",
        "/lib/systemd/system/labnet-dnsd.service",
        "/usr/share/bash-completion/completions/labnetctl",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    let man = Command::new("man")
        .args(["-w", "labnetctl"])
        .output()
        .expect("man -w");
    assert!(!man.status.success(), "the man page outlived the purge");
    drop(guard);
}

/// The capabilities a unit grants (`AmbientCapabilities=`), as setpriv
/// names them: `net_bind_service,net_raw`.
fn unit_caps(unit: &str) -> String {
    let text = std::fs::read_to_string(format!("/lib/systemd/system/{unit}.service"))
        .expect("installed unit");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap_or_else(|| panic!("{unit} has no AmbientCapabilities="));
    line.split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

/// The installed daemons, started as the units start them (user `labnet`,
/// only the unit's `AmbientCapabilities=`, bounding set included), inside a
/// namespace of this test, serve stock clients on the privileged ports:
/// udhcpc gets a lease from labnet-dhcpd with its ping check working (raw
/// ICMP), dig gets an answer from labnet-dnsd, tftp a file from labnet-tftpd.
fn serve_with_unit_capabilities() {
    require_tools("util-linux", &["setpriv"]);
    require_tools("udhcpc", &["udhcpc"]);
    require_tools("bind9-dnsutils", &["dig"]);
    require_tools("tftp-hpa", &["tftp"]);
    let dir = tempfile::tempdir().expect("tempdir");
    // The daemons' user reads the config and the TFTP root, writes the store.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = dir.path().join("state");
    let root = dir.path().join("tftp");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::create_dir(&root).expect("tftp root");
    std::fs::write(root.join("hello.txt"), "from labnet-tftpd\n").expect("file");
    run(Command::new("chown").arg("labnet:labnet").arg(&state));
    let cfg = write_file(
        dir.path(),
        "labnet.toml",
        &format!(
            r#"
[store]
url = "sqlite://{s}/labnet.db"
[dhcp]
interfaces = ["br0"]
ping_check = true
ping_timeout = "200ms"
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.110"]
[dns]
listen = ["10.77.0.1:53"]
[tftp]
listen = ["10.77.0.1:69"]
root = "{r}"
"#,
            s = state.display(),
            r = root.display()
        ),
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, text) = as_labnet(&[
        "/usr/bin/labnetctl",
        "--config",
        cfg.to_str().expect("utf-8"),
        "init",
    ]);
    assert!(ok, "labnetctl init as labnet: {text}");

    let srv = Netns::new("pkgs");
    srv.add_bridge("br0", "10.77.0.1/24");
    let mut daemons = Vec::new();
    for unit in UNITS {
        let caps = unit_caps(unit);
        let add: String = caps
            .split(',')
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let log = dir.path().join(format!("{unit}.log"));
        let logf = std::fs::File::create(&log).expect("log");
        let child = srv
            .cmd("setpriv")
            .args(["--reuid=labnet", "--regid=labnet", "--init-groups"])
            .arg(format!("--inh-caps=-all,{add}"))
            .arg(format!("--ambient-caps={add}"))
            .arg(format!("--bounding-set=-all,{add}"))
            .arg(format!("/usr/bin/{unit}"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .expect("start installed daemon");
        let mut d = Daemon { child, log };
        d.wait_log("serving", Duration::from_secs(20));
        eprintln!("{unit} serves as labnet with {caps}");
        daemons.push(d);
    }
    let cli = Netns::new("pkgc");
    srv.attach_veth("br0", "vpkgc", &cli, "eth0");
    let lease = run(cli
        .cmd("udhcpc")
        .args(["-q", "-n", "-f", "-i", "eth0", "-t", "10", "-T", "1"])
        .args(["-s", "/bin/true"]));
    let lease = String::from_utf8_lossy(&lease.stderr).into_owned()
        + &String::from_utf8_lossy(&lease.stdout);
    assert!(lease.contains("10.77.0.10"), "udhcpc: {lease}");
    let dhcpd_log = daemons[0].log_text();
    assert!(
        !dhcpd_log.contains("cannot open an ICMP socket"),
        "the ping check needs CAP_NET_RAW:\n{dhcpd_log}"
    );
    let dig = srv.sh("dig @10.77.0.1 +tries=1 +time=2 www.lab.test A");
    assert!(dig.contains("status: REFUSED"), "{dig}");
    let got = dir.path().join("got");
    run(srv
        .cmd("tftp")
        .args(["10.77.0.1", "-m", "binary", "-c", "get", "hello.txt"])
        .arg(&got));
    assert_eq!(
        std::fs::read_to_string(&got).expect("fetched"),
        "from labnet-tftpd\n"
    );
    for mut d in daemons {
        let st = d.stop();
        assert!(st.success(), "exit {st}:\n{}", d.log_text());
    }
}

/// The messages a daemon sends to `NOTIFY_SOCKET` within `wait`.
fn notifications(sock: &UnixDatagram, wait: Duration) -> Vec<String> {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => got.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            ),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn each_daemon_says_ready_then_pings_the_watchdog() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("tftp");
    std::fs::create_dir(&root).expect("tftp root");
    let cfg = write_file(
        dir.path(),
        "labnet.toml",
        &format!(
            r#"
[store]
url = "sqlite://{d}/labnet.db"
[dhcp]
interfaces = ["br0"]
ping_check = false
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.200"]
[dns]
listen = ["10.77.0.1:53"]
[tftp]
listen = ["10.77.0.1:69"]
root = "{r}"
"#,
            d = dir.path().display(),
            r = root.display()
        ),
    );
    ctl(&cfg, &["init"]);
    let ns = Netns::new("wdog");
    ns.add_bridge("br0", "10.77.0.1/24");
    for name in UNITS {
        // A path socket, not an abstract one: those belong to a network
        // namespace, and the daemon runs in another.
        let path = dir.path().join(format!("{name}.notify"));
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        let log = dir.path().join(format!("{name}.log"));
        let logf = std::fs::File::create(&log).expect("log");
        let child = ns
            .cmd(bin(name))
            .arg("--config")
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &path)
            // 400 ms: pings every 200 ms.
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .expect("start daemon");
        let mut daemon = Daemon { child, log };
        let got = notifications(&sock, Duration::from_secs(3));
        let ready = got.iter().position(|m| m == "READY=1");
        let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
        assert!(
            ready.is_some() && pings >= 5,
            "{name}: READY=1 then WATCHDOG=1 every 200 ms expected, got {got:?}\nlog:\n{}",
            daemon.log_text()
        );
        assert!(
            got.iter().position(|m| m == "WATCHDOG=1") > ready,
            "{name} pinged before it was ready: {got:?}"
        );
        let st = daemon.stop();
        assert!(st.success(), "{name} exited {st}");
        let after = notifications(&sock, Duration::from_millis(200));
        assert!(
            after.iter().any(|m| m == "STOPPING=1"),
            "{name} did not say STOPPING=1 on SIGTERM: {after:?}"
        );
    }
}
