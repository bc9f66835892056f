//! labnet-dhcpd against stock clients (dhclient, udhcpc, perfdhcp) and a
//! relay agent, on a bridge in a network namespace.
//!
//! Topology, per test: namespace `srv` has bridge br0 = 10.77.0.1/24 where
//! the daemon serves; each client namespace hangs off br0 by a veth pair.
//! A relay namespace has 10.77.0.2/24 and 10.78.0.2/16 and acts as the
//! relay for subnet 10.78.0.0/16 (the server routes it via 10.77.0.2).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use labnet_integration::relay::{AckLog, Relay};
use labnet_integration::*;
use serde_json::Value;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

struct Lab {
    dir: tempfile::TempDir,
    srv: Netns,
    cfg: PathBuf,
    daemon: Option<Daemon>,
    restarts: usize,
}

impl Lab {
    fn new(tag: &str, dhcp_extra: &str) -> Lab {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let srv = Netns::new(tag);
        srv.add_bridge("br0", "10.77.0.1/24");
        let cfg = write_file(
            dir.path(),
            "labnet.toml",
            &format!(
                r#"
[store]
url = "sqlite://{db}"

[dhcp]
interfaces = ["br0"]
{dhcp_extra}

[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.199"]
routers = ["10.77.0.1"]
dns_servers = ["10.77.0.1"]
ntp_servers = ["10.77.0.1"]
domain = "lab.test"
domain_search = ["lab.test", "example.test"]
mtu = 1400
routes = [{{ destination = "10.88.0.0/16", gateway = "10.77.0.254" }}]
lease_time = "1h"

[[dhcp.subnets]]
cidr = "10.78.0.0/16"
pools = ["10.78.1.0-10.78.1.255"]
routers = ["10.78.0.2"]
lease_time = "1h"
"#,
                db = dir.path().join("labnet.db").display()
            ),
        );
        ctl(&cfg, &["init"]);
        Lab {
            dir,
            srv,
            cfg,
            daemon: None,
            restarts: 0,
        }
    }

    fn start(&mut self) {
        let log = self.dir.path().join(format!("dhcpd-{}.log", self.restarts));
        self.restarts += 1;
        let mut d = Daemon::start(Some(&self.srv), "labnet-dhcpd", &self.cfg, &log);
        d.wait_log("serving", Duration::from_secs(20));
        self.daemon = Some(d);
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("daemon started")
    }

    /// A client namespace on the lab bridge; its interface is `eth0`.
    fn client(&self, tag: &str, mac: &str) -> Netns {
        let ns = Netns::new(tag);
        let host_if = format!("v{tag}");
        self.srv.attach_veth("br0", &host_if, &ns, "eth0");
        ns.ip(&["link", "set", "eth0", "down"]);
        ns.ip(&["link", "set", "eth0", "address", mac]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns
    }

    /// A relay namespace for 10.78.0.0/16.
    fn relay(&self) -> Netns {
        let ns = Netns::new("rly");
        self.srv.attach_veth("br0", "vrly", &ns, "eth0");
        // 10.78.0.2 first: it is the primary address, which perfdhcp puts in giaddr.
        ns.ip(&["addr", "add", "10.78.0.2/16", "dev", "eth0"]);
        ns.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
        self.srv
            .ip(&["route", "add", "10.78.0.0/16", "via", "10.77.0.2"]);
        ns
    }

    fn leases(&self, all: bool) -> Vec<Value> {
        let mut args = vec!["leases", "list", "--json"];
        if all {
            args.push("--all");
        }
        let out = ctl(&self.cfg, &args);
        match serde_json::from_str(&out).expect("leases JSON") {
            Value::Array(v) => v,
            other => panic!("not an array: {other}"),
        }
    }

    fn lease_for(&self, mac: &str) -> Option<Value> {
        self.leases(false).into_iter().find(|l| l["mac"] == mac)
    }
}

/// KEY=VALUE lines written by a client's hook script.
fn env_file(path: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn wait_file(path: &Path, secs: u64) {
    wait_for(
        &format!("{}", path.display()),
        Duration::from_secs(secs),
        || path.exists().then_some(()),
    );
}

// ---------------------------------------------------------------- dhclient

fn dhclient(lab: &Lab, ns: &Netns, args: &[&str]) -> std::process::Output {
    let d = lab.dir.path();
    let script = write_file(
        d,
        "dhclient-script",
        &format!(
            r#"#!/bin/sh
env | grep -E '^(reason|new_|old_|interface)' | sort > {d}/dh-$reason.env
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
"#,
            d = d.display()
        ),
    );
    run(Command::new("chmod").arg("755").arg(&script));
    let conf = write_file(
        d,
        "dhclient.conf",
        r#"option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
send host-name "dh-one";
request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name,
        domain-search, ntp-servers, interface-mtu, rfc3442-classless-static-routes;
timeout 20;
"#,
    );
    let mut c = ns.cmd("dhclient");
    c.args(args)
        .arg("-cf")
        .arg(&conf)
        .arg("-sf")
        .arg(&script)
        .arg("-lf")
        .arg(d.join("dhclient.leases"))
        .arg("-pf")
        .arg(d.join("dhclient.pid"))
        .arg("eth0");
    c.output().expect("run dhclient")
}

#[test]
fn dhclient_gets_a_lease_with_every_option_keeps_it_across_restart_and_releases() {
    require_tools("isc-dhcp-client", &["dhclient"]);
    let mut lab = Lab::new("dhc", "ping_check = true");
    lab.start();
    let mac = "52:54:00:00:aa:01";
    let c = lab.client("dhc1", mac);

    let out = dhclient(&lab, &c, &["-1", "-v"]);
    assert!(
        out.status.success(),
        "dhclient: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = env_file(&lab.dir.path().join("dh-BOUND.env"));
    let ip: Ipv4Addr = env["new_ip_address"].parse().expect("ip");
    assert!(
        (100..=199).contains(&ip.octets()[3]) && ip.octets()[..3] == [10, 77, 0],
        "{ip}"
    );
    assert_eq!(env["new_subnet_mask"], "255.255.255.0");
    assert_eq!(env["new_routers"], "10.77.0.1");
    assert_eq!(env["new_domain_name_servers"], "10.77.0.1");
    assert_eq!(env["new_domain_name"], "lab.test");
    assert_eq!(env["new_domain_search"], "lab.test. example.test.");
    assert_eq!(env["new_ntp_servers"], "10.77.0.1");
    assert_eq!(env["new_interface_mtu"], "1400");
    assert_eq!(env["new_dhcp_server_identifier"], "10.77.0.1");
    assert_eq!(env["new_dhcp_lease_time"], "3600");
    // RFC 3442: 10.88/16 via .254, and the default route via the router.
    assert_eq!(
        env["new_rfc3442_classless_static_routes"],
        "16 10 88 10 77 0 254 0 10 77 0 1"
    );
    // The lease, with the client's hostname, is in the store.
    let l = lab.lease_for(mac).expect("lease stored");
    assert_eq!(l["ip"], ip.to_string());
    assert_eq!(l["hostname"], "dh-one");
    assert_eq!(l["state"], "bound");

    // Stop without releasing, start again: INIT-REBOOT gets the same address.
    let out = dhclient(&lab, &c, &["-x"]);
    assert!(out.status.success());
    c.ip(&["addr", "flush", "dev", "eth0"]);
    let _ = std::fs::remove_file(lab.dir.path().join("dh-BOUND.env"));
    let out = dhclient(&lab, &c, &["-1", "-v"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reboot = lab.dir.path().join("dh-REBOOT.env");
    let bound = lab.dir.path().join("dh-BOUND.env");
    let again = if reboot.exists() {
        env_file(&reboot)
    } else {
        env_file(&bound)
    };
    assert_eq!(
        again["new_ip_address"],
        ip.to_string(),
        "a returning client gets its address back"
    );

    // Release: the store shows it free.
    let out = dhclient(&lab, &c, &["-r", "-v"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the release to be stored", Duration::from_secs(5), || {
        lab.lease_for(mac).is_none().then_some(())
    });
    let all = lab.leases(true);
    let l = all
        .iter()
        .find(|l| l["mac"] == mac)
        .expect("released row kept");
    assert_eq!(l["state"], "released");
    lab.daemon().stop();
}

// ---------------------------------------------------------------- udhcpc

struct Udhcpc {
    child: Child,
    dir: PathBuf,
}

impl Udhcpc {
    fn start(lab: &Lab, ns: &Netns, tag: &str, extra: &[&str]) -> Udhcpc {
        let dir = lab.dir.path().join(tag);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let script = write_file(
            &dir,
            "script",
            &format!(
                r#"#!/bin/sh
env | sort > {d}/$1.env
case "$1" in
  bound|renew) ip addr replace "$ip/${{mask:-24}}" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
"#,
                d = dir.display()
            ),
        );
        run(Command::new("chmod").arg("755").arg(&script));
        let child = ns
            .cmd("udhcpc")
            .args(["-f", "-i", "eth0", "-t", "10", "-T", "1", "-A", "1", "-s"])
            .arg(&script)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("udhcpc");
        Udhcpc { child, dir }
    }

    fn signal(&self, sig: &str) {
        run(Command::new("kill").args([sig, &self.child.id().to_string()]));
    }

    fn env(&self, event: &str) -> std::collections::HashMap<String, String> {
        let p = self.dir.join(format!("{event}.env"));
        wait_file(&p, 30);
        // The script may still be writing.
        std::thread::sleep(Duration::from_millis(100));
        env_file(&p)
    }
}

impl Drop for Udhcpc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn udhcpc_gets_renews_and_releases_a_lease() {
    require_tools("udhcpc", &["udhcpc"]);
    let mut lab = Lab::new("udh", "ping_check = false");
    lab.start();
    let mac = "52:54:00:00:bb:01";
    let c = lab.client("udh1", mac);
    let u = Udhcpc::start(
        &lab,
        &c,
        "u1",
        &[
            "-x",
            "hostname:udh-one",
            "-O",
            "121",
            "-O",
            "119",
            "-O",
            "42",
            "-O",
            "26",
        ],
    );
    let env = u.env("bound");
    let ip = env["ip"].clone();
    assert!(ip.starts_with("10.77.0.1"), "{ip}");
    assert_eq!(env["subnet"], "255.255.255.0");
    assert_eq!(env["router"], "10.77.0.1");
    assert_eq!(env["dns"], "10.77.0.1");
    assert_eq!(env["domain"], "lab.test");
    assert_eq!(env["search"], "lab.test example.test");
    assert_eq!(env["ntpsrv"], "10.77.0.1");
    assert_eq!(env["mtu"], "1400");
    assert_eq!(
        env["staticroutes"],
        "10.88.0.0/16 10.77.0.254 0.0.0.0/0 10.77.0.1"
    );
    assert_eq!(env["lease"], "3600");
    let first = lab.lease_for(mac).expect("stored");
    assert_eq!(first["hostname"], "udh-one");

    // SIGUSR1: renew (a unicast REQUEST from the bound address).
    std::thread::sleep(Duration::from_millis(1100));
    u.signal("-USR1");
    let renew = u.env("renew");
    assert_eq!(renew["ip"], ip);
    wait_for("the renewal to be stored", Duration::from_secs(5), || {
        // A renewal moves the expiry; `starts` stays the binding's start
        // (the first holder of a DNS name keeps it, labnet_store::names).
        let l = lab.lease_for(mac)?;
        (l["expires"].as_i64()? > first["expires"].as_i64()? && l["starts"] == first["starts"])
            .then_some(())
    });
    assert!(lab.daemon().log_text().contains("DHCPACK"));

    // SIGUSR2: release.
    u.signal("-USR2");
    wait_for("the release to be stored", Duration::from_secs(10), || {
        lab.lease_for(mac).is_none().then_some(())
    });
    let all = lab.leases(true);
    assert_eq!(
        all.iter().find(|l| l["mac"] == mac).expect("row")["state"],
        "released"
    );
}

#[test]
fn reservation_added_at_runtime_is_honoured() {
    require_tools("udhcpc", &["udhcpc"]);
    let mut lab = Lab::new("res", "ping_check = false");
    lab.start();
    let mac = "52:54:00:00:cc:01";
    // Added while the daemon runs: it follows the store.
    ctl(
        &lab.cfg,
        &[
            "reservations",
            "add",
            mac,
            "10.77.0.50",
            "--hostname",
            "pinned",
        ],
    );
    let listed = ctl(&lab.cfg, &["reservations", "list"]);
    assert!(
        listed.contains("10.77.0.50") && listed.contains("pinned"),
        "{listed}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let c = lab.client("res1", mac);
    let u = Udhcpc::start(&lab, &c, "r1", &[]);
    let env = u.env("bound");
    assert_eq!(env["ip"], "10.77.0.50");
    assert_eq!(env.get("hostname").map(String::as_str), Some("pinned"));
    assert_eq!(lab.lease_for(mac).expect("stored")["hostname"], "pinned");
}

#[test]
fn an_address_that_answers_ping_is_not_offered() {
    require_tools("udhcpc", &["udhcpc"]);
    let mut lab = Lab::new("png", "ping_check = true\nping_timeout = \"1s\"");
    lab.start();
    // A squatter uses the pool's first address without a lease.
    let squatter = lab.client("png0", "52:54:00:00:dd:00");
    squatter.ip(&["addr", "add", "10.77.0.100/24", "dev", "eth0"]);
    let c = lab.client("png1", "52:54:00:00:dd:01");
    let u = Udhcpc::start(&lab, &c, "p1", &[]);
    let env = u.env("bound");
    assert_ne!(
        env["ip"], "10.77.0.100",
        "the squatter's address was offered"
    );
    assert!(env["ip"].starts_with("10.77.0.1"), "{}", env["ip"]);
    let log = lab.daemon().log_text();
    assert!(
        log.contains("address answered a ping but has no lease"),
        "the ping check found the squatter:\n{log}"
    );
}

// ---------------------------------------------------------------- relays

#[test]
fn perfdhcp_as_a_relay_gets_addresses_from_the_relays_subnet() {
    require_tools("kea-admin", &["perfdhcp"]);
    let mut lab = Lab::new("rel", "ping_check = false");
    lab.start();
    let r = lab.relay();
    let out = r
        .cmd("perfdhcp")
        .args([
            "-4", "-l", "eth0", "-r", "50", "-R", "50", "-n", "50", "-p", "4", "-W", "500000",
        ])
        .output()
        .expect("perfdhcp");
    let text = String::from_utf8_lossy(&out.stdout);
    let acks: u64 = text
        .split("Statistics for: REQUEST-ACK")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.starts_with("received packets:")))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no REQUEST-ACK statistics:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(acks >= 45, "only {acks} ACKs for 50 clients:\n{text}");
    let leases = lab.leases(false);
    assert!(
        leases.len() as u64 >= acks,
        "{} leases stored for {acks} ACKs",
        leases.len()
    );
    for l in &leases {
        let ip = l["ip"].as_str().expect("ip");
        assert!(
            ip.starts_with("10.78.1."),
            "relayed client got {ip}, outside the relay's subnet"
        );
    }
}

#[test]
fn relayed_reply_goes_back_to_the_relay_with_option_82() {
    let mut lab = Lab::new("r82", "ping_check = false");
    lab.start();
    let r = lab.relay();
    let got = in_netns(&r, || {
        let mut relay =
            Relay::bind(Ipv4Addr::new(10, 78, 0, 2), SERVER).expect("bind 10.78.0.2:67");
        relay.circuit_id = Some(b"sw1/port7".to_vec());
        // Retried like a real relay's client would, should one datagram be lost.
        (0..3).find_map(|_| relay.discover([2, 0, 0, 0, 0, 1], Duration::from_secs(2)))
    })
    .expect("an OFFER through the relay");
    assert!(
        got.yiaddr.octets().starts_with(&[10, 78, 1]),
        "{}",
        got.yiaddr
    );
    let info = got.relay_info.expect("option 82 echoed (RFC 3046 §2.2)");
    assert_eq!(
        info.get(dhcproto::v4::relay::RelayCode::AgentCircuitId),
        Some(&dhcproto::v4::relay::RelayInfo::AgentCircuitId(
            b"sw1/port7".to_vec()
        ))
    );
}

/// Issue 12, finding 3: perfdhcp with 5,000 random chaddrs through one
/// relay circuit once bound the whole pool; with `max_leases_per_circuit`
/// it takes its share and a client on another circuit still gets an address.
#[test]
fn one_relay_circuit_cannot_empty_the_pool() {
    require_tools("kea-admin", &["perfdhcp"]);
    let mut lab = Lab::new("rcap", "ping_check = false\nmax_leases_per_circuit = 64");
    lab.start();
    let r = lab.relay();
    let out = r
        .cmd("perfdhcp")
        .args([
            "-4", "-l", "eth0", "-r", "1000", "-R", "5000", "-p", "4", "-W", "500000",
        ])
        .output()
        .expect("perfdhcp");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REQUEST-ACK"),
        "perfdhcp ran no exchanges:\n{text}"
    );
    let bound = lab.leases(false).len();
    assert!(
        (1..=64).contains(&bound),
        "{bound} leases bound through one circuit (cap 64)\n{text}"
    );
    let got = in_netns(&r, || {
        let mut relay =
            Relay::bind(Ipv4Addr::new(10, 78, 0, 2), SERVER).expect("bind 10.78.0.2:67");
        relay.circuit_id = Some(b"sw1/port2".to_vec());
        (0..3).find_map(|_| relay.dora([2, 0, 0, 0, 0, 2], SERVER, Duration::from_secs(2)))
    });
    assert!(
        got.is_some_and(|ip| ip.octets().starts_with(&[10, 78, 1])),
        "the second circuit got no address: {got:?}\n{}",
        lab.daemon().log_text()
    );
}

/// Issue 12, finding 3: a RELEASE carrying the victim's chaddr and address,
/// sent from another host (directly, or through the relay on another
/// circuit), leaves the victim's lease bound.
#[test]
fn a_forged_release_leaves_the_victims_lease() {
    let mut lab = Lab::new("rforge", "ping_check = false");
    lab.start();
    let r = lab.relay();
    let victim_mac = [2, 0, 0, 0, 0, 7];
    let victim = in_netns(&r, move || {
        let mut relay =
            Relay::bind(Ipv4Addr::new(10, 78, 0, 2), SERVER).expect("bind 10.78.0.2:67");
        relay.circuit_id = Some(b"victim-port".to_vec());
        let ip = (0..3)
            .find_map(|_| relay.dora(victim_mac, SERVER, Duration::from_secs(2)))
            .expect("the victim's lease");
        // The attacker's forgeries: from the relay host's own address
        // without giaddr, and relayed from another port.
        relay.release(victim_mac, ip, SERVER, false);
        relay.circuit_id = Some(b"attacker-port".to_vec());
        relay.release(victim_mac, ip, SERVER, true);
        ip
    });
    std::thread::sleep(Duration::from_secs(1));
    let lease = lab.lease_for("02:00:00:00:00:07").unwrap_or_else(|| {
        panic!(
            "the victim's lease on {victim} is gone: {:?}",
            lab.leases(true)
        )
    });
    assert_eq!(lease["state"], "bound", "{lease}");
    assert_eq!(lease["ip"], victim.to_string(), "{lease}");
}

// ---------------------------------------------------------------- robustness

#[test]
fn kill_9_mid_load_never_gives_an_address_twice() {
    let mut lab = Lab::new("k9", "ping_check = false\nmax_packets_per_client = 1000");
    lab.start();
    let r = lab.relay();
    // 240 clients for a pool of 256: after the restart the server must skip
    // every address whose ACK went out before the crash.
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let worker = {
        spawn_in_netns(&r, move || {
            let mut relay = Relay::bind(Ipv4Addr::new(10, 78, 0, 2), SERVER).expect("bind");
            let mut log = AckLog::default();
            let mut acked = 0usize;
            for i in 0..240u16 {
                let mac = [2, 0, 0, 0, (i >> 8) as u8, i as u8];
                for _attempt in 0..20 {
                    if let Some(ip) = relay.dora(mac, SERVER, Duration::from_millis(300)) {
                        log.record(ip, mac);
                        acked += 1;
                        let _ = tx.send(acked);
                        break;
                    }
                }
            }
            log
        })
    };
    // Crash the daemon once a third of the clients are bound, restart it.
    wait_for("80 ACKs", Duration::from_secs(60), || {
        rx.recv().ok().filter(|n| *n >= 80)
    });
    lab.daemon().kill9();
    lab.start();
    let log = worker.join().expect("relay thread");
    let doubles = log.doubles();
    assert!(
        doubles.is_empty(),
        "addresses ACKed to two clients: {doubles:?}"
    );
    assert!(
        log.by_ip.len() >= 230,
        "only {} clients bound",
        log.by_ip.len()
    );
    // Every ACK the clients saw is in the store, bound to that client.
    let stored: std::collections::HashMap<String, String> = lab
        .leases(false)
        .into_iter()
        .map(|l| {
            (
                l["ip"].as_str().expect("ip").to_owned(),
                l["mac"].as_str().expect("mac").to_owned(),
            )
        })
        .collect();
    for (ip, macs) in &log.by_ip {
        let mac = macs[0]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(
            stored.get(&ip.to_string()),
            Some(&mac),
            "ACKed {ip} to {mac} but the store disagrees"
        );
    }
}

#[test]
fn malformed_packets_are_dropped_and_everyone_else_is_served() {
    let mut lab = Lab::new("bad", "ping_check = false");
    lab.start();
    let r = lab.relay();
    let ip = in_netns(&r, || {
        let mut relay = Relay::bind(Ipv4Addr::new(10, 78, 0, 2), SERVER).expect("bind");
        let mut junk: Vec<Vec<u8>> = vec![
            vec![],
            vec![1; 10],      // truncated header
            vec![0xff; 3000], // oversized
            {
                let mut p = vec![0u8; 300]; // BOOTREPLY, magic cookie, garbage options
                p[0] = 2;
                p[236..240].copy_from_slice(&[99, 130, 83, 99]);
                p[240..].fill(0xaa);
                p
            },
            {
                let mut p = vec![0u8; 244]; // option 80 with a payload
                p[0] = 1;
                p[1] = 1;
                p[2] = 6;
                p[236..240].copy_from_slice(&[99, 130, 83, 99]);
                p.extend_from_slice(&[53, 1, 1, 80, 2, 0, 0, 255]);
                p
            },
        ];
        let mut seed = 0x2545F491u32;
        for _ in 0..200 {
            let len = (seed % 600) as usize;
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                p.push(seed as u8);
            }
            junk.push(p);
        }
        for p in &junk {
            relay.send_raw(p);
        }
        // Retry as a real client would: under load a datagram sent while the
        // server is still draining the junk may be lost like any other.
        (0..5).find_map(|_| relay.dora([2, 0, 0, 0, 9, 9], SERVER, Duration::from_secs(2)))
    });
    let ip = ip.expect("a well-formed client is still served after the junk");
    assert!(ip.octets().starts_with(&[10, 78, 1]));
    let log = lab.daemon().log_text();
    assert!(log.contains("malformed packet dropped"), "drops are logged");
    assert!(
        log.contains("oversized packet dropped"),
        "oversized drops are logged"
    );
}

#[test]
fn a_bad_config_is_refused_with_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_file(
        dir.path(),
        "bad.toml",
        "[store]\nurl = \"sqlite:///tmp/x.db\"\n[dhcp]\ninterfaces = [\"br0\"]\n[[dhcp.subnets]]\ncidr = \"10.77.0.0/24\"\npools = [\"10.77.1.1-10.77.1.9\"]\n",
    );
    for args in [vec!["--check-config"], vec![]] {
        let out = Command::new(bin("labnet-dhcpd"))
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "a bad config must not start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("line 7") && err.contains("dhcp.subnets[0].pools"),
            "{err}"
        );
    }
}
