//! The store under the daemons, seen through stock clients: `labnetctl`
//! beside a loaded dhcpd (perfdhcp), a store file replaced under running
//! daemons, and the daemons on PostgreSQL (a throwaway server each test
//! starts: Debian's `postgresql` package, `initdb`/`pg_ctl` as `postgres`).
//!
//! Topology: namespace `srv` has bridge br0 = 10.77.0.1/24; a relay
//! namespace (10.77.0.2, 10.78.0.2/16) runs perfdhcp as relay for
//! 10.78.0.0/16, as in `dhcp.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use labnet_integration::*;
use labnet_store::testing::PgCluster;
use serde_json::Value;

const ZONE: &str = r#"$ORIGIN lab.test.
$TTL 300
@    IN SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300
     IN NS  ns1
ns1  IN A   10.77.0.1
web  IN A   10.77.0.10
"#;

/// A server namespace with br0, a relay namespace, and a config whose
/// `[store] url` is `url`; `dns` is extra config (a `[dns]` section).
struct Site {
    dir: tempfile::TempDir,
    srv: Netns,
    relay: Netns,
    cfg: PathBuf,
}

impl Site {
    fn new(tag: &str, url: Option<&str>, dns: &str) -> Site {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("labnet.db").display()));
        let srv = Netns::new(tag);
        srv.add_bridge("br0", "10.77.0.1/24");
        let relay = Netns::new(&format!("{tag}r"));
        srv.attach_veth("br0", "vrly", &relay, "eth0");
        // 10.78.0.2 first: the primary address, which perfdhcp puts in giaddr.
        relay.ip(&["addr", "add", "10.78.0.2/16", "dev", "eth0"]);
        relay.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
        srv.ip(&["route", "add", "10.78.0.0/16", "via", "10.77.0.2"]);
        let cfg = write_file(dir.path(), "labnet.toml", &config(&url, dns));
        ctl(&cfg, &["init"]);
        let zone = write_file(dir.path(), "lab.test.zone", ZONE);
        ctl(&cfg, &["zones", "import", zone.to_str().expect("path")]);
        Site {
            dir,
            srv,
            relay,
            cfg,
        }
    }

    fn daemon(&self, name: &str, cfg: &Path, tag: &str) -> Daemon {
        let log = self.dir.path().join(format!("{tag}.log"));
        let mut d = Daemon::start(Some(&self.srv), name, cfg, &log);
        d.wait_log("serving", Duration::from_secs(20));
        d
    }

    /// perfdhcp through the relay for `secs` seconds at `rate` new clients
    /// a second (random MACs); returns the child to wait on.
    fn perfdhcp(&self, rate: u32, secs: u32) -> Child {
        require_tools("kea-admin", &["perfdhcp"]);
        self.relay
            .cmd("perfdhcp")
            .args(["-4", "-l", "eth0", "-R", "60000", "-W", "500000"])
            .args(["-r", &rate.to_string(), "-p", &secs.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("perfdhcp")
    }

    fn leases(&self) -> Vec<Value> {
        match serde_json::from_str(&ctl(&self.cfg, &["leases", "list", "--json"]))
            .expect("leases JSON")
        {
            Value::Array(v) => v,
            other => panic!("not an array: {other}"),
        }
    }
}

fn config(url: &str, dns: &str) -> String {
    format!(
        r#"
[store]
url = "{url}"

[dhcp]
interfaces = ["br0"]
ping_check = false

[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.199"]
routers = ["10.77.0.1"]
lease_time = "1h"

[[dhcp.subnets]]
cidr = "10.78.0.0/16"
pools = ["10.78.1.0-10.78.250.255"]
routers = ["10.78.0.2"]
lease_time = "1h"
{dns}
"#
    )
}

/// perfdhcp's count of REQUEST-ACK exchanges completed.
fn perfdhcp_acks(child: Child) -> u64 {
    let out = child.wait_with_output().expect("perfdhcp");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("Statistics for: REQUEST-ACK")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.starts_with("received packets:")))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no REQUEST-ACK statistics:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn labnetctl(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin("labnetctl"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .expect("run labnetctl")
}

/// Issue 12 item 4: `labnetctl records add` failed with SQLITE_BUSY_SNAPSHOT
/// (517) while dhcpd committed leases. Writers now begin IMMEDIATE: 150
/// adds under perfdhcp load, none fails.
#[test]
fn sqlite_labnetctl_never_fails_under_dhcp_load() {
    let site = Site::new("busy", None, "");
    let _dhcpd = site.daemon("labnet-dhcpd", &site.cfg, "dhcpd");
    let load = site.perfdhcp(300, 20);
    // Let the load build up before the admin starts.
    std::thread::sleep(Duration::from_millis(500));
    let mut failures = Vec::new();
    for i in 0..150 {
        let name = format!("h{i}.lab.test");
        let ip = format!("10.77.1.{}", i % 250);
        let out = labnetctl(&site.cfg, &["records", "add", &name, "A", &ip]);
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    let acks = perfdhcp_acks(load);
    assert!(
        failures.is_empty(),
        "{} of 150 `records add` failed, e.g. {}",
        failures.len(),
        failures[0]
    );
    let records = ctl(&site.cfg, &["records", "list", "lab.test"]);
    assert_eq!(
        records.lines().filter(|l| l.starts_with('h')).count(),
        150,
        "{records}"
    );
    // The load was real: leases were committed all along.
    assert!(acks >= 1000, "only {acks} ACKs under load");
    assert!(site.leases().len() as u64 >= acks);
}

/// Issue 12 item 4: a store file replaced under running daemons (here as a
/// careless admin would: deleted with its WAL and `labnetctl init` run
/// again) stops them with a message, instead of dhcpd writing leases into a
/// deleted file that no one else sees.
#[test]
fn sqlite_store_file_replaced_stops_dhcpd_and_dnsd() {
    let site = Site::new(
        "repl",
        None,
        "[dns]\nlisten = [\"127.0.0.1:53\"]\nlease_zone = \"lab.test\"",
    );
    let mut dhcpd = site.daemon("labnet-dhcpd", &site.cfg, "dhcpd");
    let mut dnsd = site.daemon("labnet-dnsd", &site.cfg, "dnsd");
    for f in ["labnet.db", "labnet.db-wal", "labnet.db-shm"] {
        std::fs::remove_file(site.dir.path().join(f)).expect("delete the store");
    }
    ctl(&site.cfg, &["init"]);
    for d in [&mut dhcpd, &mut dnsd] {
        let status = wait_for("the daemon to stop", Duration::from_secs(5), || {
            d.child.try_wait().ok().flatten()
        });
        assert!(!status.success(), "exited with {status}: {}", d.log_text());
        assert!(
            d.log_text()
                .contains("was replaced or removed under this process"),
            "{}",
            d.log_text()
        );
    }
}

/// The daemons do not know the backend: dhcpd on PostgreSQL serves
/// perfdhcp through a relay and a udhcpc on the bridge, every ACK is in
/// the database (read back with labnetctl), and dnsd serves the leases'
/// names from it.
#[test]
fn postgres_dhcpd_and_dnsd_serve_from_the_database() {
    require_tools("udhcpc", &["udhcpc"]);
    require_tools("bind9-dnsutils", &["dig"]);
    let pg = PgCluster::start();
    let site = Site::new(
        "pgd",
        Some(&pg.url("labnet")),
        "[dns]\nlisten = [\"127.0.0.1:53\"]\nlease_zone = \"lab.test\"",
    );
    let _dhcpd = site.daemon("labnet-dhcpd", &site.cfg, "dhcpd");
    let _dnsd = site.daemon("labnet-dnsd", &site.cfg, "dnsd");
    let acks = perfdhcp_acks(site.perfdhcp(100, 3));
    assert!(acks >= 200, "only {acks} ACKs");
    // A udhcpc on the bridge with a hostname: its name resolves.
    let client = Netns::new("pgc");
    site.srv.attach_veth("br0", "vcl", &client, "eth0");
    let out = client
        .cmd("udhcpc")
        .args(["-n", "-q", "-f", "-i", "eth0", "-t", "5", "-T", "1"])
        .args(["-s", "/bin/true", "-x", "hostname:pgvm"])
        .output()
        .expect("udhcpc");
    assert!(out.status.success(), "udhcpc: {out:?}");
    let leases = site.leases();
    assert!(leases.len() as u64 > acks, "{} leases", leases.len());
    let ip = leases
        .iter()
        .find(|l| l["hostname"] == "pgvm")
        .and_then(|l| l["ip"].as_str())
        .expect("udhcpc's lease in the database")
        .to_owned();
    let answer = wait_for("pgvm.lab.test to resolve", Duration::from_secs(3), || {
        let out = site.srv.sh("dig @127.0.0.1 +short +time=1 pgvm.lab.test A");
        (out.trim() == ip).then_some(out)
    });
    assert_eq!(answer.trim(), ip);
}

/// Issue 9: two dnsd nodes on one PostgreSQL answer alike, before and after
/// a `labnetctl records add`, which both serve within a second (NOTIFY).
#[test]
fn postgres_two_dnsd_nodes_answer_alike_and_follow_labnetctl() {
    require_tools("bind9-dnsutils", &["dig"]);
    let pg = PgCluster::start();
    let site = Site::new("pgn", Some(&pg.url("labnet")), "");
    let url = pg.url("labnet");
    let nodes: Vec<(u16, Daemon)> = [5301u16, 5302]
        .into_iter()
        .map(|port| {
            let cfg = write_file(
                site.dir.path(),
                &format!("node{port}.toml"),
                &format!("[store]\nurl = \"{url}\"\n\n[dns]\nlisten = [\"127.0.0.1:{port}\"]\n"),
            );
            (
                port,
                site.daemon("labnet-dnsd", &cfg, &format!("dnsd{port}")),
            )
        })
        .collect();
    let dig = |port: u16, q: &str| {
        site.srv
            .sh(&format!(
                "dig @127.0.0.1 -p {port} +short +time=1 +tries=1 {q}"
            ))
            .trim()
            .to_owned()
    };
    for q in ["web.lab.test A", "lab.test SOA", "lab.test NS"] {
        let a = dig(5301, q);
        assert!(!a.is_empty(), "no answer to {q}");
        assert_eq!(a, dig(5302, q), "{q}");
    }
    ctl(
        &site.cfg,
        &["records", "add", "new.lab.test", "A", "10.77.0.77"],
    );
    let added = Instant::now();
    for (port, d) in &nodes {
        wait_for(
            &format!("node {port} to serve new.lab.test"),
            Duration::from_secs(1).saturating_sub(added.elapsed()),
            || (dig(*port, "new.lab.test A") == "10.77.0.77").then_some(()),
        );
        assert!(d.log_text().contains("serving"));
    }
    assert_eq!(dig(5301, "lab.test SOA"), dig(5302, "lab.test SOA"));
}
