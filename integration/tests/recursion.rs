//! labnet-dnsd as a recursive resolver, seen only through `dig`, against a
//! fake Internet the test builds in its own network namespace: NSD serving a
//! root, three TLDs and leaf zones on loopback addresses, a small dnspython
//! server that tries to poison the cache, an nft rule that makes one server
//! silent, and Unbound on the same hierarchy for comparison and as a
//! forwarder.
//!
//! Zones are under .com/.net/.example, never .test (Unbound answers .test
//! NXDOMAIN by itself, RFC 6761). A CNAME into another zone points at a zone
//! on the other NSD process, so a resolver that never follows CNAMEs into
//! other zones cannot look right by accident.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use labnet_integration::*;

/// root on .2; TLDs on .11 (com), .12 (net), .13 (example); leaf NSD A on
/// 127.0.1.1, leaf NSD B on 127.0.2.1 (+ 127.0.2.9, lame for lame.com);
/// 127.0.1.9 is silent (dropped); the poisoner on 127.0.3.1; a slow but
/// working server on 127.0.3.2.
const ROOT: &str = r#"$TTL 86400
.                   SOA a.root-servers.net. h.root. 1 1800 900 604800 86400
.                   NS  a.root-servers.net.
a.root-servers.net. A   127.0.0.2
root-servers.net.   NS  a.root-servers.net.
com.                NS  ns.nic.com.
ns.nic.com.         A   127.0.0.11
net.                NS  ns.nic.net.
ns.nic.net.         A   127.0.0.12
example.            NS  ns.nic.example.
ns.nic.example.     A   127.0.0.13
"#;

const ROOT_SERVERS_NET: &str = r#"$TTL 86400
@   SOA a.root-servers.net. h.root. 1 1800 900 604800 86400
@   NS  a
a   A   127.0.0.2
"#;

const COM: &str = r#"$TTL 86400
com.            SOA ns.nic.com. h.nic.com. 1 1800 900 604800 300
com.            NS  ns.nic.com.
ns.nic.com.     A   127.0.0.11
glue.com.       NS  ns1.glue.com.
ns1.glue.com.   A   127.0.1.1
glueless.com.   NS  ns.hoster.net.
chain1.com.     NS  ns1.chain1.com.
ns1.chain1.com. A   127.0.1.1
silent.com.     NS  ns1.silent.com.
silent.com.     NS  ns2.silent.com.
ns1.silent.com. A   127.0.1.9
ns2.silent.com. A   127.0.1.1
lame.com.       NS  ns1.lame.com.
lame.com.       NS  ns2.lame.com.
ns1.lame.com.   A   127.0.2.9
ns2.lame.com.   A   127.0.1.1
evil.com.       NS  ns.evil.com.
ns.evil.com.    A   127.0.3.1
slowsilent.com.     NS  ns1.slowsilent.com.
slowsilent.com.     NS  ns2.slowsilent.com.
ns1.slowsilent.com. A   127.0.1.9
ns2.slowsilent.com. A   127.0.3.2
slowlame.com.       NS  ns1.slowlame.com.
slowlame.com.       NS  ns2.slowlame.com.
ns1.slowlame.com.   A   127.0.2.9
ns2.slowlame.com.   A   127.0.3.2
"#;

const NET: &str = r#"$TTL 86400
net.                SOA ns.nic.net. h.nic.net. 1 1800 900 604800 300
net.                NS  ns.nic.net.
ns.nic.net.         A   127.0.0.12
root-servers.net.   NS  a.root-servers.net.
a.root-servers.net. A   127.0.0.2
hoster.net.         NS  ns1.hoster.net.
ns1.hoster.net.     A   127.0.2.1
chain2.net.         NS  ns1.chain2.net.
ns1.chain2.net.     A   127.0.2.1
"#;

const EXAMPLE: &str = r#"$TTL 86400
example.            SOA ns.nic.example. h.nic.example. 1 1800 900 604800 300
example.            NS  ns.nic.example.
ns.nic.example.     A   127.0.0.13
chain3.example.     NS  ns1.chain3.example.
ns1.chain3.example. A   127.0.1.1
"#;

fn leaf(origin: &str, ns: &[(&str, &str)], body: &str) -> String {
    let mut z = format!(
        "$ORIGIN {origin}.\n$TTL 3600\n@ SOA {} h.{origin}. 1 3600 600 86400 300\n",
        ns[0].0
    );
    for (name, addr) in ns {
        z.push_str(&format!("@ NS {name}\n"));
        if name.ends_with(&format!("{origin}.")) {
            z.push_str(&format!("{name} A {addr}\n"));
        }
    }
    z.push_str(body);
    z
}

/// Leaf zones: (process, origin, zone text).
fn leaves() -> Vec<(char, &'static str, String)> {
    let big: String = (0..40)
        .map(|i| format!(" \"{i:02}-{}\"", "x".repeat(60)))
        .collect();
    // A chain of 20 CNAMEs alternating between chain1.com (odd, NSD A) and
    // chain2.net (even, NSD B).
    let mut odd = String::new();
    let mut even = String::new();
    for i in 1..=20 {
        let line = if i % 2 == 1 {
            format!("l{i} CNAME l{}.chain2.net.\n", i + 1)
        } else {
            format!("l{i} CNAME l{}.chain1.com.\n", i + 1)
        };
        if i % 2 == 1 {
            odd.push_str(&line);
        } else {
            even.push_str(&line);
        }
    }
    odd.push_str("l21 A 192.0.2.99\n");
    vec![
        (
            'A',
            "glue.com",
            leaf(
                "glue.com",
                &[("ns1.glue.com.", "127.0.1.1")],
                &format!(
                    "www A 192.0.2.10\nmail A 192.0.2.11\nshort 2 A 192.0.2.12\nbig TXT{big}\n"
                ),
            ),
        ),
        (
            'A',
            "glueless.com",
            leaf(
                "glueless.com",
                &[("ns.hoster.net.", "")],
                "www A 192.0.2.20\n",
            ),
        ),
        (
            'A',
            "chain1.com",
            leaf(
                "chain1.com",
                &[("ns1.chain1.com.", "127.0.1.1")],
                &format!("www CNAME www.chain2.net.\nloop CNAME loop.chain2.net.\n{odd}"),
            ),
        ),
        (
            'A',
            "chain3.example",
            leaf(
                "chain3.example",
                &[("ns1.chain3.example.", "127.0.1.1")],
                "www A 192.0.2.30\n",
            ),
        ),
        (
            'A',
            "silent.com",
            leaf(
                "silent.com",
                &[
                    ("ns1.silent.com.", "127.0.1.9"),
                    ("ns2.silent.com.", "127.0.1.1"),
                ],
                "www A 192.0.2.40\n",
            ),
        ),
        (
            'A',
            "lame.com",
            leaf(
                "lame.com",
                &[
                    ("ns1.lame.com.", "127.0.2.9"),
                    ("ns2.lame.com.", "127.0.1.1"),
                ],
                "www A 192.0.2.50\n",
            ),
        ),
        (
            'B',
            "hoster.net",
            leaf(
                "hoster.net",
                &[("ns1.hoster.net.", "127.0.2.1")],
                "ns A 127.0.1.1\n",
            ),
        ),
        (
            'B',
            "chain2.net",
            leaf(
                "chain2.net",
                &[("ns1.chain2.net.", "127.0.2.1")],
                &format!("www CNAME www.chain3.example.\nloop CNAME loop.chain1.com.\n{even}"),
            ),
        ),
        // Not delegated from .example: only conditional forwarding finds it.
        (
            'B',
            "fwd.example",
            leaf(
                "fwd.example",
                &[("ns1.hoster.net.", "127.0.2.1")],
                "www A 192.0.2.80\n",
            ),
        ),
    ]
}

/// Answers anything under evil.com, and slips in records for glue.com (a
/// zone it has no authority over) in every section it can.
const POISONER: &str = r#"
import socket, sys, dns.message, dns.rrset, dns.flags, dns.rcode
seen = open(sys.argv[1], "a", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.3.1", 53))
while True:
    data, peer = s.recvfrom(4096)
    try:
        q = dns.message.from_wire(data)
    except Exception:
        continue
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    qn = q.question[0].name
    seen.write("%s %d\n" % (qn.to_text().lower(), q.question[0].rdtype))
    if qn.to_text().endswith("evil.com.") and q.question[0].rdtype == 1:
        r.answer.append(dns.rrset.from_text(qn, 300, "IN", "A", "192.0.2.66"))
    r.answer.append(dns.rrset.from_text("www.glue.com.", 300, "IN", "A", "6.6.6.6"))
    r.answer.append(dns.rrset.from_text("mail.glue.com.", 300, "IN", "A", "6.6.6.6"))
    r.authority.append(dns.rrset.from_text("glue.com.", 300, "IN", "NS", "ns.evil.com."))
    r.additional.append(dns.rrset.from_text("ns.evil.com.", 300, "IN", "A", "127.0.3.1"))
    r.additional.append(dns.rrset.from_text("ns1.glue.com.", 300, "IN", "A", "127.0.3.1"))
    s.sendto(r.to_wire(), peer)
"#;

/// Authoritative for slowsilent.com and slowlame.com, every name an A
/// record, 150 ms late: once a resolver has measured it, a server it has
/// never tried ranks before it, so the silent and the lame server beside it
/// are certain to be tried within two questions.
const SLOW: &str = r#"
import socket, time, dns.message, dns.rrset, dns.flags, dns.rcode, dns.rdatatype
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.3.2", 53))
while True:
    data, peer = s.recvfrom(4096)
    try:
        q = dns.message.from_wire(data)
    except Exception:
        continue
    time.sleep(0.15)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    qn = q.question[0].name
    zone = next((z for z in ("slowsilent.com.", "slowlame.com.") if qn.to_text().lower().endswith(z)), None)
    if zone is None:
        r.set_rcode(dns.rcode.REFUSED)
    elif q.question[0].rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text(qn, 300, "IN", "A", "192.0.2.41"))
    elif q.question[0].rdtype == dns.rdatatype.NS and qn.to_text().lower() == zone:
        r.answer.append(dns.rrset.from_text(qn, 300, "IN", "NS", "ns2." + zone))
    else:
        r.authority.append(dns.rrset.from_text(zone, 300, "IN", "SOA", "ns2.%s h.%s 1 3600 600 86400 300" % (zone, zone)))
    s.sendto(r.to_wire(), peer)
"#;

struct Internet {
    dir: tempfile::TempDir,
    ns: Netns,
    hints: PathBuf,
    /// NSD, the poisoner, Unbound: killed by PID and reaped on drop.
    children: Mutex<Vec<Child>>,
}

impl Drop for Internet {
    fn drop(&mut self) {
        for c in lock(&self.children).iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An NSD process: its name, addresses, and (origin, zone text) pairs.
type NsdProc<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>);

fn nsd_conf(d: &Path, addrs: &[&str], zones: &[(&str, PathBuf)]) -> String {
    let mut c = String::from("server:\n");
    for a in addrs {
        c.push_str(&format!("    ip-address: {a}\n"));
    }
    c.push_str(&format!(
        r#"    port: 53
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    server-count: 1
    verbosity: 1
    do-ip6: no
    rrl-ratelimit: 0
remote-control:
    control-enable: no
"#,
        d = d.display()
    ));
    for (name, file) in zones {
        c.push_str(&format!(
            "zone:\n    name: \"{name}\"\n    zonefile: \"{}\"\n",
            file.display()
        ));
    }
    c
}

impl Internet {
    fn new(tag: &str) -> Internet {
        require_root();
        require_tools("bind9-dnsutils", &["dig"]);
        require_tools("nsd", &["nsd"]);
        require_tools("nftables", &["nft"]);
        let ok = Command::new("/usr/bin/python3")
            .args(["-c", "import dns.message"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "/usr/bin/python3 cannot import dns: install the Debian package python3-dnspython"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = Netns::new(tag);
        let mut children = Vec::new();
        let mut procs: Vec<NsdProc> = vec![
            (
                "root",
                vec!["127.0.0.2"],
                vec![
                    (".", ROOT.into()),
                    ("root-servers.net", ROOT_SERVERS_NET.into()),
                ],
            ),
            (
                "tld",
                vec!["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                vec![
                    ("com", COM.into()),
                    ("net", NET.into()),
                    ("example", EXAMPLE.into()),
                ],
            ),
            ("A", vec!["127.0.1.1"], Vec::new()),
            ("B", vec!["127.0.2.1", "127.0.2.9"], Vec::new()),
        ];
        for (p, origin, text) in leaves() {
            let i = if p == 'A' { 2 } else { 3 };
            procs[i].2.push((origin, text));
        }
        for (name, addrs, zones) in &procs {
            for a in addrs {
                ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
            }
            let d = dir.path().join(format!("nsd-{name}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            let files: Vec<(&str, PathBuf)> = zones
                .iter()
                .map(|(origin, text)| {
                    let f = if *origin == "." { "root" } else { origin };
                    (*origin, write_file(&d, &format!("{f}.zone"), text))
                })
                .collect();
            let conf = write_file(&d, "nsd.conf", &nsd_conf(&d, addrs, &files));
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
        ns.ip(&["addr", "add", "127.0.3.1/32", "dev", "lo"]);
        let py = write_file(dir.path(), "poisoner.py", POISONER);
        children.push(
            ns.cmd("/usr/bin/python3")
                .arg(&py)
                .arg(dir.path().join("poisoner.seen"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("poisoner.log")).expect("log"))
                .spawn()
                .expect("start the poisoner"),
        );
        ns.ip(&["addr", "add", "127.0.3.2/32", "dev", "lo"]);
        let py = write_file(dir.path(), "slow.py", SLOW);
        children.push(
            ns.cmd("/usr/bin/python3")
                .arg(&py)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("slow.log")).expect("log"))
                .spawn()
                .expect("start the slow server"),
        );
        // 127.0.1.9 is a black hole (on loopback an unused port would
        // answer at once with ICMP unreachable). The counters show which
        // questions reached the silent and the lame server.
        ns.sh("nft add table inet blackhole && \
               nft add chain inet blackhole out '{ type filter hook output priority 0 ; }' && \
               nft add rule inet blackhole out ip daddr 127.0.1.9 udp dport 53 counter && \
               nft add rule inet blackhole out ip daddr 127.0.2.9 udp dport 53 counter && \
               nft add rule inet blackhole out ip daddr 127.0.1.9 drop");
        let hints = write_file(
            dir.path(),
            "root.hints",
            ".                    3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A  127.0.0.2\n",
        );
        let net = Internet {
            dir,
            ns,
            hints,
            children: Mutex::new(children),
        };
        for (addr, zone) in [
            ("127.0.0.2", "."),
            ("127.0.0.11", "com"),
            ("127.0.1.1", "glue.com"),
            ("127.0.2.1", "chain2.net"),
            ("127.0.3.1", "www.evil.com"),
            ("127.0.3.2", "slowlame.com"),
        ] {
            wait_for(
                &format!("{addr} to answer for {zone}"),
                Duration::from_secs(20),
                || {
                    let out = net.dig(addr, &format!("+norec {zone} SOA"));
                    out.contains("status:").then_some(())
                },
            );
        }
        net
    }

    /// `dig @SERVER ARGS` inside the namespace; stdout.
    fn dig(&self, server: &str, args: &str) -> String {
        let out = self
            .ns
            .cmd("sh")
            .arg("-c")
            .arg(format!("dig @{server} +time=5 +tries=1 {args}"))
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Packets the resolver sent to `addr` port 53 so far (the nft
    /// counters set up in `new`).
    fn sent_to(&self, addr: &str) -> u64 {
        let out = self.ns.sh("nft list chain inet blackhole out");
        out.lines()
            .find(|l| l.contains(&format!("ip daddr {addr} udp dport 53 counter")))
            .and_then(|l| l.split("packets ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no nft counter for {addr}:\n{out}"))
    }

    /// labnet-dnsd on `listen` with `extra` in `[dns]` and `more` after.
    fn labnet(&self, name: &str, listen: &str, extra: &str, more: &str) -> Daemon {
        let cfg = write_file(
            self.dir.path(),
            &format!("{name}.toml"),
            &format!(
                r#"
[store]
url = "sqlite://{db}"

[dns]
listen = ["{listen}"]
{extra}
{more}
"#,
                db = self.dir.path().join(format!("{name}.db")).display()
            ),
        );
        ctl(&cfg, &["zones", "list"]);
        let log = self.dir.path().join(format!("{name}.log"));
        let mut d = Daemon::start(Some(&self.ns), "labnet-dnsd", &cfg, &log);
        d.wait_log("serving", Duration::from_secs(10));
        d
    }

    /// Unbound iterating the same hierarchy, on 127.0.0.53.
    fn unbound(&self) {
        require_tools("unbound", &["unbound"]);
        let d = self.dir.path().join("unbound");
        std::fs::create_dir_all(&d).expect("mkdir");
        let conf = write_file(
            &d,
            "unbound.conf",
            &format!(
                r#"server:
  interface: 127.0.0.53
  port: 53
  num-threads: 1
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-ip6: no
  do-not-query-localhost: no
  module-config: "iterator"
  root-hints: "{hints}"
  access-control: 127.0.0.0/8 allow
  qname-minimisation: no
remote-control:
  control-enable: no
"#,
                d = d.display(),
                hints = self.hints.display()
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
        lock(&self.children).push(child);
        wait_for("unbound to answer", Duration::from_secs(20), || {
            self.dig("127.0.0.53", ". SOA")
                .contains("status: NOERROR")
                .then_some(())
        });
    }
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("?")
}

fn flags(out: &str) -> String {
    out.split("flags:")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .to_owned()
}

/// The answer section of dig output: "name type rdata", sorted, no TTL.
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
            // name ttl class type rdata...
            let mut s = vec![f[0].to_ascii_lowercase(), f[3].to_owned()];
            s.extend(f[4..].iter().map(|x| x.to_string()));
            s.join(" ")
        })
        .collect();
    v.sort();
    v
}

/// (rcode, answers) for one question.
fn outcome(out: &str) -> (String, Vec<String>) {
    (status(out).to_owned(), answers(out))
}

/// The questions compared with Unbound, and what the zones say.
const CASES: &[(&str, &str, &str)] = &[
    // (question, rcode, an address or record the answer must hold)
    ("www.glue.com A", "NOERROR", "192.0.2.10"),
    ("www.glueless.com A", "NOERROR", "192.0.2.20"),
    ("www.chain1.com A", "NOERROR", "192.0.2.30"),
    ("big.glue.com TXT", "NOERROR", "39-xxxx"),
    ("nope.glue.com A", "NXDOMAIN", ""),
    ("www.glue.com AAAA", "NOERROR", ""),
    ("www.lame.com A", "NOERROR", "192.0.2.50"),
    ("www.silent.com A", "NOERROR", "192.0.2.40"),
];

#[test]
fn iterates_a_fake_internet_as_unbound_does() {
    let net = Internet::new("rec");
    let mut dnsd = net.labnet(
        "iter",
        "127.0.0.1:53",
        &format!(
            "recursion_allowed = [\"127.0.0.1/32\"]\nroot_hints = \"{}\"",
            net.hints.display()
        ),
        "",
    );
    net.unbound();
    for (q, rcode, want) in CASES {
        let start = Instant::now();
        let ours = net.dig("127.0.0.1", q);
        let took = start.elapsed();
        let theirs = net.dig("127.0.0.53", q);
        assert_eq!(
            status(&ours),
            *rcode,
            "{q}:\n{ours}\nlog:\n{}",
            dnsd.log_text()
        );
        assert!(flags(&ours).contains(" ra"), "{q}: RA\n{ours}");
        assert!(took < Duration::from_secs(5), "{q} took {took:?}\n{ours}");
        if !want.is_empty() {
            assert!(ours.contains(want), "{q}: {want} missing\n{ours}");
        }
        assert_eq!(
            outcome(&ours),
            outcome(&theirs),
            "{q}: labnet and Unbound differ\nlabnet:\n{ours}\nunbound:\n{theirs}"
        );
        if *rcode == "NXDOMAIN" || (q.ends_with("AAAA") && want.is_empty()) {
            // RFC 2308: the negative answer carries the zone's SOA.
            assert!(ours.contains("SOA"), "{q}: no SOA\n{ours}");
        }
    }
    // The answer that only fits over TCP (NSD truncates it over UDP) came
    // whole: all 40 strings of the one TXT record.
    let big = net.dig("127.0.0.1", "big.glue.com TXT");
    assert_eq!(answers(&big).len(), 1, "{big}");
    assert!(big.contains("\"00-") && big.contains("\"39-"), "{big}");

    // A 2-second answer, to be served stale later.
    let short = net.dig("127.0.0.1", "short.glue.com A");
    assert!(short.contains("192.0.2.12"), "{short}");
    let short_at = Instant::now();

    // Cached: with every leaf server now unreachable, the same questions
    // (positive, NXDOMAIN, NODATA) are still answered, so no upstream query
    // was needed.
    net.ns.sh(
        "nft add rule inet blackhole out ip daddr 127.0.1.1 drop && \
               nft add rule inet blackhole out ip daddr 127.0.2.1 drop",
    );
    for (q, rcode, _) in CASES {
        let start = Instant::now();
        let out = net.dig("127.0.0.1", q);
        assert_eq!(status(&out), *rcode, "{q} from the cache:\n{out}");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{q}: not from the cache"
        );
    }
    // Serve-stale (RFC 8767): expired, its server unreachable, the old
    // answer still comes, with TTL 30 and EDE 3, within the 1.8 s wait.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(short_at.elapsed()));
    let start = Instant::now();
    let out = net.dig("127.0.0.1", "short.glue.com A");
    assert_eq!(status(&out), "NOERROR", "{out}\nlog:\n{}", dnsd.log_text());
    assert!(
        out.contains("192.0.2.12") && out.contains("EDE: 3"),
        "{out}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    // Lab-style ACL: another source address on the same host is refused,
    // with RA clear and an EDE saying why.
    let out = net.dig("127.0.0.1", "-b 127.0.0.5 www.glue.com A");
    assert_eq!(status(&out), "REFUSED", "{out}");
    assert!(!flags(&out).contains(" ra"), "{out}");
    assert!(out.contains("EDE: 18"), "{out}");
    // Private reverse zones never leave the box (RFC 6303).
    let out = net.dig("127.0.0.1", "-x 10.1.2.3");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("10.in-addr.arpa"), "{out}");
    dnsd.stop();
}

/// A silent server and a lame one, each beside a working one that is slow
/// (150 ms): both bad servers are tried (the nft counters show it), the
/// answers still come in a few seconds, and once a bad server failed it is
/// left alone (backed off) while the working one answers the next names.
#[test]
fn silent_and_lame_servers_are_tried_then_backed_off() {
    let net = Internet::new("reclame");
    let mut dnsd = net.labnet(
        "lame",
        "127.0.0.1:53",
        &format!(
            "recursion_allowed = [\"127.0.0.1/32\"]\nroot_hints = \"{}\"",
            net.hints.display()
        ),
        "",
    );
    for (zone, bad) in [
        ("slowsilent.com", "127.0.1.9"),
        ("slowlame.com", "127.0.2.9"),
    ] {
        // Two new names: the first measures the slow server (whichever
        // was tried first), so the second certainly tries the bad one if
        // the first did not.
        for host in ["a", "b"] {
            let q = format!("{host}.{zone} A");
            let start = Instant::now();
            let out = net.dig("127.0.0.1", &q);
            let took = start.elapsed();
            assert_eq!(
                answers(&out),
                [format!("{host}.{zone}. A 192.0.2.41")],
                "{q}:\n{out}\nlog:\n{}",
                dnsd.log_text()
            );
            assert!(took < Duration::from_secs(3), "{q} took {took:?}");
        }
        let tried = net.sent_to(bad);
        assert!(tried >= 1, "{zone}: {bad} was never asked");
        // Backed off: more names, answered by the slow server alone.
        for host in ["c", "d", "e"] {
            let q = format!("{host}.{zone} A");
            let start = Instant::now();
            let out = net.dig("127.0.0.1", &q);
            assert!(out.contains("192.0.2.41"), "{q}:\n{out}");
            assert!(
                start.elapsed() < Duration::from_millis(1500),
                "{q} took {:?}: the bad server was not avoided",
                start.elapsed()
            );
        }
        assert_eq!(
            net.sent_to(bad),
            tried,
            "{zone}: {bad} asked again within its back-off"
        );
    }
    dnsd.stop();
}

#[test]
fn misbehaving_servers_and_poisoning() {
    let net = Internet::new("recbad");
    let mut dnsd = net.labnet(
        "bad",
        "127.0.0.1:53",
        &format!(
            "recursion_allowed = [\"127.0.0.0/8\"]\nroot_hints = \"{}\"",
            net.hints.display()
        ),
        "",
    );
    net.unbound();
    // A CNAME loop across two zones and a 20-link chain: SERVFAIL, fast,
    // with the reason, as Unbound says too.
    for q in ["loop.chain1.com A", "l1.chain1.com A"] {
        let start = Instant::now();
        let out = net.dig("127.0.0.1", q);
        let took = start.elapsed();
        assert_eq!(
            status(&out),
            "SERVFAIL",
            "{q}:\n{out}\nlog:\n{}",
            dnsd.log_text()
        );
        assert!(out.contains("EDE:"), "{q}: no EDE\n{out}");
        assert!(took < Duration::from_secs(5), "{q} took {took:?}");
        let theirs = net.dig("127.0.0.53", q);
        assert_eq!(status(&theirs), "SERVFAIL", "{q}: Unbound\n{theirs}");
    }
    // The daemon still serves.
    let out = net.dig("127.0.0.1", "www.glue.com A");
    assert!(out.contains("192.0.2.10"), "{out}");
    // The poisoner answers for its own zone and adds records for glue.com;
    // they must not be believed.
    let out = net.dig("127.0.0.1", "www.evil.com A");
    assert!(out.contains("192.0.2.66"), "{out}");
    let out = net.dig("127.0.0.1", "www.glue.com A");
    assert_eq!(answers(&out), ["www.glue.com. A 192.0.2.10"], "{out}");
    let out = net.dig("127.0.0.1", "ns1.glue.com A");
    assert_eq!(answers(&out), ["ns1.glue.com. A 127.0.1.1"], "{out}");
    // A name nobody asked before the attack: only the forged record could
    // have put it in the cache.
    let out = net.dig("127.0.0.1", "mail.glue.com A");
    assert_eq!(answers(&out), ["mail.glue.com. A 192.0.2.11"], "{out}");
    // Unbound, after the same poisoning attempt, agrees.
    net.dig("127.0.0.53", "www.evil.com A");
    for q in [
        "www.glue.com A",
        "ns1.glue.com A",
        "mail.glue.com A",
        "www.evil.com A",
    ] {
        assert_eq!(
            outcome(&net.dig("127.0.0.1", q)),
            outcome(&net.dig("127.0.0.53", q)),
            "{q}"
        );
    }
    // QNAME minimisation (RFC 9156): evil.com's server learns the name one
    // label at a time, asked type A, and the real type only at the end.
    let out = net.dig("127.0.0.1", "a.b.c.evil.com TXT");
    assert_eq!(status(&out), "NOERROR", "{out}");
    let seen = std::fs::read_to_string(net.dir.path().join("poisoner.seen")).expect("seen");
    let asked: Vec<&str> = seen
        .lines()
        .filter(|l| {
            l.ends_with(".c.evil.com. 1") || l.starts_with("c.evil.com.") || l.contains("a.b.c")
        })
        .collect();
    assert_eq!(
        asked,
        ["c.evil.com. 1", "b.c.evil.com. 1", "a.b.c.evil.com. 16"],
        "{seen}"
    );
    dnsd.stop();
}

#[test]
fn forwards_to_unbound_and_per_zone() {
    let net = Internet::new("recfwd");
    net.unbound();
    let mut dnsd = net.labnet(
        "fwd",
        "127.0.0.1:53",
        "recursion_allowed = [\"127.0.0.1/32\"]\nforwarders = [\"127.0.0.53:53\"]",
        "[[dns.forward]]\nzone = \"fwd.example\"\nservers = [\"127.0.2.1:53\"]\n",
    );
    for (q, rcode, want) in CASES.iter().take(6) {
        let out = net.dig("127.0.0.1", q);
        assert_eq!(
            status(&out),
            *rcode,
            "{q}:\n{out}\nlog:\n{}",
            dnsd.log_text()
        );
        if !want.is_empty() {
            assert!(out.contains(want), "{q}: {want} missing\n{out}");
        }
    }
    // Only the conditional forward knows fwd.example (the TLD does not
    // delegate it: Unbound says NXDOMAIN).
    assert_eq!(
        status(&net.dig("127.0.0.53", "www.fwd.example A")),
        "NXDOMAIN"
    );
    let out = net.dig("127.0.0.1", "www.fwd.example A");
    assert!(out.contains("192.0.2.80"), "{out}");
    dnsd.stop();
}

#[test]
fn lab_flow_a_dhcp_client_resolves_lab_and_internet_names() {
    require_tools("udhcpc", &["udhcpc"]);
    let net = Internet::new("reclab");
    net.ns.add_bridge("br0", "10.77.0.1/24");
    let dnsd_cfg = format!(
        "recursion_allowed = [\"10.77.0.0/24\", \"127.0.0.0/8\"]\nroot_hints = \"{}\"\nlease_zone = \"lab.test\"\nlease_ttl = 60",
        net.hints.display()
    );
    let dhcp = r#"
[dhcp]
interfaces = ["br0"]
ping_check = false

[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.199"]
routers = ["10.77.0.1"]
dns_servers = ["10.77.0.1"]
domain = "lab.test"
lease_time = "1h"
"#;
    let _dnsd = net.labnet("lab", "10.77.0.1:53", &dnsd_cfg, dhcp);
    let cfg = net.dir.path().join("lab.toml");
    let mut dhcpd = Daemon::start(
        Some(&net.ns),
        "labnet-dhcpd",
        &cfg,
        &net.dir.path().join("dhcpd.log"),
    );
    dhcpd.wait_log("serving", Duration::from_secs(10));
    let client = Netns::new("reclabc");
    net.ns.attach_veth("br0", "veth-rc1", &client, "eth0");
    // The client keeps its address and writes down the DNS server DHCP gave.
    let dnsfile = net.dir.path().join("client-dns");
    let script = write_file(
        net.dir.path(),
        "udhcpc.sh",
        &format!(
            "#!/bin/sh\ncase \"$1\" in\n  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/${{mask:-24}}\" dev \"$interface\"; echo \"$dns\" > {} ;;\nesac\nexit 0\n",
            dnsfile.display()
        ),
    );
    run(Command::new("chmod").arg("+x").arg(&script));
    let mut udhcpc = client
        .cmd("udhcpc")
        .args([
            "-f",
            "-i",
            "eth0",
            "-x",
            "hostname:vm9",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
        ])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start udhcpc");
    let resolver = wait_for("a DNS server from DHCP", Duration::from_secs(20), || {
        std::fs::read_to_string(&dnsfile)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    assert_eq!(resolver, "10.77.0.1");
    let ask = |q: &str| {
        let out = client
            .cmd("sh")
            .arg("-c")
            .arg(format!("dig @{resolver} +time=5 +tries=1 {q}"))
            .output()
            .expect("dig");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lab = wait_for(
        "vm9.lab.test from the client",
        Duration::from_secs(15),
        || {
            let out = ask("vm9.lab.test A");
            out.contains("10.77.0.1").then_some(out)
        },
    );
    assert!(flags(&lab).contains(" aa"), "{lab}");
    let inet = ask("www.chain1.com A");
    assert!(inet.contains("192.0.2.30"), "{inet}");
    assert!(flags(&inet).contains(" ra"), "{inet}");
    // A lab name that is a CNAME to the outside: our part, then the
    // Internet's, in one answer.
    let zone = write_file(
        net.dir.path(),
        "lab.zone",
        "$ORIGIN lab.test.\n$TTL 300\n@ SOA ns h 1 3600 600 86400 60\n@ NS ns\nns A 10.77.0.1\nmirror CNAME www.chain1.com.\n",
    );
    ctl(&cfg, &["zones", "import", zone.to_str().expect("path")]);
    let out = wait_for(
        "mirror.lab.test through the resolver",
        Duration::from_secs(10),
        || {
            let out = ask("mirror.lab.test A");
            out.contains("192.0.2.30").then_some(out)
        },
    );
    let chain = answers(&out);
    assert_eq!(chain.len(), 4, "{out}");
    assert_eq!(chain[0], "mirror.lab.test. CNAME www.chain1.com.", "{out}");
    // Lease names still resolve with the imported zone in place.
    assert!(ask("vm9.lab.test A").contains("10.77.0.1"));
    let _ = udhcpc.kill();
    let _ = udhcpc.wait();
    drop(dhcpd);
}
