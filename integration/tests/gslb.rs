//! GSLB (issue 8) through `dig` against labnet-dnsd as built, with the maps,
//! regions, pools and members written by `labnetctl gslb`.
//!
//! The lab: ISPs `red` (10.1.0.0/16) and `blue` (10.2.0.0/16, imported from
//! a file), China Unicom's prefixes from Debian's libloc database
//! (`location export`), regions north / middle / south, pool
//! `abc.gslb.lab.test` (2 answers) with members on 127.0.0.x so that their
//! health checks reach listeners the test opens inside its namespace.
//! Clients are ECS subnets (`dig +subnet=`) and source addresses on the
//! namespace's `lo` (`dig -b`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use labnet_integration::*;

const ZONE: &str = r#"$ORIGIN lab.test.
$TTL 300
@       IN SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 60
        IN NS  ns1
ns1     IN A   127.0.0.1
abc     IN CNAME abc.gslb
"#;

struct Lab {
    dir: tempfile::TempDir,
    ns: Netns,
    cfg: PathBuf,
    dnsd: Option<Daemon>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        require_root();
        require_tools("bind9-dnsutils", &["dig"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = Netns::new(tag);
        // Client source addresses: red/north, red/south, blue/north, no ISP.
        for a in ["10.1.1.5/32", "10.1.2.5/32", "10.2.0.5/32", "192.0.2.5/32"] {
            ns.ip(&["addr", "add", a, "dev", "lo"]);
        }
        let cfg = write_file(
            dir.path(),
            "labnet.toml",
            &format!(
                r#"
[store]
url = "sqlite://{db}"

[dns]
listen = ["127.0.0.1:53"]
recursion_allowed = ["127.0.0.0/8", "10.0.0.0/8"]
forwarders = ["127.0.0.1:5399"]

[dns.gslb]
health_interval = "200ms"
rise = 2
fall = 2
"#,
                db = dir.path().join("labnet.db").display()
            ),
        );
        let zone = write_file(dir.path(), "lab.test.zone", ZONE);
        ctl(&cfg, &["zones", "import", zone.to_str().expect("path")]);
        let lab = Lab {
            dir,
            ns,
            cfg,
            dnsd: None,
        };
        for (r, lat, lon) in [
            ("north", "60", "10"),
            ("middle", "50", "10"),
            ("south", "40", "10"),
        ] {
            lab.ctl(&["gslb", "region", "add", r, "--lat", lat, "--lon", lon]);
        }
        lab.ctl(&["gslb", "isp", "add", "10.1.0.0/16", "red"]);
        let blue = write_file(
            lab.dir.path(),
            "blue.txt",
            "# blue's prefixes\n10.2.0.0/16\n\n198.51.100.0/24   # a comment\n",
        );
        let out = lab.ctl(&[
            "gslb",
            "isp",
            "import",
            "blue",
            blue.to_str().expect("path"),
        ]);
        assert!(out.contains("blue: 2 prefixes"), "{out}");
        lab.ctl(&["gslb", "region", "map", "10.1.1.0/24", "north"]);
        lab.ctl(&["gslb", "region", "map", "10.1.2.0/24", "south"]);
        let north = write_file(lab.dir.path(), "north.txt", "10.2.0.0/16\n");
        lab.ctl(&[
            "gslb",
            "region",
            "import",
            "north",
            north.to_str().expect("path"),
        ]);
        lab
    }

    fn start(&mut self) {
        let log = self.dir.path().join("dnsd.log");
        let mut d = Daemon::start(Some(&self.ns), "labnet-dnsd", &self.cfg, &log);
        d.wait_log("serving", Duration::from_secs(10));
        self.dnsd = Some(d);
    }

    fn ctl(&self, args: &[&str]) -> String {
        ctl(&self.cfg, args)
    }

    fn try_ctl(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(bin("labnetctl"))
            .arg("--config")
            .arg(&self.cfg)
            .args(args)
            .output()
            .expect("labnetctl")
    }

    /// `dig` inside the namespace; the whole output.
    fn dig(&self, args: &str) -> Dig {
        let out = self
            .ns
            .sh(&format!("dig @127.0.0.1 +norec +time=2 +tries=2 {args}"));
        Dig::parse(&out)
    }
}

/// What dig printed, picked apart.
#[derive(Debug)]
struct Dig {
    text: String,
    status: String,
    cname: Option<String>,
    /// A/AAAA RDATA, sorted.
    addrs: Vec<String>,
    /// `; CLIENT-SUBNET: 10.1.1.0/24/24` → "10.1.1.0/24/24".
    ecs: Option<String>,
    ttl: Option<u32>,
}

impl Dig {
    fn parse(text: &str) -> Dig {
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("")
            .to_owned();
        let ecs = text
            .lines()
            .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
            .map(|s| s.trim().to_owned());
        let mut cname = None;
        let mut addrs = Vec::new();
        let mut ttl = None;
        let mut in_answer = false;
        for l in text.lines() {
            if l.starts_with(";; ANSWER SECTION") {
                in_answer = true;
                continue;
            }
            if in_answer && (l.trim().is_empty() || l.starts_with(";;")) {
                in_answer = false;
            }
            if !in_answer {
                continue;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            match f[3] {
                "CNAME" if cname.is_none() => cname = Some(f[4].to_owned()),
                "A" | "AAAA" => {
                    addrs.push(f[4].to_owned());
                    ttl = f[1].parse().ok();
                }
                _ => {}
            }
        }
        addrs.sort();
        Dig {
            text: text.to_owned(),
            status,
            cname,
            addrs,
            ecs,
            ttl,
        }
    }
}

#[test]
fn answers_by_isp_and_region_with_ecs_scope() {
    let mut lab = Lab::new("gslbmap");
    lab.ctl(&[
        "gslb",
        "pool",
        "add",
        "abc.gslb.lab.test",
        "--answers",
        "2",
        "--ttl",
        "20",
    ]);
    for (ip, isp, region) in [
        ("127.0.1.1", "red", "north"),
        ("127.0.1.2", "red", "middle"),
        ("127.0.1.3", "red", "south"),
        ("127.0.2.1", "blue", "north"),
        ("127.0.2.3", "blue", "south"),
        ("127.0.3.1", "unicom", "middle"),
    ] {
        lab.ctl(&[
            "gslb",
            "member",
            "add",
            "abc.gslb.lab.test",
            ip,
            "--isp",
            isp,
            "--region",
            region,
        ]);
    }
    // Real ISP prefixes: China Unicom (AS4837) from the libloc database.
    require_tools("location libloc-database", &["location"]);
    let unicom = lab.dir.path().join("unicom.txt");
    sh(&format!(
        "location export --format list --family ipv4 AS4837 > {}",
        unicom.display()
    ));
    let out = lab.ctl(&[
        "gslb",
        "isp",
        "import",
        "unicom",
        unicom.to_str().expect("path"),
    ]);
    let n: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n > 500, "AS4837 should have hundreds of prefixes: {out}");
    let first = std::fs::read_to_string(&unicom)
        .expect("read")
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a prefix")
        .to_owned();
    lab.start();

    // Level 1 per ISP, from the ECS address.
    let d = lab.dig("+subnet=10.1.1.0/24 abc.gslb.lab.test A");
    assert_eq!(
        d.cname.as_deref(),
        Some("abc.red.gslb.lab.test."),
        "{}",
        d.text
    );
    // Level 2, nearest first: north client gets north + middle; at most 2.
    assert_eq!(d.addrs, ["127.0.1.1", "127.0.1.2"], "{}", d.text);
    assert_eq!(d.ttl, Some(20));
    // RFC 7871 §7.2.1: scope = the longest map entry that decided (/24 region).
    assert_eq!(d.ecs.as_deref(), Some("10.1.1.0/24/24"), "{}", d.text);
    // A south client of the same ISP: south + middle.
    let d = lab.dig("+subnet=10.1.2.0/24 abc.red.gslb.lab.test A");
    assert_eq!(d.addrs, ["127.0.1.2", "127.0.1.3"], "{}", d.text);
    assert_eq!(d.ecs.as_deref(), Some("10.1.2.0/24/24"));
    // ISP scope alone (level 1, CNAME only): the /16.
    let d = lab.dig("+subnet=10.1.9.0/24 abc.gslb.lab.test CNAME");
    assert_eq!(d.cname.as_deref(), Some("abc.red.gslb.lab.test."));
    assert_eq!(d.ecs.as_deref(), Some("10.1.9.0/24/16"), "{}", d.text);
    // blue from the imported file.
    let d = lab.dig("+subnet=10.2.7.0/24 abc.gslb.lab.test A");
    assert_eq!(d.cname.as_deref(), Some("abc.blue.gslb.lab.test."));
    assert_eq!(d.addrs, ["127.0.2.1", "127.0.2.3"], "{}", d.text);
    // Unicom's first prefix from libloc: its only member.
    let addr = first.split('/').next().expect("addr");
    let d = lab.dig(&format!("+subnet={addr}/24 abc.gslb.lab.test A"));
    assert_eq!(
        d.cname.as_deref(),
        Some("abc.unicom.gslb.lab.test."),
        "{}",
        d.text
    );
    assert_eq!(d.addrs, ["127.0.3.1"]);
    // Unknown ISP: `any`, every member considered, no region: order added.
    let d = lab.dig("+subnet=203.0.113.0/24 abc.gslb.lab.test A");
    assert_eq!(
        d.cname.as_deref(),
        Some("abc.any.gslb.lab.test."),
        "{}",
        d.text
    );
    assert_eq!(d.addrs, ["127.0.1.1", "127.0.2.1"], "{}", d.text);
    assert_eq!(d.ecs.as_deref(), Some("203.0.113.0/24/24"));

    // No ECS: the packet's source decides, and no ECS comes back.
    for (src, cname, addrs) in [
        (
            "10.1.1.5",
            "abc.red.gslb.lab.test.",
            ["127.0.1.1", "127.0.1.2"],
        ),
        (
            "10.1.2.5",
            "abc.red.gslb.lab.test.",
            ["127.0.1.2", "127.0.1.3"],
        ),
        (
            "10.2.0.5",
            "abc.blue.gslb.lab.test.",
            ["127.0.2.1", "127.0.2.3"],
        ),
        (
            "192.0.2.5",
            "abc.any.gslb.lab.test.",
            ["127.0.1.1", "127.0.2.1"],
        ),
    ] {
        let d = lab.dig(&format!("-b {src} abc.gslb.lab.test A"));
        assert_eq!(d.cname.as_deref(), Some(cname), "{src}: {}", d.text);
        assert_eq!(d.addrs, addrs, "{src}: {}", d.text);
        assert_eq!(d.ecs, None, "no ECS without ECS: {}", d.text);
    }
    // The ordinary record leads into the pool, for each client its own
    // answer (and through the same dnsd as a resolver, with RD).
    let d = lab.dig("-b 10.1.2.5 abc.lab.test A");
    assert_eq!(d.cname.as_deref(), Some("abc.gslb.lab.test."), "{}", d.text);
    assert_eq!(d.addrs, ["127.0.1.2", "127.0.1.3"], "{}", d.text);
    assert!(d.text.contains("abc.red.gslb.lab.test."), "{}", d.text);
    let d = lab.dig("+rec -b 10.2.0.5 +subnet=10.1.1.0/24 abc.lab.test A");
    assert_eq!(
        d.addrs,
        ["127.0.1.1", "127.0.1.2"],
        "ECS wins over the source: {}",
        d.text
    );
    // Other types at a GSLB name: NODATA with the zone's SOA.
    let d = lab.dig("abc.red.gslb.lab.test TXT");
    assert_eq!(d.status, "NOERROR");
    assert!(d.addrs.is_empty() && d.text.contains("SOA"), "{}", d.text);

    // A labnetctl change is served within a second, without a restart.
    lab.ctl(&[
        "gslb",
        "member",
        "add",
        "abc.gslb.lab.test",
        "127.0.2.9",
        "--isp",
        "blue",
        "--region",
        "north",
        "--weight",
        "5",
    ]);
    lab.ctl(&["gslb", "member", "remove", "abc.gslb.lab.test", "127.0.2.3"]);
    let t0 = Instant::now();
    wait_for("the new member served", Duration::from_secs(1), || {
        let d = lab.dig("+subnet=10.2.7.0/24 abc.blue.gslb.lab.test A");
        (d.addrs == ["127.0.2.1", "127.0.2.9"]).then_some(())
    });
    eprintln!("change served after {:?}", t0.elapsed());

    // explain: the ISP, region, candidates and answer, and why.
    let out = lab.ctl(&["gslb", "explain", "abc.gslb.lab.test", "10.1.2.77"]);
    assert!(out.contains("isp       red (prefix 10.1.0.0/16)"), "{out}");
    assert!(
        out.contains("region    south (prefix 10.1.2.0/24)"),
        "{out}"
    );
    assert!(out.contains("answer    127.0.1.3 127.0.1.2"), "{out}");
    let list = lab.ctl(&["gslb", "list"]);
    assert!(
        list.contains("pool abc.gslb.lab.test.: answers 2, ttl 20"),
        "{list}"
    );

    // Bad input is refused with a message that names it.
    for (args, needle) in [
        (
            vec!["gslb", "isp", "add", "10.1.0.0/33", "red"],
            "10.1.0.0/33",
        ),
        (
            vec!["gslb", "region", "add", "pole", "--lat", "91", "--lon", "0"],
            "91",
        ),
        (
            vec![
                "gslb",
                "member",
                "add",
                "nope.gslb.lab.test",
                "127.0.0.9",
                "--isp",
                "red",
                "--region",
                "north",
            ],
            "nope.gslb.lab.test",
        ),
        (
            vec!["gslb", "pool", "add", "abc.gslb.elsewhere.example"],
            "no zone",
        ),
        (
            vec![
                "gslb",
                "member",
                "add",
                "abc.gslb.lab.test",
                "127.0.0.9",
                "--isp",
                "red",
                "--region",
                "north",
                "--check",
                "udp:53",
            ],
            "udp:53",
        ),
    ] {
        let out = lab.try_ctl(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}

/// Hold a TCP listener on `addr` inside the namespace until dropped.
fn listen(ns: &Netns, addr: &'static str) -> TcpListener {
    in_netns(ns, move || TcpListener::bind(addr).expect("bind"))
}

#[test]
fn health_checks_drop_and_restore_members() {
    let mut lab = Lab::new("gslbhc");
    lab.ctl(&[
        "gslb",
        "pool",
        "add",
        "abc.gslb.lab.test",
        "--answers",
        "2",
        "--when-all-down",
        "none",
    ]);
    for (ip, region, port) in [
        ("127.0.1.1", "north", "7001"),
        ("127.0.1.2", "middle", "7002"),
        ("127.0.1.3", "south", "7003"),
    ] {
        lab.ctl(&[
            "gslb",
            "member",
            "add",
            "abc.gslb.lab.test",
            ip,
            "--isp",
            "red",
            "--region",
            region,
            "--check",
            &format!("tcp:{port}"),
        ]);
    }
    let north = listen(&lab.ns, "127.0.1.1:7001");
    let middle = listen(&lab.ns, "127.0.1.2:7002");
    let south = listen(&lab.ns, "127.0.1.3:7003");
    lab.start();
    let ask = |lab: &Lab| lab.dig("+subnet=10.1.1.0/24 abc.red.gslb.lab.test A");
    assert_eq!(ask(&lab).addrs, ["127.0.1.1", "127.0.1.2"]);

    // North's service stops: gone within fall x interval (2 x 200 ms) plus
    // a probe's time; the next nearest region fills in.
    drop(north);
    let t0 = Instant::now();
    wait_for("north dropped", Duration::from_secs(3), || {
        (ask(&lab).addrs == ["127.0.1.2", "127.0.1.3"]).then_some(())
    });
    eprintln!("member dropped after {:?}", t0.elapsed());
    // The store learns it too (dnsd reports each change): list and explain.
    wait_for("DOWN in gslb list", Duration::from_secs(2), || {
        let list = lab.ctl(&["gslb", "list"]);
        (list.contains("127.0.1.1 isp red region north weight 1 check tcp:7001 :")
            && list.contains("DOWN"))
        .then_some(())
    });
    let out = lab.ctl(&["gslb", "explain", "abc.gslb.lab.test", "10.1.1.1"]);
    assert!(
        out.contains("DOWN") && out.contains("answer    127.0.1.2 127.0.1.3"),
        "{out}"
    );

    // It comes back when the service restarts.
    let north = listen(&lab.ns, "127.0.1.1:7001");
    let t0 = Instant::now();
    wait_for("north back", Duration::from_secs(3), || {
        (ask(&lab).addrs == ["127.0.1.1", "127.0.1.2"]).then_some(())
    });
    eprintln!("member back after {:?}", t0.elapsed());

    // Everything down: --when-all-down none answers NODATA...
    drop((north, middle, south));
    wait_for("NODATA when all are down", Duration::from_secs(3), || {
        let d = ask(&lab);
        (d.status == "NOERROR" && d.addrs.is_empty()).then_some(())
    });
    // ...and `any` answers regardless of health.
    lab.ctl(&[
        "gslb",
        "pool",
        "add",
        "abc.gslb.lab.test",
        "--answers",
        "2",
        "--when-all-down",
        "any",
    ]);
    wait_for("any when all are down", Duration::from_secs(2), || {
        (ask(&lab).addrs == ["127.0.1.1", "127.0.1.2"]).then_some(())
    });
}
