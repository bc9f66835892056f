//! `labnetctl` as built refuses what the daemons would take and then
//! misbehave on (issue 12, finding 8), and the store keeps nothing of it.

use std::process::Command;

use labnet_integration::{bin, ctl, write_file};

const CONFIG: &str = r#"
[store]
url = "sqlite://DB"
[dhcp]
interfaces = ["br0"]
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.200"]
routers = ["10.77.0.1"]
dns_servers = ["10.77.0.1"]
[dns]
listen = ["10.77.0.53:53"]
"#;

const ZONE: &str = "$ORIGIN lab.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 10.77.0.1\nwww IN CNAME ns1\n";

/// `labnetctl ARGS`: (success, stdout + stderr).
fn try_ctl(cfg: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("labnetctl"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .expect("run labnetctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn labnetctl_refuses_what_the_daemons_cannot_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("labnet.db");
    let cfg = write_file(
        dir.path(),
        "labnet.toml",
        &CONFIG.replace("DB", db.to_str().expect("utf-8")),
    );
    ctl(&cfg, &["init"]);
    let zone = write_file(dir.path(), "lab.zone", ZONE);
    ctl(&cfg, &["zones", "import", zone.to_str().expect("utf-8")]);
    let sixteen = ["aa"; 16].join(":");
    let refused: &[(&[&str], &str)] = &[
        (&["reservations", "add", "52:54", "10.77.0.50"], "6"),
        (
            &["reservations", "add", "52:54:00:00:01", "10.77.0.50"],
            "6",
        ),
        (&["reservations", "add", &sixteen, "10.77.0.50"], "6"),
        (
            &["reservations", "add", "52:54:00:00:00:01", "0.0.0.0"],
            "outside",
        ),
        (
            &["reservations", "add", "52:54:00:00:00:01", "10.77.0.0"],
            "network",
        ),
        (
            &["reservations", "add", "52:54:00:00:00:01", "10.77.0.255"],
            "broadcast",
        ),
        (
            &["reservations", "add", "52:54:00:00:00:01", "10.77.0.1"],
            "router",
        ),
        (
            &["reservations", "add", "52:54:00:00:00:01", "10.77.0.53"],
            "listens",
        ),
        (
            &["reservations", "add", "52:54:00:00:00:01", "10.99.0.5"],
            "outside",
        ),
        (
            &[
                "reservations",
                "add",
                "52:54:00:00:00:01",
                "10.77.0.50",
                "--hostname",
                "bad host!name",
            ],
            "host name",
        ),
        (
            &[
                "reservations",
                "add",
                "52:54:00:00:00:01",
                "10.77.0.50",
                "--profile",
                "nosuchprofile",
            ],
            "no boot profile",
        ),
        (
            &["profiles", "assign", "52:54:00:00:00:01", "nosuchprofile"],
            "no boot profile",
        ),
        (
            &["records", "add", "www.lab.test", "A", "10.77.0.9"],
            "CNAME",
        ),
        (
            &["records", "add", "ns1.lab.test", "CNAME", "www.lab.test."],
            "CNAME",
        ),
    ];
    for (args, why) in refused {
        let (ok, text) = try_ctl(&cfg, args);
        assert!(!ok, "labnetctl {args:?} was accepted: {text}");
        assert!(
            text.contains(why),
            "labnetctl {args:?}: `{why}` not in: {text}"
        );
    }
    // Nothing of it reached the store; a good reservation still goes in.
    assert!(!ctl(&cfg, &["reservations", "list"]).contains("52:54"));
    let (ok, text) = try_ctl(
        &cfg,
        &[
            "reservations",
            "add",
            "52:54:00:00:00:01",
            "10.77.0.50",
            "--hostname",
            "vm1",
        ],
    );
    assert!(ok, "{text}");
    // A zone file with a syntax error is refused with its line.
    let bad = write_file(
        dir.path(),
        "bad.zone",
        "$ORIGIN bad.test.\n$TTL 60\n@ IN SOA ns1 h (\n 1 2 3 4 5 )\nns1 IN A 10.0.0.1\nmx IN MX ten ns1\n",
    );
    let (ok, text) = try_ctl(&cfg, &["zones", "import", bad.to_str().expect("utf-8")]);
    assert!(!ok && text.contains("line 6:"), "{text}");
    assert!(!text.contains("needs --origin"), "misleading hint: {text}");
}
