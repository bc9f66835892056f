//! DNSSEC validation in labnet-dnsd's resolver, seen only through `dig`,
//! beside Unbound validating the same hierarchy with the same anchor.
//!
//! The test signs a small fake Internet with BIND's `dnssec-keygen` and
//! `dnssec-signzone` (ECDSA P-256, one key per zone) and serves it with
//! three NSD processes in its own network namespace, one per level, so each
//! zone is answered by its own servers:
//!
//! ```text
//! .  (127.0.0.2, NSEC; its DS is the trust anchor)
//! ├── com. (127.0.0.11, NSEC)   secure.com (DS; NSEC; *.wild), insecure.com (no DS),
//! │                             bogus.com (DS; a record edited after signing),
//! │                             expired.com (DS; signatures expired yesterday)
//! └── net. (127.0.0.12, NSEC3 opt-out)  nsec3.net (DS; NSEC3), plain.net (unsigned)
//!                               (nsec3.net: NSEC3 without opt-out)
//! leaves on 127.0.1.1
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use labnet_integration::*;

struct Zone {
    origin: &'static str,
    /// Which NSD process serves it: 0 root, 1 TLDs, 2 leaves.
    server: usize,
    body: &'static str,
    /// Children with a DS in this zone.
    secure_children: &'static [&'static str],
    /// How to sign it: None = unsigned.
    sign: Option<Sign>,
}

#[derive(Clone, Copy, PartialEq)]
enum Sign {
    Nsec,
    Nsec3,
    Nsec3OptOut,
    Expired,
}

const ZONES: &[Zone] = &[
    Zone {
        origin: ".",
        server: 0,
        body: "@ SOA a.root-servers.net. h.root. 1 1800 900 604800 86400\n\
               @ NS a.root-servers.net.\n\
               a.root-servers.net. A 127.0.0.2\n\
               com. NS ns.nic.com.\nns.nic.com. A 127.0.0.11\n\
               net. NS ns.nic.net.\nns.nic.net. A 127.0.0.12\n",
        secure_children: &["com", "net"],
        sign: Some(Sign::Nsec),
    },
    Zone {
        origin: "com",
        server: 1,
        body: "@ SOA ns.nic.com. h.nic.com. 1 1800 900 604800 300\n\
               @ NS ns.nic.com.\nns.nic A 127.0.0.11\n\
               secure NS ns1.leaf.net.\ninsecure NS ns1.leaf.net.\n\
               bogus NS ns1.leaf.net.\nexpired NS ns1.leaf.net.\n",
        secure_children: &["secure.com", "bogus.com", "expired.com"],
        sign: Some(Sign::Nsec),
    },
    Zone {
        origin: "net",
        server: 1,
        body: "@ SOA ns.nic.net. h.nic.net. 1 1800 900 604800 300\n\
               @ NS ns.nic.net.\nns.nic A 127.0.0.12\n\
               leaf NS ns1.leaf.net.\nns1.leaf A 127.0.1.1\n\
               nsec3 NS ns1.leaf.net.\nplain NS ns1.leaf.net.\n",
        secure_children: &["nsec3.net"],
        sign: Some(Sign::Nsec3OptOut),
    },
    Zone {
        origin: "secure.com",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1.leaf.net.\n\
               www A 192.0.2.10\n*.wild A 192.0.2.11\n",
        secure_children: &[],
        sign: Some(Sign::Nsec),
    },
    Zone {
        origin: "insecure.com",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1.leaf.net.\n\
               www A 192.0.2.20\n",
        secure_children: &[],
        sign: None,
    },
    Zone {
        origin: "bogus.com",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1.leaf.net.\n\
               www A 192.0.2.30\n",
        secure_children: &[],
        sign: Some(Sign::Nsec),
    },
    Zone {
        origin: "expired.com",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1.leaf.net.\n\
               www A 192.0.2.40\n",
        secure_children: &[],
        sign: Some(Sign::Expired),
    },
    Zone {
        origin: "nsec3.net",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1.leaf.net.\n\
               www A 192.0.2.50\n",
        secure_children: &[],
        sign: Some(Sign::Nsec3),
    },
    Zone {
        origin: "plain.net",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1.leaf.net.\n\
               www A 192.0.2.60\n",
        secure_children: &[],
        sign: None,
    },
    Zone {
        origin: "leaf.net",
        server: 2,
        body: "@ SOA ns1.leaf.net. h 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.1.1\n",
        secure_children: &[],
        sign: None,
    },
];

const SERVERS: [&[&str]; 3] = [
    &["127.0.0.2"],
    &["127.0.0.11", "127.0.0.12"],
    &["127.0.1.1"],
];

fn fqdn(origin: &str) -> String {
    if origin == "." {
        ".".into()
    } else {
        format!("{origin}.")
    }
}

fn out(cmd: &mut Command) -> String {
    let o = run(cmd);
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn utc(ago: &str) -> String {
    out(Command::new("date").args(["-u", "-d", ago, "+%Y%m%d%H%M%S"]))
}

/// Keys, DS records and signed zone files under `dir`; the root's DS (the
/// trust anchor) is returned.
fn sign_all(dir: &Path) -> String {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let mut key_of = std::collections::HashMap::new();
    let mut ds_of = std::collections::HashMap::new();
    for z in ZONES.iter().filter(|z| z.sign.is_some()) {
        // One key that signs everything (KSK flag, `-z` below): a CSK.
        let k = out(Command::new("dnssec-keygen")
            .args([
                "-q",
                "-a",
                "ECDSAP256SHA256",
                "-f",
                "KSK",
                "-n",
                "ZONE",
                "-K",
            ])
            .arg(&keys)
            .arg(fqdn(z.origin)));
        let ds = out(Command::new("dnssec-dsfromkey")
            .arg("-2")
            .arg(keys.join(format!("{k}.key"))));
        assert!(ds.contains(" DS "), "dnssec-dsfromkey: {ds}");
        key_of.insert(z.origin, k);
        ds_of.insert(z.origin, ds);
    }
    for z in ZONES {
        let mut text = format!("$ORIGIN {}\n$TTL 3600\n{}", fqdn(z.origin), z.body);
        for c in z.secure_children {
            text.push_str(&ds_of[c]);
            text.push('\n');
        }
        let file = write_file(dir, &format!("{}.zone", file_stem(z.origin)), &text);
        let Some(sign) = z.sign else {
            continue;
        };
        let key = std::fs::read_to_string(keys.join(format!("{}.key", key_of[z.origin])))
            .expect("key file");
        std::fs::write(&file, format!("{text}{key}")).expect("write");
        let mut cmd = Command::new("dnssec-signzone");
        // -d: its dsset- files go to the temporary directory, not the cwd.
        cmd.args(["-q", "-z", "-d"]).arg(dir).arg("-K").arg(&keys);
        cmd.args(["-o", &fqdn(z.origin), "-f"])
            .arg(file.with_extension("signed"));
        match sign {
            Sign::Nsec => {}
            Sign::Nsec3 => {
                cmd.args(["-3", "ab"]);
            }
            Sign::Nsec3OptOut => {
                cmd.args(["-3", "ab", "-A"]);
            }
            Sign::Expired => {
                // Valid from two days ago until yesterday; -P: no
                // post-signing check (it would fail, as intended).
                cmd.args(["-P", "-s", &utc("2 days ago"), "-e", &utc("1 day ago")]);
            }
        }
        run(cmd.arg(&file));
        if z.origin == "bogus.com" {
            // A record edited after signing: its RRSIG no longer matches.
            let signed = file.with_extension("signed");
            let t = std::fs::read_to_string(&signed).expect("signed");
            assert!(t.contains("192.0.2.30"), "{t}");
            std::fs::write(&signed, t.replace("192.0.2.30", "192.0.2.66")).expect("write");
        }
    }
    // The root's key file as dnssec-keygen wrote it (comments and all):
    // labnet gets the anchor in DNSKEY form, Unbound the DS.
    std::fs::copy(
        keys.join(format!("{}.key", key_of["."])),
        dir.join("anchor.key"),
    )
    .expect("copy the root key");
    ds_of["."].clone()
}

fn file_stem(origin: &str) -> &str {
    if origin == "." {
        "root"
    } else {
        origin
    }
}

fn zone_file(dir: &Path, z: &Zone) -> PathBuf {
    let base = dir.join(format!("{}.zone", file_stem(z.origin)));
    match z.sign {
        Some(_) => base.with_extension("signed"),
        None => base,
    }
}

struct Rig {
    dir: tempfile::TempDir,
    ns: Netns,
    children: Vec<Child>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Rig {
    fn new() -> Rig {
        require_root();
        require_tools("bind9-dnsutils", &["dig"]);
        require_tools(
            "bind9-utils",
            &["dnssec-keygen", "dnssec-signzone", "dnssec-dsfromkey"],
        );
        require_tools("nsd", &["nsd"]);
        require_tools("unbound", &["unbound"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = Netns::new("dnssec");
        let anchor = sign_all(dir.path());
        write_file(dir.path(), "anchor.ds", &format!("{anchor}\n"));
        let mut children = Vec::new();
        for (i, addrs) in SERVERS.iter().enumerate() {
            for a in addrs.iter() {
                ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
            }
            let d = dir.path().join(format!("nsd{i}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            let mut conf = String::from("server:\n");
            for a in addrs.iter() {
                conf.push_str(&format!("    ip-address: {a}\n"));
            }
            conf.push_str(&format!(
                "    port: 53\n    username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n    zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n    server-count: 1\n    do-ip6: no\n    rrl-ratelimit: 0\nremote-control:\n    control-enable: no\n",
                d = d.display()
            ));
            for z in ZONES.iter().filter(|z| z.server == i) {
                conf.push_str(&format!(
                    "zone:\n    name: \"{}\"\n    zonefile: \"{}\"\n",
                    fqdn(z.origin),
                    zone_file(dir.path(), z).display()
                ));
            }
            let conf = write_file(&d, "nsd.conf", &conf);
            let log = std::fs::File::create(d.join("nsd.log")).expect("log");
            children.push(
                ns.cmd("nsd")
                    .args(["-d", "-c"])
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("dup"))
                    .stderr(log)
                    .spawn()
                    .expect("start nsd"),
            );
        }
        let mut rig = Rig { dir, ns, children };
        for (addr, zone) in [
            ("127.0.0.2", "."),
            ("127.0.0.12", "net"),
            ("127.0.1.1", "secure.com"),
        ] {
            wait_for(
                &format!("{addr} to serve {zone}"),
                Duration::from_secs(20),
                || {
                    rig.dig(addr, &format!("+norec {zone} SOA"))
                        .contains("status: NOERROR")
                        .then_some(())
                },
            );
        }
        rig.unbound();
        rig
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dig(&self, server: &str, args: &str) -> String {
        let o = self
            .ns
            .cmd("sh")
            .arg("-c")
            .arg(format!("dig @{server} +time=5 +tries=1 {args}"))
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Unbound validating from the same anchor, on 127.0.0.53.
    fn unbound(&mut self) {
        let d = self.path("unbound");
        std::fs::create_dir_all(&d).expect("mkdir");
        let hints = write_file(
            self.dir.path(),
            "root.hints",
            ". 3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A 127.0.0.2\n",
        );
        let conf = write_file(
            &d,
            "unbound.conf",
            &format!(
                "server:\n  interface: 127.0.0.53\n  port: 53\n  num-threads: 1\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  do-ip6: no\n  do-not-query-localhost: no\n  module-config: \"validator iterator\"\n  root-hints: \"{hints}\"\n  trust-anchor-file: \"{anchor}\"\n  access-control: 127.0.0.0/8 allow\n  ede: yes\nremote-control:\n  control-enable: no\n",
                d = d.display(),
                hints = hints.display(),
                anchor = self.path("anchor.ds").display(),
            ),
        );
        self.ns.ip(&["addr", "add", "127.0.0.53/32", "dev", "lo"]);
        let child = self
            .ns
            .cmd("unbound")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("unbound.log")).expect("log"))
            .spawn()
            .expect("start unbound");
        self.children.push(child);
        wait_for("unbound to answer", Duration::from_secs(20), || {
            self.dig("127.0.0.53", ". SOA")
                .contains("status: NOERROR")
                .then_some(())
        });
    }

    fn labnet(&self, extra: &str) -> Daemon {
        let cfg = write_file(
            self.dir.path(),
            "labnet.toml",
            &format!(
                "[store]\nurl = \"sqlite://{db}\"\n\n[dns]\nlisten = [\"127.0.0.1:53\"]\nrecursion_allowed = [\"127.0.0.1/32\"]\nroot_hints = \"{hints}\"\n{extra}\n",
                db = self.path("labnet.db").display(),
                hints = self.path("root.hints").display(),
            ),
        );
        ctl(&cfg, &["zones", "list"]);
        let mut d = Daemon::start(
            Some(&self.ns),
            "labnet-dnsd",
            &cfg,
            &self.path("labnet.log"),
        );
        d.wait_log("serving", Duration::from_secs(10));
        d
    }
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("?")
}

fn ad(out: &str) -> bool {
    out.split("flags:")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .is_some_and(|f| f.split_whitespace().any(|x| x == "ad"))
}

/// The answer section: "name type rdata", sorted, no TTL.
fn answers(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .split(";; ANSWER SECTION:")
        .nth(1)
        .unwrap_or("")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mut s = vec![f[0].to_ascii_lowercase(), f[3].to_owned()];
            s.extend(f[4..].iter().map(|x| x.to_string()));
            s.join(" ")
        })
        .collect();
    v.sort();
    v
}

/// (question, rcode, AD, an address the answer holds, EDE for SERVFAIL)
const CASES: &[(&str, &str, bool, &str, &str)] = &[
    ("www.secure.com A", "NOERROR", true, "192.0.2.10", ""),
    ("nope.secure.com A", "NXDOMAIN", true, "", ""),
    ("www.secure.com TXT", "NOERROR", true, "", ""),
    ("x.wild.secure.com A", "NOERROR", true, "192.0.2.11", ""),
    ("www.nsec3.net A", "NOERROR", true, "192.0.2.50", ""),
    ("nope.nsec3.net A", "NXDOMAIN", true, "", ""),
    ("www.nsec3.net TXT", "NOERROR", true, "", ""),
    ("www.insecure.com A", "NOERROR", false, "192.0.2.20", ""),
    ("www.plain.net A", "NOERROR", false, "192.0.2.60", ""),
    ("www.bogus.com A", "SERVFAIL", false, "", "EDE: 6"),
    ("www.expired.com A", "SERVFAIL", false, "", "EDE: 7"),
];

#[test]
fn validates_a_signed_hierarchy_as_unbound_does() {
    let rig = Rig::new();
    let anchors = rig.path("anchor.key");
    let mut dnsd = rig.labnet(&format!("trust_anchors = \"{}\"", anchors.display()));
    assert!(
        dnsd.log_text().contains("DNSSEC validation on"),
        "{}",
        dnsd.log_text()
    );
    for (q, rcode, want_ad, want, ede) in CASES {
        let start = Instant::now();
        let ours = rig.dig("127.0.0.1", &format!("+dnssec {q}"));
        let took = start.elapsed();
        let theirs = rig.dig("127.0.0.53", &format!("+dnssec {q}"));
        let ctx = format!("{q}\nlabnet:\n{ours}\nunbound:\n{theirs}");
        assert_eq!(status(&ours), *rcode, "{ctx}\nlog:\n{}", dnsd.log_text());
        assert_eq!(ad(&ours), *want_ad, "AD: {ctx}");
        assert!(took < Duration::from_secs(5), "{q} took {took:?}");
        if !want.is_empty() {
            assert!(ours.contains(want), "{ctx}");
        }
        if !ede.is_empty() {
            assert!(ours.contains(ede), "{ede}: {ctx}");
        }
        // Unbound, validating from the same anchor, agrees on all of it;
        // the answer sections (RRSIGs included) are the same records.
        assert_eq!(status(&theirs), *rcode, "Unbound: {ctx}");
        assert_eq!(ad(&theirs), *want_ad, "Unbound AD: {ctx}");
        assert_eq!(answers(&ours), answers(&theirs), "{ctx}");
        if *want_ad && !want.is_empty() {
            assert!(ours.contains("RRSIG"), "DO set, no RRSIG: {ctx}");
        }
    }
    // Without DO the same secure answer comes without RRSIGs; AD still
    // (dig sets AD in its queries, RFC 6840 §5.7).
    let plain = rig.dig("127.0.0.1", "www.secure.com A");
    assert!(!plain.contains("RRSIG"), "{plain}");
    assert!(ad(&plain), "{plain}");
    // The negative answer's proof comes with DO: NSEC3 records.
    let nx = rig.dig("127.0.0.1", "+dnssec nope.nsec3.net A");
    assert!(nx.contains("NSEC3"), "{nx}");
    // CD: the bogus data, unvalidated, as Unbound gives it too.
    for server in ["127.0.0.1", "127.0.0.53"] {
        let cd = rig.dig(server, "+cd www.bogus.com A");
        assert_eq!(status(&cd), "NOERROR", "{server}: {cd}");
        assert!(cd.contains("192.0.2.66"), "{server}: {cd}");
        assert!(!ad(&cd), "{server}: {cd}");
    }
    // The bogus verdict is cached: asked again, SERVFAIL at once.
    let start = Instant::now();
    let again = rig.dig("127.0.0.1", "www.bogus.com A");
    assert_eq!(status(&again), "SERVFAIL", "{again}");
    assert!(again.contains("EDE: 6"), "{again}");
    assert!(start.elapsed() < Duration::from_millis(500));
    dnsd.stop();

    // dnssec = false: the same resolver answers the bogus name, no AD.
    let mut off = rig.labnet("dnssec = false");
    let out = rig.dig("127.0.0.1", "www.bogus.com A");
    assert_eq!(status(&out), "NOERROR", "{out}\n{}", off.log_text());
    assert!(out.contains("192.0.2.66") && !ad(&out), "{out}");
    let out = rig.dig("127.0.0.1", "www.secure.com A");
    assert!(!ad(&out), "{out}");
    off.stop();
}
