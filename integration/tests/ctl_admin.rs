//! `labnetctl` commands admins reach for (issue 10, "Operations"): `zones
//! create` then `records add`, served by labnet-dnsd as dig sees it;
//! `status` from each daemon's metrics endpoint; `leases list --subnet`;
//! and `--json` on every `list`.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use labnet_integration::*;
use serde_json::Value;

/// `labnetctl --config CFG ARGS` in `ns`: (exit code, stdout, stderr).
fn ctl_in(ns: &Netns, cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = ns
        .cmd(bin("labnetctl"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .expect("run labnetctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn dig(ns: &Netns, args: &str) -> String {
    ns.sh(&format!("dig @127.0.0.1 +tries=1 +time=2 {args}"))
}

#[test]
fn zones_create_records_add_served_and_status_from_metrics() {
    require_root();
    require_tools("bind9-dnsutils", &["dig"]);
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
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.200"]

[dns]
listen = ["127.0.0.1:53"]

[tftp]
listen = ["127.0.0.1:69"]
root = "{r}"

[metrics.listen]
dnsd = "127.0.0.1:9968"
tftpd = "127.0.0.1:9969"
"#,
            d = dir.path().display(),
            r = root.display()
        ),
    );
    ctl(&cfg, &["init"]);
    let out = ctl(
        &cfg,
        &["zones", "create", "Lab.Test", "--ns-addr", "10.77.0.1"],
    );
    assert!(out.contains("created lab.test."), "{out}");
    ctl(&cfg, &["records", "add", "www.lab.test", "A", "10.77.0.10"]);
    ctl(
        &cfg,
        &["records", "add", "lab.test", "MX", "10", "mail.lab.test."],
    );
    // A second create would silently drop the records: refused.
    let again = Command::new(bin("labnetctl"))
        .arg("--config")
        .arg(&cfg)
        .args(["zones", "create", "lab.test"])
        .output()
        .expect("run labnetctl");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{again:?}"
    );
    // An NS address outside the zone would be out-of-zone glue: refused.
    let glue = Command::new(bin("labnetctl"))
        .arg("--config")
        .arg(&cfg)
        .args(["zones", "create", "other.test", "--ns", "ns1.lab.test"])
        .args(["--ns-addr", "10.77.0.2"])
        .output()
        .expect("run labnetctl");
    assert!(!glue.status.success(), "{glue:?}");

    let zones = json(&ctl(&cfg, &["zones", "list", "--json"]));
    let zones = zones.as_array().expect("array");
    assert_eq!(zones.len(), 1, "{zones:?}");
    assert_eq!(zones[0]["name"], "lab.test.");
    // SOA, NS, the name server's A, www's A, the MX.
    assert_eq!(zones[0]["records"], 5, "{zones:?}");
    let serial = zones[0]["serial"].as_u64().expect("serial");
    let records = json(&ctl(&cfg, &["records", "list", "lab.test", "--json"]));
    let types: Vec<&str> = records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "SOA").count(),
        1,
        "{records}"
    );
    assert!(types.contains(&"NS") && types.contains(&"MX"), "{records}");

    // What dnsd serves from it.
    let ns = Netns::new("ctla");
    let mut dnsd = Daemon::start(Some(&ns), "labnet-dnsd", &cfg, &dir.path().join("dnsd.log"));
    // "serving" with its fields: the sockets are bound (metrics come first).
    dnsd.wait_log("serving addrs", Duration::from_secs(20));
    let a = dig(&ns, "www.lab.test A +short");
    assert_eq!(a.trim(), "10.77.0.10");
    let soa = dig(&ns, "lab.test SOA +short");
    assert_eq!(
        soa.trim(),
        format!("ns.lab.test. hostmaster.lab.test. {serial} 3600 600 1209600 300")
    );
    assert_eq!(dig(&ns, "lab.test NS +short").trim(), "ns.lab.test.");
    assert_eq!(dig(&ns, "ns.lab.test A +short").trim(), "10.77.0.1");
    let nx = dig(&ns, "nothere.lab.test A");
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains(" aa") && nx.contains("IN\tSOA"),
        "{nx}"
    );

    // status: dnsd up, tftpd down (not started), dhcpd unknown (no
    // metrics address): exit 1.
    let (code, text, err) = ctl_in(&ns, &cfg, &["status"]);
    assert_eq!(code, 1, "{text}{err}");
    let line = |daemon: &str| {
        text.lines()
            .find(|l| l.starts_with(daemon))
            .unwrap_or_else(|| panic!("no {daemon} in {text}"))
            .to_owned()
    };
    assert!(line("labnet-dnsd").contains(" up"), "{text}");
    assert!(line("labnet-tftpd").contains(" down"), "{text}");
    assert!(line("labnet-dhcpd").contains(" unknown"), "{text}");
    assert!(err.contains("down: labnet-tftpd"), "{err}");
    let mut tftpd = Daemon::start(
        Some(&ns),
        "labnet-tftpd",
        &cfg,
        &dir.path().join("tftpd.log"),
    );
    tftpd.wait_log("serving addrs", Duration::from_secs(20));
    let (code, text, err) = ctl_in(&ns, &cfg, &["status", "--json"]);
    assert_eq!(code, 0, "{text}{err}");
    let rows = json(&text);
    let state = |daemon: &str| {
        rows.as_array()
            .expect("array")
            .iter()
            .find(|r| r["daemon"] == daemon)
            .map(|r| r["state"].as_str().expect("state").to_owned())
    };
    assert_eq!(state("labnet-dnsd").as_deref(), Some("up"), "{text}");
    assert_eq!(state("labnet-tftpd").as_deref(), Some("up"), "{text}");
    assert_eq!(state("labnet-dhcpd").as_deref(), Some("unknown"), "{text}");
    // A daemon that stops is down again.
    dnsd.stop();
    let (code, text, _) = ctl_in(&ns, &cfg, &["status", "--json"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("\"down\""), "{text}");
}

#[test]
fn leases_list_by_subnet_and_json_on_every_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("labnet.db");
    let cfg = write_file(
        dir.path(),
        "labnet.toml",
        &format!(
            r#"
[store]
url = "sqlite://{db}"
[dhcp]
interfaces = ["br0"]
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.200"]
[[dhcp.subnets]]
cidr = "10.78.0.0/24"
pools = ["10.78.0.100-10.78.0.200"]
"#,
            db = db.display()
        ),
    );
    ctl(&cfg, &["init"]);
    // Leases as labnet-dhcpd writes them, through the store's own API.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let lease = |ip: [u8; 4], n: u8| labnet_store::Lease {
        ip: Ipv4Addr::from(ip),
        mac: format!("52:54:00:00:00:{n:02x}"),
        client_id: None,
        hostname: Some(format!("vm{n}")),
        state: labnet_store::LeaseState::Bound,
        starts: now,
        expires: now + 3600,
    };
    let leases = vec![
        lease([10, 77, 0, 100], 1),
        lease([10, 77, 0, 101], 2),
        lease([10, 78, 0, 100], 3),
    ];
    let url = format!("sqlite://{}", db.display());
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let store = labnet_store::open(&url).await.expect("open store");
            store.commit_leases(&leases).await.expect("commit leases");
        });

    let ips = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["leases", "list", "--json"];
        all.extend_from_slice(args);
        json(&ctl(&cfg, &all))
            .as_array()
            .expect("array")
            .iter()
            .map(|l| l["ip"].as_str().expect("ip").to_owned())
            .collect()
    };
    assert_eq!(ips(&[]).len(), 3);
    assert_eq!(
        ips(&["--subnet", "10.77.0.0/24"]),
        ["10.77.0.100", "10.77.0.101"]
    );
    assert_eq!(ips(&["--subnet", "10.78.0.0/16"]), ["10.78.0.100"]);
    assert!(ips(&["--subnet", "10.79.0.0/24"]).is_empty());
    let table = ctl(&cfg, &["leases", "list", "--subnet", "10.78.0.0/24"]);
    assert!(
        table.contains("10.78.0.100") && !table.contains("10.77.0.100"),
        "{table}"
    );
    let bad = Command::new(bin("labnetctl"))
        .arg("--config")
        .arg(&cfg)
        .args(["leases", "list", "--subnet", "10.77.0.0/33"])
        .output()
        .expect("run labnetctl");
    assert!(!bad.status.success(), "{bad:?}");

    // Every `list` speaks JSON.
    ctl(
        &cfg,
        &["reservations", "add", "52:54:00:00:00:09", "10.77.0.50"],
    );
    ctl(&cfg, &["zones", "create", "lab.test"]);
    let reservations = json(&ctl(&cfg, &["reservations", "list", "--json"]));
    assert_eq!(
        reservations.as_array().map(Vec::len),
        Some(1),
        "{reservations}"
    );
    assert!(json(&ctl(&cfg, &["profiles", "list", "--json"])).is_object());
    assert_eq!(
        json(&ctl(&cfg, &["zones", "list", "--json"]))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        json(&ctl(&cfg, &["records", "list", "--json"]))
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
