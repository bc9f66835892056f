//! Unit tests of the protocol core and the lease table, with injected time.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use dhcproto::v4::relay::{RelayAgentInformation, RelayInfo};
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use labnet_config::{Config, DhcpConfig};
use labnet_store::{LeaseState, Reservation, ReservationKey};
use proptest::prelude::*;

use crate::core::{Action, Dhcp, Incoming, Reply, Silence};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const T0: i64 = 1_000_000;

fn config(extra: &str) -> DhcpConfig {
    let text = format!(
        r#"
[store]
url = "sqlite:///tmp/unused.db"
[dhcp]
interfaces = ["br0"]
ping_check = true
offer_hold = "30s"
decline_probation = "10m"
{extra}
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
routes = [{{ destination = "10.88.0.0/16", gateway = "10.77.0.254" }}]
lease_time = "1h"
options = [{{ code = 252, text = "http://wpad/" }}]
[[dhcp.subnets]]
cidr = "10.99.0.0/24"
pools = ["10.99.0.10-10.99.0.20"]
lease_time = "2h"
"#
    );
    Config::parse(&text, "test")
        .expect("test config")
        .dhcp
        .expect("dhcp")
}

fn server(extra: &str) -> Dhcp {
    Dhcp::new(Arc::new(config(extra)))
}

fn direct() -> Incoming {
    Incoming {
        iface_addr: SERVER,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    }
}

/// A unicast from the client at `ip` (a RENEW or a RELEASE).
fn from(ip: Ipv4Addr) -> Incoming {
    Incoming {
        iface_addr: SERVER,
        src: SocketAddrV4::new(ip, 68),
    }
}

fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 0, n]
}

fn msg(kind: MessageType, m: u8) -> Message {
    let mut msg = Message::new_with_id(
        0x1000 + u32::from(m),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac(m),
    );
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    msg
}

fn with(mut m: Message, o: DhcpOption) -> Message {
    m.opts_mut().insert(o);
    m
}

fn reply_of(a: Action) -> Reply {
    match a {
        Action::Send(r) | Action::PingThenSend { reply: r, .. } => r,
        Action::Commit { reply: Some(r), .. } => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn kind(r: &Reply) -> MessageType {
    r.msg.opts().msg_type().expect("message type")
}

/// DISCOVER then REQUEST (SELECTING); returns the ACKed address.
fn dora(s: &mut Dhcp, m: u8, now: i64) -> Ipv4Addr {
    let offer = reply_of(s.handle(&msg(MessageType::Discover, m), &direct(), now));
    assert_eq!(kind(&offer), MessageType::Offer);
    let ip = offer.msg.yiaddr();
    let req = with(
        with(
            msg(MessageType::Request, m),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(ip),
    );
    match s.handle(&req, &direct(), now) {
        Action::Commit {
            lease,
            reply: Some(ack),
        } => {
            assert_eq!(kind(&ack), MessageType::Ack);
            assert_eq!(lease.ip, ip);
            assert_eq!(lease.state, LeaseState::Bound);
            ip
        }
        other => panic!("expected an ACK to commit, got {other:?}"),
    }
}

#[test]
fn discover_gets_an_offer_with_every_configured_option() {
    let mut s = server("");
    let a = s.handle(&msg(MessageType::Discover, 1), &direct(), T0);
    let Action::PingThenSend { ip, reply } = a else {
        panic!("a new address is ping-checked first: {a:?}")
    };
    assert_eq!(ip, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(reply.msg.opcode(), Opcode::BootReply);
    assert_eq!(reply.msg.xid(), 0x1001);
    assert_eq!(reply.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    let o = reply.msg.opts();
    let get = |c| o.get(c).unwrap_or_else(|| panic!("option {c:?} missing"));
    assert_eq!(
        get(OptionCode::SubnetMask),
        &DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0))
    );
    assert_eq!(get(OptionCode::Router), &DhcpOption::Router(vec![SERVER]));
    assert_eq!(
        get(OptionCode::DomainNameServer),
        &DhcpOption::DomainNameServer(vec![SERVER])
    );
    assert_eq!(
        get(OptionCode::DomainName),
        &DhcpOption::DomainName("lab.test".into())
    );
    assert_eq!(
        get(OptionCode::NtpServers),
        &DhcpOption::NtpServers(vec![SERVER])
    );
    assert_eq!(
        get(OptionCode::InterfaceMtu),
        &DhcpOption::InterfaceMtu(1400)
    );
    assert_eq!(
        get(OptionCode::ServerIdentifier),
        &DhcpOption::ServerIdentifier(SERVER)
    );
    assert_eq!(
        get(OptionCode::AddressLeaseTime),
        &DhcpOption::AddressLeaseTime(3600)
    );
    assert_eq!(get(OptionCode::Renewal), &DhcpOption::Renewal(1800));
    assert_eq!(get(OptionCode::Rebinding), &DhcpOption::Rebinding(3150));
    let DhcpOption::ClasslessStaticRoute(routes) = get(OptionCode::ClasslessStaticRoute) else {
        panic!("121")
    };
    assert_eq!(
        routes.len(),
        2,
        "the configured route and the default route: {routes:?}"
    );
    let DhcpOption::DomainSearch(names) = get(OptionCode::DomainSearch) else {
        panic!("119")
    };
    assert_eq!(names.len(), 2);
    assert!(
        o.get(OptionCode::Unknown(252)).is_some() || o.iter().any(|(c, _)| u8::from(*c) == 252)
    );
    // It encodes and decodes back (the wire format is dhcproto's).
    let mut buf = Vec::new();
    reply
        .msg
        .encode(&mut Encoder::new(&mut buf))
        .expect("encode");
    let back = Message::decode(&mut Decoder::new(&buf)).expect("decode");
    assert_eq!(back.yiaddr(), ip);
}

#[test]
fn two_clients_are_never_offered_the_same_address() {
    let mut s = server("");
    let a = reply_of(s.handle(&msg(MessageType::Discover, 1), &direct(), T0))
        .msg
        .yiaddr();
    let b = reply_of(s.handle(&msg(MessageType::Discover, 2), &direct(), T0))
        .msg
        .yiaddr();
    assert_ne!(a, b);
    // .101 is excluded from the pool.
    assert_eq!(b, Ipv4Addr::new(10, 77, 0, 102));
    // The same client asking again gets its held offer back.
    let a2 = reply_of(s.handle(&msg(MessageType::Discover, 1), &direct(), T0 + 1))
        .msg
        .yiaddr();
    assert_eq!(a, a2);
}

/// The metrics' pool gauges: size without exclusions, used = offered +
/// bound (+ probation), lapsed offers free again.
#[test]
fn pool_usage_counts_offers_and_leases_per_subnet() {
    let mut s = server("");
    let usage = |s: &Dhcp, now| {
        s.table
            .pool_usage(now)
            .iter()
            .map(|u| (u.cidr.to_string(), u.size, u.used))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        usage(&s, T0),
        vec![
            ("10.77.0.0/24".into(), 3, 0),
            ("10.99.0.0/24".into(), 11, 0)
        ]
    );
    dora(&mut s, 1, T0);
    reply_of(s.handle(&msg(MessageType::Discover, 2), &direct(), T0));
    assert_eq!(usage(&s, T0)[0], ("10.77.0.0/24".into(), 3, 2));
    // The offer lapses after the hold (30 s); the lease (1 h) stays.
    s.table.sweep(T0 + 31);
    assert_eq!(usage(&s, T0 + 31)[0], ("10.77.0.0/24".into(), 3, 1));
}

#[test]
fn full_pool_is_silent_and_lapsed_offers_are_reused() {
    let mut s = server("");
    for m in 1..=3 {
        reply_of(s.handle(&msg(MessageType::Discover, m), &direct(), T0));
    }
    assert!(matches!(
        s.handle(&msg(MessageType::Discover, 4), &direct(), T0),
        Action::Silent(Silence::PoolExhausted)
    ));
    // After the offer hold (30 s) the addresses are free again.
    let r = reply_of(s.handle(&msg(MessageType::Discover, 4), &direct(), T0 + 31));
    assert!(s.config().subnets[0].in_pool(r.msg.yiaddr()));
}

#[test]
fn request_selecting_binds_and_renewing_extends() {
    let mut s = server("");
    let ip = dora(&mut s, 1, T0);
    // RENEWING: unicast with ciaddr, no server id, no requested address.
    let mut renew = msg(MessageType::Request, 1);
    renew.set_ciaddr(ip);
    let inc = Incoming {
        iface_addr: SERVER,
        src: SocketAddrV4::new(ip, 68),
    };
    match s.handle(&renew, &inc, T0 + 1800) {
        Action::Commit {
            lease,
            reply: Some(ack),
        } => {
            assert_eq!(lease.expires, T0 + 1800 + 3600);
            assert_eq!(
                ack.to,
                SocketAddrV4::new(ip, 68),
                "RFC 2131 §4.1: unicast to ciaddr"
            );
            assert_eq!(ack.msg.ciaddr(), ip);
        }
        other => panic!("renew: {other:?}"),
    }
}

#[test]
fn request_for_another_servers_offer_is_ignored() {
    let mut s = server("");
    let req = with(
        with(
            msg(MessageType::Request, 1),
            DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 2)),
        ),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 77, 0, 100)),
    );
    assert!(matches!(
        s.handle(&req, &direct(), T0),
        Action::Silent(Silence::OtherServerChosen)
    ));
}

#[test]
fn init_reboot_on_a_wrong_network_is_naked() {
    let mut s = server("");
    let req = with(
        msg(MessageType::Request, 1),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(192, 168, 1, 5)),
    );
    let r = reply_of(s.handle(&req, &direct(), T0));
    assert_eq!(kind(&r), MessageType::Nak);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.to.ip(), &Ipv4Addr::BROADCAST);
}

#[test]
fn request_for_an_address_bound_to_another_client_is_naked() {
    let mut s = server("");
    let ip = dora(&mut s, 1, T0);
    let req = with(
        msg(MessageType::Request, 2),
        DhcpOption::RequestedIpAddress(ip),
    );
    assert_eq!(
        kind(&reply_of(s.handle(&req, &direct(), T0 + 5))),
        MessageType::Nak
    );
}

#[test]
fn init_reboot_for_a_free_pool_address_is_acked() {
    // After losing its lease file a client may ask for what it had; an
    // authoritative server gives it if nobody holds it.
    let mut s = server("");
    let req = with(
        msg(MessageType::Request, 7),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 77, 0, 103)),
    );
    assert!(matches!(
        s.handle(&req, &direct(), T0),
        Action::Commit { .. }
    ));
}

#[test]
fn returning_client_gets_its_address_back_after_release_and_expiry() {
    let mut s = server("");
    let a = dora(&mut s, 1, T0);
    let b = dora(&mut s, 2, T0);
    // Client 1 releases.
    let mut rel = msg(MessageType::Release, 1);
    rel.set_ciaddr(a);
    let rel = with(rel, DhcpOption::ServerIdentifier(SERVER));
    match s.handle(&rel, &from(a), T0 + 10) {
        Action::Commit { lease, reply: None } => assert_eq!(lease.state, LeaseState::Released),
        other => panic!("release: {other:?}"),
    }
    // Client 2's lease expires (1 h).
    let later = T0 + 3600 + 5;
    assert_eq!(
        dora(&mut s, 1, later),
        a,
        "client 1 gets its released address back"
    );
    assert_eq!(
        dora(&mut s, 2, later),
        b,
        "client 2 gets its expired address back"
    );
}

#[test]
fn client_identifier_wins_over_mac() {
    let mut s = server("");
    let id = DhcpOption::ClientIdentifier(b"\x01host-one".to_vec());
    let d = with(msg(MessageType::Discover, 1), id.clone());
    let ip = reply_of(s.handle(&d, &direct(), T0)).msg.yiaddr();
    let req = with(
        with(
            with(msg(MessageType::Request, 1), id.clone()),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(ip),
    );
    assert!(matches!(
        s.handle(&req, &direct(), T0),
        Action::Commit { .. }
    ));
    // Same client-id from another NIC: same address.
    let d2 = with(msg(MessageType::Discover, 9), id);
    assert_eq!(reply_of(s.handle(&d2, &direct(), T0 + 1)).msg.yiaddr(), ip);
}

#[test]
fn decline_puts_the_address_on_probation() {
    let mut s = server("");
    let ip = dora(&mut s, 1, T0);
    let dec = with(
        with(
            msg(MessageType::Decline, 1),
            DhcpOption::RequestedIpAddress(ip),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    match s.handle(&dec, &direct(), T0 + 1) {
        Action::Commit { lease, reply: None } => {
            assert_eq!(lease.state, LeaseState::Declined);
            // 10m configured, 5m since the ping check re-checks it.
            assert_eq!(lease.expires, T0 + 1 + 300);
        }
        other => panic!("decline: {other:?}"),
    }
    // Nobody gets it during probation.
    for m in 2..=3 {
        assert_ne!(
            reply_of(s.handle(&msg(MessageType::Discover, m), &direct(), T0 + 2))
                .msg
                .yiaddr(),
            ip
        );
    }
}

#[test]
fn ping_answer_sets_the_address_aside() {
    let mut s = server("");
    let Action::PingThenSend { ip, .. } = s.handle(&msg(MessageType::Discover, 1), &direct(), T0)
    else {
        panic!("ping expected")
    };
    s.address_in_use(ip, T0);
    let again = reply_of(s.handle(&msg(MessageType::Discover, 1), &direct(), T0));
    assert_ne!(again.msg.yiaddr(), ip);
}

#[test]
fn known_addresses_skip_the_ping() {
    let mut s = server("");
    let ip = dora(&mut s, 1, T0);
    match s.handle(&msg(MessageType::Discover, 1), &direct(), T0 + 60) {
        Action::Send(r) => assert_eq!(r.msg.yiaddr(), ip),
        other => panic!("a bound client's address needs no ping: {other:?}"),
    }
}

#[test]
fn reservations_are_honoured_with_hostname() {
    let mut s = server("");
    s.table.set_reservations(vec![Reservation {
        key: ReservationKey::Mac("52:54:00:00:00:05".into()),
        ip: Ipv4Addr::new(10, 77, 0, 50),
        hostname: Some("pinned".into()),
        profile: None,
    }]);
    let r = reply_of(s.handle(&msg(MessageType::Discover, 5), &direct(), T0));
    assert_eq!(
        r.msg.yiaddr(),
        Ipv4Addr::new(10, 77, 0, 50),
        "reserved, outside the pool"
    );
    assert_eq!(
        r.msg.opts().get(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("pinned".into()))
    );
    // Nobody else may take the reserved address.
    let req = with(
        msg(MessageType::Request, 6),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 77, 0, 50)),
    );
    assert_eq!(
        kind(&reply_of(s.handle(&req, &direct(), T0))),
        MessageType::Nak
    );
}

#[test]
fn relayed_requests_use_giaddr_and_go_back_to_the_relay_with_option_82() {
    let mut s = server("");
    let mut d = msg(MessageType::Discover, 1);
    d.set_giaddr(Ipv4Addr::new(10, 99, 0, 1));
    let mut info = RelayAgentInformation::default();
    info.insert(RelayInfo::AgentCircuitId(b"port7".to_vec()));
    let d = with(d, DhcpOption::RelayAgentInformation(info.clone()));
    let r = reply_of(s.handle(&d, &direct(), T0));
    assert!(
        r.msg.yiaddr().octets().starts_with(&[10, 99, 0]),
        "{}",
        r.msg.yiaddr()
    );
    assert_eq!(r.to, SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), 67));
    assert_eq!(r.msg.giaddr(), Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(
        r.msg.opts().get(OptionCode::RelayAgentInformation),
        Some(&DhcpOption::RelayAgentInformation(info))
    );
    assert_eq!(
        r.msg.opts().get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(7200))
    );
}

#[test]
fn link_selection_and_subnet_selection_pick_the_subnet() {
    let mut s = server("");
    // RFC 3527 link selection beats giaddr.
    let mut d = msg(MessageType::Discover, 1);
    d.set_giaddr(Ipv4Addr::new(10, 77, 0, 1));
    let mut info = RelayAgentInformation::default();
    info.insert(RelayInfo::LinkSelection(Ipv4Addr::new(10, 99, 0, 0)));
    let d = with(d, DhcpOption::RelayAgentInformation(info));
    assert!(reply_of(s.handle(&d, &direct(), T0))
        .msg
        .yiaddr()
        .octets()
        .starts_with(&[10, 99]));
    // RFC 3011 subnet selection on a relayed request.
    let mut d = with(
        msg(MessageType::Discover, 2),
        DhcpOption::SubnetSelection(Ipv4Addr::new(10, 99, 0, 0)),
    );
    d.set_giaddr(Ipv4Addr::new(10, 77, 0, 1));
    assert!(reply_of(s.handle(&d, &direct(), T0))
        .msg
        .yiaddr()
        .octets()
        .starts_with(&[10, 99]));
    // Issue 12: a client on our own segment cannot pick a relay-only
    // subnet with option 118; it gets an address of its own segment.
    let d = with(
        msg(MessageType::Discover, 3),
        DhcpOption::SubnetSelection(Ipv4Addr::new(10, 99, 0, 0)),
    );
    assert!(reply_of(s.handle(&d, &direct(), T0))
        .msg
        .yiaddr()
        .octets()
        .starts_with(&[10, 77]));
}

fn release(m: u8, ip: Ipv4Addr) -> Message {
    let mut rel = msg(MessageType::Release, m);
    rel.set_ciaddr(ip);
    with(rel, DhcpOption::ServerIdentifier(SERVER))
}

fn decline(m: u8, ip: Ipv4Addr) -> Message {
    with(
        with(
            msg(MessageType::Decline, m),
            DhcpOption::RequestedIpAddress(ip),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    )
}

/// Issue 12, finding 3: a RELEASE with the victim's chaddr from another
/// address, or a late DECLINE, leaves the victim's lease alone.
#[test]
fn forged_release_and_late_decline_change_nothing() {
    let mut s = server("");
    let victim = dora(&mut s, 1, T0);
    let attacker = Ipv4Addr::new(10, 77, 0, 250);
    assert!(matches!(
        s.handle(&release(1, victim), &from(attacker), T0 + 5),
        Action::Silent(Silence::NotFromHolder)
    ));
    assert!(matches!(
        s.handle(&decline(1, victim), &direct(), T0 + 120),
        Action::Silent(Silence::UnknownLease)
    ));
    // The victim renews its lease as before.
    let mut renew = msg(MessageType::Request, 1);
    renew.set_ciaddr(victim);
    assert!(matches!(
        s.handle(&renew, &from(victim), T0 + 200),
        Action::Commit { reply: Some(_), .. }
    ));
}

/// DISCOVER, OFFER, DECLINE: a declined offer is not a protocol path
/// (RFC 2131 §4.4.1: the client checks after the ACK), so nothing is set
/// aside.
#[test]
fn declining_an_offer_sets_nothing_aside() {
    let mut s = server("");
    for m in 1..=3 {
        let offer = reply_of(s.handle(&msg(MessageType::Discover, m), &direct(), T0));
        let _ = s.handle(&decline(m, offer.msg.yiaddr()), &direct(), T0);
    }
    let (on, _) = s.table.probation(0, T0);
    assert_eq!(on, 0);
    // Once the offers lapse, the whole pool is there for others.
    for m in 4..=6 {
        let _ = reply_of(s.handle(&msg(MessageType::Discover, m), &direct(), T0 + 31));
    }
}

/// Probation holds at most an eighth of the pool (at least 8); past that a
/// DECLINE frees the address instead.
#[test]
fn probation_is_capped() {
    let mut s = server("");
    let relay = Ipv4Addr::new(10, 99, 0, 1);
    let (_, cap) = s.table.probation(1, T0);
    assert_eq!(cap, 8);
    for m in 1..=11u8 {
        let mut d = msg(MessageType::Discover, m);
        d.set_giaddr(relay);
        let ip = reply_of(s.handle(&d, &direct(), T0)).msg.yiaddr();
        let mut r = with(
            with(
                msg(MessageType::Request, m),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(ip),
        );
        r.set_giaddr(relay);
        assert!(matches!(s.handle(&r, &direct(), T0), Action::Commit { .. }));
        let mut dec = decline(m, ip);
        dec.set_giaddr(relay);
        let _ = s.handle(&dec, &direct(), T0 + 1);
    }
    assert_eq!(s.table.probation(1, T0 + 2).0, cap);
}

/// `max_leases_per_circuit`: one relay port cannot take the pool; another
/// port on the same relay still gets addresses.
#[test]
fn a_relay_circuit_is_capped() {
    let mut s = server("max_leases_per_circuit = 3");
    let via = |m: u8, port: &[u8]| {
        let mut d = msg(MessageType::Discover, m);
        d.set_giaddr(Ipv4Addr::new(10, 99, 0, 1));
        let mut info = RelayAgentInformation::default();
        info.insert(RelayInfo::AgentCircuitId(port.to_vec()));
        with(d, DhcpOption::RelayAgentInformation(info))
    };
    let answered = |a: Action| matches!(a, Action::Send(_) | Action::PingThenSend { .. });
    for m in 1..=3 {
        assert!(answered(s.handle(&via(m, b"p1"), &direct(), T0)));
    }
    assert!(matches!(
        s.handle(&via(4, b"p1"), &direct(), T0),
        Action::Silent(Silence::CircuitLimit)
    ));
    // A client already on the circuit is still answered.
    assert!(answered(s.handle(&via(2, b"p1"), &direct(), T0)));
    assert!(answered(s.handle(&via(5, b"p2"), &direct(), T0)));
    // Offers that lapse free the circuit's room.
    assert!(answered(s.handle(&via(4, b"p1"), &direct(), T0 + 3600)));
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut s = server("");
    let mut i = msg(MessageType::Inform, 1);
    i.set_ciaddr(Ipv4Addr::new(10, 77, 0, 9));
    let r = reply_of(s.handle(&i, &direct(), T0));
    assert_eq!(kind(&r), MessageType::Ack);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(r.msg.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert_eq!(r.to, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 9), 68));
}

#[test]
fn hostname_and_fqdn_are_stored_cleaned() {
    let mut s = server("");
    let ip = reply_of(s.handle(&msg(MessageType::Discover, 1), &direct(), T0))
        .msg
        .yiaddr();
    let req = with(
        with(
            with(
                msg(MessageType::Request, 1),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(ip),
        ),
        DhcpOption::Hostname("VM_One.lab.test".into()),
    );
    match s.handle(&req, &direct(), T0) {
        Action::Commit { lease, .. } => assert_eq!(lease.hostname.as_deref(), Some("vm-one")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn floods_from_one_mac_are_cut_off() {
    let mut s = server("max_packets_per_client = 3");
    for _ in 0..3 {
        assert!(!matches!(
            s.handle(&msg(MessageType::Discover, 1), &direct(), T0),
            Action::Silent(Silence::RateLimited)
        ));
    }
    assert!(matches!(
        s.handle(&msg(MessageType::Discover, 1), &direct(), T0),
        Action::Silent(Silence::RateLimited)
    ));
    // Others are still served, and the next second the client is too.
    assert!(!matches!(
        s.handle(&msg(MessageType::Discover, 2), &direct(), T0),
        Action::Silent(_)
    ));
    assert!(!matches!(
        s.handle(&msg(MessageType::Discover, 1), &direct(), T0 + 1),
        Action::Silent(_)
    ));
}

#[test]
fn replies_are_not_requests() {
    let mut s = server("");
    let mut m = msg(MessageType::Discover, 1);
    m.set_opcode(Opcode::BootReply);
    assert!(matches!(
        s.handle(&m, &direct(), T0),
        Action::Silent(Silence::NotARequest)
    ));
    let mut no_type = msg(MessageType::Discover, 1);
    no_type.opts_mut().remove(OptionCode::MessageType);
    assert!(matches!(
        s.handle(&no_type, &direct(), T0),
        Action::Silent(Silence::NoMessageType)
    ));
}

#[test]
fn table_reloaded_from_the_store_keeps_bindings() {
    // What a restart after kill -9 sees: the committed leases.
    let mut s = server("");
    let ip = dora(&mut s, 1, T0);
    let Action::Commit { lease, .. } = s.handle(
        &with(
            with(
                msg(MessageType::Request, 1),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(ip),
        ),
        &direct(),
        T0,
    ) else {
        panic!("commit")
    };
    let mut fresh = server("");
    fresh.table.load(vec![lease], T0 + 5);
    for m in 2..=3 {
        let r = reply_of(fresh.handle(&msg(MessageType::Discover, m), &direct(), T0 + 5));
        assert_ne!(
            r.msg.yiaddr(),
            ip,
            "a stored lease is never offered to another client"
        );
    }
    assert_eq!(
        reply_of(fresh.handle(&msg(MessageType::Discover, 1), &direct(), T0 + 5))
            .msg
            .yiaddr(),
        ip
    );
}

/// Found by fuzz/fuzz_targets/dhcp.rs: options dhcproto reads with a fixed
/// length (it only debug-asserts it) are dropped when the length differs,
/// instead of desynchronising the option walk (release) or panicking
/// (debug); the same options with the right length still decode.
#[test]
fn options_with_a_length_dhcproto_cannot_read_are_dropped() {
    let packet = |extra: &[u8]| {
        let mut m = msg(MessageType::Discover, 1);
        m.opts_mut().clear();
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).expect("encode");
        buf.truncate(240);
        buf.extend_from_slice(&[53, 1, 1]);
        buf.extend_from_slice(extra);
        buf.push(255);
        buf
    };
    for bad in [
        &[152, 1, 0][..],
        &[155, 5, 0, 0, 0, 0, 0],
        &[94, 2, 1, 2],
        &[81, 2, 0, 0],
        &[80, 1, 0],
        // RFC 3396 §7: dhcproto joins consecutive pieces of one option code
        // before decoding, so two well-formed pieces of 94 read as one
        // option of length 6 (found by fuzz/fuzz_targets/dhcp.rs in CI).
        &[94, 3, 1, 3, 16, 94, 3, 1, 3, 16],
        &[152, 2, 0, 0, 152, 4, 0, 0, 0, 1],
    ] {
        assert_eq!(
            crate::wire::decode(&packet(bad)).err(),
            Some(crate::wire::Malformed::BadOptionLength),
            "{bad:?}"
        );
    }
    for good in [
        &[152, 4, 0, 0, 0, 1][..],
        &[94, 3, 1, 3, 16],
        &[81, 3, 0, 0, 0],
        &[80, 0],
        // Pieces that join to a readable length, and a pad that ends a run.
        &[81, 1, 0, 81, 2, 0, 0],
        &[80, 0, 80, 0],
        &[94, 3, 1, 3, 16, 0, 94, 3, 1, 3, 16],
    ] {
        assert!(crate::wire::decode(&packet(good)).is_ok(), "{good:?}");
    }
    // The same inside `file` when option 52 (overload, RFC 2132 §9.3) says
    // it holds options.
    let mut p = packet(&[52, 1, 1]);
    p[108..112].copy_from_slice(&[94, 1, 0, 255]);
    assert_eq!(
        crate::wire::decode(&p).err(),
        Some(crate::wire::Malformed::BadOptionLength)
    );
}

proptest! {
    /// Arbitrary bytes through decode → handle: never a panic, and any reply
    /// is a BOOTREPLY.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let mut s = server("");
        if let Ok(m) = crate::wire::decode(&bytes) {
            if let Action::Send(r) | Action::PingThenSend { reply: r, .. } | Action::Commit { reply: Some(r), .. } =
                s.handle(&m, &direct(), T0)
            {
                prop_assert_eq!(r.msg.opcode(), Opcode::BootReply);
            }
        }
    }

    /// A valid DHCP header followed by arbitrary option bytes.
    #[test]
    fn arbitrary_options_never_panic(opts in proptest::collection::vec(any::<u8>(), 0..400), kind in 1u8..=8) {
        let mut m = msg(MessageType::Discover, 1);
        m.opts_mut().clear();
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).expect("encode");
        buf.truncate(240);
        buf.extend_from_slice(&[53, 1, kind]);
        buf.extend_from_slice(&opts);
        let mut s = server("");
        if let Ok(m) = crate::wire::decode(&buf) {
            let _ = s.handle(&m, &direct(), T0);
        }
    }
}

/// Network boot (labnet-pxe): a boot client's replies carry the decision in
/// `siaddr`, `file` and options 60/66/67 even though it did not ask for 66/67;
/// other clients' replies carry none of it.
#[test]
fn boot_clients_get_next_server_and_boot_file() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = rt.block_on(labnet_store::open(&url)).expect("store");
    let pxe = Config::parse(
        "[store]\nurl = \"sqlite:///tmp/unused.db\"\n[pxe]\ntftp_server = \"10.77.0.1\"\n",
        "test",
    )
    .expect("config")
    .pxe
    .expect("pxe");
    let files = rt
        .block_on(labnet_pxe::BootFiles::load(store, pxe))
        .expect("boot files");
    let mut s = server("");
    s.set_boot(Arc::new(files));

    let boot = |r: &Reply| {
        let o = r.msg.opts();
        (
            r.msg.siaddr(),
            // `file` is NUL-padded on the wire.
            r.msg
                .fname_str()
                .and_then(Result::ok)
                .map(|f| f.trim_end_matches('\0').to_owned()),
            o.get(OptionCode::TFTPServerName).cloned(),
            o.get(OptionCode::BootfileName).cloned(),
            o.get(OptionCode::ClassIdentifier).cloned(),
        )
    };
    // OVMF's own PXE client: x64 UEFI, no user class.
    let firmware = with(
        with(
            msg(MessageType::Discover, 1),
            DhcpOption::ClassIdentifier(b"PXEClient:Arch:00007:UNDI:003000".to_vec()),
        ),
        DhcpOption::ClientSystemArchitecture(7.into()),
    );
    let offer = reply_of(s.handle(&firmware, &direct(), T0));
    // The boot fields survive encoding.
    let bytes = offer.msg.to_vec().expect("encode");
    let decoded = Message::decode(&mut Decoder::new(&bytes)).expect("decode");
    let offer = Reply {
        msg: decoded,
        to: offer.to,
    };
    assert_eq!(
        boot(&offer),
        (
            SERVER,
            Some("ipxe.efi".into()),
            Some(DhcpOption::TFTPServerName(b"10.77.0.1".to_vec())),
            Some(DhcpOption::BootfileName(b"ipxe.efi".to_vec())),
            // No PXEClient echo: EDK2 would then ask port 4011 for the file.
            None,
        )
    );
    // The same machine once ipxe.efi runs: the script, in the ACK too (no
    // profile in the store: `ipxe_script`, the admin's own file).
    let ipxe = with(firmware.clone(), DhcpOption::UserClass(b"iPXE".to_vec()));
    let offer = reply_of(s.handle(&ipxe, &direct(), T0));
    assert_eq!(boot(&offer).1.as_deref(), Some("boot.ipxe"));
    let req = with(
        with(
            with(ipxe, DhcpOption::MessageType(MessageType::Request)),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(offer.msg.yiaddr()),
    );
    let ack = reply_of(s.handle(&req, &direct(), T0));
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!(boot(&ack).1.as_deref(), Some("boot.ipxe"));
    // An ordinary client gets none of it.
    let plain = reply_of(s.handle(&msg(MessageType::Discover, 2), &direct(), T0));
    assert_eq!(
        boot(&plain),
        (Ipv4Addr::UNSPECIFIED, None, None, None, None)
    );
}
