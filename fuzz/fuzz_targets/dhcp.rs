//! DHCP: one datagram -> `wire::decode` -> `Dhcp::handle`, as the socket
//! loop does, with a small fixed config (two subnets, a tiny pool, ping
//! check on). The packet is handled as from a direct client and from a
//! relay, an answered ping is reported back (`address_in_use`, then the
//! request again), and the same packet comes again later so the lease
//! table's state after the first answer is exercised too.
//! Asserts: no panic, and every reply encodes.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, OnceLock};

use dhcproto::{Encodable, Encoder};
use labnet_config::{Config, DhcpConfig};
use labnet_dhcpd::core::{Action, Dhcp, Incoming, Reply};
use labnet_dhcpd::wire;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[store]
url = "sqlite:///nonexistent/fuzz.db"
[dhcp]
interfaces = ["br0"]
ping_check = true
offer_hold = "30s"
decline_probation = "10m"
max_leases_per_circuit = 2
[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.103"]
exclude = ["10.77.0.101"]
routers = ["10.77.0.1"]
dns_servers = ["10.77.0.1"]
domain = "lab.test"
domain_search = ["lab.test", "example.org"]
ntp_servers = ["10.77.0.1"]
mtu = 1400
routes = [{ destination = "10.88.0.0/16", gateway = "10.77.0.254" }]
lease_time = "1h"
options = [{ code = 252, text = "http://wpad/" }]
[[dhcp.subnets]]
cidr = "10.99.0.0/24"
pools = ["10.99.0.10-10.99.0.20"]
lease_time = "2h"
"#;

const T0: i64 = 1_000_000;

fn config() -> Arc<DhcpConfig> {
    static CFG: OnceLock<Arc<DhcpConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        Arc::new(
            Config::parse(CONFIG, "fuzz")
                .expect("fuzz config")
                .dhcp
                .expect("[dhcp]"),
        )
    })
    .clone()
}

fn check_encodes(reply: &Reply) {
    let mut buf = Vec::new();
    if let Err(e) = reply.msg.encode(&mut Encoder::new(&mut buf)) {
        panic!("reply does not encode: {e}: {:?}", reply.msg);
    }
}

fn run(dhcp: &mut Dhcp, req: &dhcproto::v4::Message, inc: &Incoming, now: i64) {
    match dhcp.handle(req, inc, now) {
        Action::Silent(_) => {}
        Action::Send(r) => check_encodes(&r),
        Action::Commit { reply, .. } => {
            if let Some(r) = reply {
                check_encodes(&r);
            }
        }
        Action::PingThenSend { ip, reply } => {
            check_encodes(&reply);
            // Somebody answered the ping: the server reports it and
            // handles the request again.
            dhcp.address_in_use(ip, now);
            if let Action::Send(r) | Action::PingThenSend { reply: r, .. } =
                dhcp.handle(req, inc, now)
            {
                check_encodes(&r);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = wire::decode(data) else {
        return;
    };
    let mut dhcp = Dhcp::new(config());
    let direct = Incoming {
        iface_addr: Ipv4Addr::new(10, 77, 0, 1),
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    };
    let relayed = Incoming {
        iface_addr: Ipv4Addr::new(10, 77, 0, 1),
        src: SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), 67),
    };
    run(&mut dhcp, &req, &direct, T0);
    run(&mut dhcp, &req, &relayed, T0 + 1);
    // Past the offer hold: the table has swept and aged by now.
    run(&mut dhcp, &req, &direct, T0 + 40);
});
