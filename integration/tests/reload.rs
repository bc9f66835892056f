//! SIGHUP re-reads the config file (issue 10), seen by udhcpc: a pool
//! added by a reload is served at once while a lease from before keeps
//! renewing, and a broken file is refused with its line and key and
//! changes nothing.
//!
//! Topology: namespace `srv` with bridge br0 = 10.77.0.1/24 where
//! labnet-dhcpd serves; each client is a namespace on br0 through a veth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use labnet_integration::*;
use serde_json::Value;

fn config(dir: &Path, pools: &str) -> String {
    format!(
        r#"
[store]
url = "sqlite://{db}"

[dhcp]
interfaces = ["br0"]
ping_check = false

[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = [{pools}]
lease_time = "1h"
"#,
        db = dir.join("labnet.db").display()
    )
}

/// A udhcpc client in its own namespace; its hook script records each
/// event's environment in `DIR/EVENT.env` and configures the address.
struct Client {
    _ns: Netns,
    child: Child,
    dir: PathBuf,
}

impl Client {
    /// Start udhcpc (foreground: it stays to renew) on a new client of br0.
    fn start(srv: &Netns, dir: &Path, tag: &str, mac: &str) -> Client {
        let ns = Netns::new(tag);
        srv.attach_veth("br0", &format!("v{tag}"), &ns, "eth0");
        ns.ip(&["link", "set", "eth0", "down"]);
        ns.ip(&["link", "set", "eth0", "address", mac]);
        ns.ip(&["link", "set", "eth0", "up"]);
        let dir = dir.join(tag);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let script = write_file(
            &dir,
            "script",
            &format!(
                "#!/bin/sh\nenv | sort > {d}/$1.env.tmp && mv {d}/$1.env.tmp {d}/$1.env\n\
                 case \"$1\" in\n  bound|renew) ip addr replace \"$ip/${{mask:-24}}\" dev \"$interface\" ;;\n\
                 esac\nexit 0\n",
                d = dir.display()
            ),
        );
        run(Command::new("chmod").arg("755").arg(&script));
        let child = ns
            .cmd("udhcpc")
            .args(["-f", "-i", "eth0", "-t", "20", "-T", "1", "-A", "1", "-s"])
            .arg(&script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("udhcpc");
        Client {
            _ns: ns,
            child,
            dir,
        }
    }

    /// The address of event `event` (`bound`, `renew`), once it happened.
    fn ip(&self, event: &str, within: Duration) -> Option<String> {
        let p = self.dir.join(format!("{event}.env"));
        let end = std::time::Instant::now() + within;
        while std::time::Instant::now() < end {
            if let Ok(text) = std::fs::read_to_string(&p) {
                return text
                    .lines()
                    .find_map(|l| l.strip_prefix("ip="))
                    .map(|ip| ip.trim_matches('\'').to_owned());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn signal(&self, sig: &str) {
        run(Command::new("kill").args([sig, &self.child.id().to_string()]));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hup(d: &Daemon) {
    run(Command::new("kill").args(["-HUP", &d.child.id().to_string()]));
}

fn lease_of(cfg: &Path, mac: &str) -> Option<Value> {
    let out = ctl(cfg, &["leases", "list", "--json"]);
    let all: Vec<Value> = serde_json::from_str(&out).expect("leases JSON");
    all.into_iter().find(|l| l["mac"] == mac)
}

#[test]
fn sighup_serves_a_new_pool_keeps_leases_and_refuses_a_broken_file() {
    require_root();
    require_tools("udhcpc", &["udhcpc"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_file(
        dir.path(),
        "labnet.toml",
        &config(dir.path(), r#""10.77.0.100-10.77.0.100""#),
    );
    ctl(&cfg, &["init"]);
    let srv = Netns::new("rld");
    srv.add_bridge("br0", "10.77.0.1/24");
    let mut d = Daemon::start(
        Some(&srv),
        "labnet-dhcpd",
        &cfg,
        &dir.path().join("dhcpd.log"),
    );
    d.wait_log("serving", Duration::from_secs(20));

    // A takes the pool's only address; B finds the pool full.
    let a = Client::start(&srv, dir.path(), "rlda", "52:54:00:10:00:01");
    assert_eq!(
        a.ip("bound", Duration::from_secs(20)).as_deref(),
        Some("10.77.0.100")
    );
    let b = Client::start(&srv, dir.path(), "rldb", "52:54:00:10:00:02");
    assert_eq!(b.ip("bound", Duration::from_secs(4)), None, "pool was full");
    d.wait_log("no free address in the pool", Duration::from_secs(5));

    // A second pool, by SIGHUP: B, still trying, gets an address from it.
    write_file(
        dir.path(),
        "labnet.toml",
        &config(
            dir.path(),
            r#""10.77.0.100-10.77.0.100", "10.77.0.200-10.77.0.209""#,
        ),
    );
    hup(&d);
    d.wait_log("config reloaded", Duration::from_secs(5));
    assert_eq!(
        b.ip("bound", Duration::from_secs(20)).as_deref(),
        Some("10.77.0.200"),
        "{}",
        d.log_text()
    );

    // A's lease from before the reload renews (SIGUSR1: a unicast REQUEST).
    let before = lease_of(&cfg, "52:54:00:10:00:01").expect("A's lease");
    std::thread::sleep(Duration::from_millis(1100));
    a.signal("-USR1");
    assert_eq!(
        a.ip("renew", Duration::from_secs(10)).as_deref(),
        Some("10.77.0.100"),
        "{}",
        d.log_text()
    );
    wait_for("A's renewal in the store", Duration::from_secs(5), || {
        let now = lease_of(&cfg, "52:54:00:10:00:01")?;
        (now["expires"].as_i64()? > before["expires"].as_i64()?).then_some(())
    });

    // A broken file: refused with its line and key; the running config
    // (both pools) keeps serving the next client.
    let broken = config(
        dir.path(),
        r#""10.77.0.100-10.77.0.100", "10.77.9.1-10.77.9.5""#,
    );
    let line = broken
        .lines()
        .position(|l| l.starts_with("pools"))
        .expect("pools line")
        + 1;
    write_file(dir.path(), "labnet.toml", &broken);
    hup(&d);
    d.wait_log("new config refused", Duration::from_secs(5));
    let log = d.log_text();
    let refusal = log
        .lines()
        .find(|l| l.contains("new config refused"))
        .expect("refusal line");
    assert!(
        refusal.contains(&format!("line {line}")) && refusal.contains("pools"),
        "{refusal}"
    );
    let c = Client::start(&srv, dir.path(), "rldc", "52:54:00:10:00:03");
    assert_eq!(
        c.ip("bound", Duration::from_secs(20)).as_deref(),
        Some("10.77.0.201"),
        "{}",
        d.log_text()
    );
    assert!(d.stop().success(), "{}", d.log_text());
}
