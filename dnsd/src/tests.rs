//! Unit tests of the lookup core, driven through `handler::handle` with
//! small builders, and a property test on arbitrary bytes.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use labnet_store::{Lease, LeaseState};
use proptest::prelude::*;

use crate::handler::{Reply, Step, TransferAcl, Transport, View};
use crate::pipeline::Pipeline;
use crate::view::{build, LeaseZones, SerialState, Snapshot};
use crate::zone::{Catalog, Zone};

const LAB: &str = r#"
$ORIGIN lab.test.
$TTL 3600
@       IN SOA ns1 hostmaster ( 5 3600 600 86400 300 )
        IN NS  ns1
        IN MX  10 mail
ns1     IN A   10.77.0.1
mail    IN A   10.77.0.2
www     IN CNAME web
web     IN A   10.77.0.10
        IN AAAA 2001:db8::10
a1      IN CNAME a2
a2      IN CNAME www
ext     IN CNAME www.example.org.
loop1   IN CNAME loop2
loop2   IN CNAME loop1
toother IN CNAME host.other.test.
txt     IN TXT "hello" "world"
_sip._tcp IN SRV 10 5 5060 web
@       IN CAA 0 issue "ca.example"
*.wild  IN A 10.77.0.99
*.wild  IN TXT "wildcard"
x.y.wild IN A 10.77.0.98
sub     IN NS ns.sub
ns.sub  IN A 10.77.0.53
big     IN TXT "0123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "1123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "2123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "3123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "4123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "5123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "6123456789012345678901234567890123456789012345678901234567890123456789"
big     IN TXT "7123456789012345678901234567890123456789012345678901234567890123456789"
"#;

const OTHER: &str = r#"
$ORIGIN other.test.
@    600 IN SOA ns hostmaster 9 3600 600 86400 900
     600 IN NS ns
host 600 IN A 10.88.0.1
"#;

fn zone(text: &str) -> Zone {
    let (origin, sets) = Parser::new(text, None, None).parse().expect("zone text");
    let mut z = Zone::new(&origin);
    for set in sets.values() {
        for r in set.records_without_rrsigs() {
            assert!(z.insert(&r.name, r.ttl, r.data.clone()));
            if let RData::SOA(soa) = &r.data {
                z.serial = soa.serial;
            }
        }
    }
    z
}

fn view() -> View {
    let mut c = Catalog::default();
    c.insert(zone(LAB));
    c.insert(zone(OTHER));
    View::new(
        c,
        TransferAcl {
            secondaries: vec!["10.0.0.2:53".parse().expect("addr")],
            allow: vec!["192.0.2.0/24".parse().expect("net")],
        },
    )
}

/// The authoritative-only pipeline; every answer is ready at once.
fn handle(bytes: &[u8], src: SocketAddr, t: Transport, v: &View) -> Reply {
    match crate::handler::handle(
        bytes,
        src,
        t,
        v,
        &Pipeline::local(),
        std::time::Instant::now(),
    ) {
        Step::Ready(r) => r,
        Step::Pending(ctx) => panic!("local answers never wait: {ctx:?}"),
    }
}

fn src() -> SocketAddr {
    "127.0.0.1:5353".parse().expect("addr")
}

struct Q {
    name: &'static str,
    qtype: RecordType,
    edns: Option<u16>,
    op: OpCode,
    id: u16,
}

fn q(name: &'static str, qtype: RecordType) -> Q {
    Q {
        name,
        qtype,
        edns: None,
        op: OpCode::Query,
        id: 4242,
    }
}

impl Q {
    fn edns(mut self, size: u16) -> Q {
        self.edns = Some(size);
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut m = Message::new(self.id, MessageType::Query, self.op);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii(self.name).expect("name"),
            self.qtype,
        ));
        if let Some(size) = self.edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }
}

fn ask_on(v: &View, bytes: &[u8], t: Transport) -> Message {
    match handle(bytes, src(), t, v) {
        Reply::Message(m) => Message::from_vec(&m).expect("reply decodes"),
        other => panic!("expected one message, got {other:?}"),
    }
}

fn ask(v: &View, query: Q) -> Message {
    ask_on(v, &query.bytes(), Transport::Udp)
}

fn answers(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

#[test]
fn positive_answer_is_authoritative_with_rd_echoed() {
    let v = view();
    let m = ask(&v, q("web.lab.test.", RecordType::A));
    assert_eq!(m.metadata.id, 4242);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_desired);
    assert!(!m.metadata.recursion_available);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["web.lab.test. A 10.77.0.10"]);
}

#[test]
fn every_record_type() {
    let v = view();
    for (name, t, want) in [
        ("lab.test.", RecordType::SOA, "hostmaster.lab.test. 5 "),
        ("lab.test.", RecordType::NS, "ns1.lab.test."),
        ("lab.test.", RecordType::MX, "10 mail.lab.test."),
        ("web.lab.test.", RecordType::AAAA, "2001:db8::10"),
        ("www.lab.test.", RecordType::CNAME, "web.lab.test."),
        ("txt.lab.test.", RecordType::TXT, "hello"),
        ("_sip._tcp.lab.test.", RecordType::SRV, "5060 web.lab.test."),
        ("lab.test.", RecordType::CAA, "ca.example"),
    ] {
        let m = ask(&v, q(name, t));
        assert_eq!(m.answers.len(), 1, "{name} {t}");
        assert_eq!(m.answers[0].record_type(), t);
        assert!(m.answers[0].data.to_string().contains(want), "{name} {t}");
    }
    // MX and SRV targets come with their addresses.
    let m = ask(&v, q("lab.test.", RecordType::MX));
    assert_eq!(m.additionals.len(), 1);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa_with_the_negative_ttl() {
    let v = view();
    let m = ask(&v, q("nope.lab.test.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // RFC 2308 §3: min(SOA TTL 3600, MINIMUM 300).
    assert_eq!(m.authorities[0].ttl, 300);
    let m = ask(&v, q("web.lab.test.", RecordType::MX));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // other.test: SOA TTL 600 < MINIMUM 900.
    let m = ask(&v, q("nope.other.test.", RecordType::A));
    assert_eq!(m.authorities[0].ttl, 600);
}

#[test]
fn empty_non_terminal_is_nodata_not_nxdomain() {
    let v = view();
    let m = ask(&v, q("_tcp.lab.test.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn cname_chains_are_followed_inside_our_zones() {
    let v = view();
    let m = ask(&v, q("a1.lab.test.", RecordType::A));
    assert_eq!(
        answers(&m),
        [
            "a1.lab.test. CNAME a2.lab.test.",
            "a2.lab.test. CNAME www.lab.test.",
            "www.lab.test. CNAME web.lab.test.",
            "web.lab.test. A 10.77.0.10"
        ]
    );
    assert!(m.metadata.authoritative);
    // Into another zone of ours.
    let m = ask(&v, q("toother.lab.test.", RecordType::A));
    assert_eq!(m.answers.len(), 2);
    // Out of our zones: the CNAME alone.
    let m = ask(&v, q("ext.lab.test.", RecordType::A));
    assert_eq!(answers(&m), ["ext.lab.test. CNAME www.example.org."]);
    // A loop ends.
    let m = ask(&v, q("loop1.lab.test.", RecordType::A));
    assert_eq!(m.answers.len(), 2);
}

#[test]
fn delegation_is_a_referral_with_glue_and_no_aa() {
    let v = view();
    for name in ["sub.lab.test.", "host.sub.lab.test.", "ns.sub.lab.test."] {
        let m = ask(&v, q(name, RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(!m.metadata.authoritative, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::NS);
        assert_eq!(m.authorities[0].name.to_ascii(), "sub.lab.test.");
        assert_eq!(m.additionals.len(), 1);
        assert_eq!(m.additionals[0].data.to_string(), "10.77.0.53");
    }
}

#[test]
fn wildcards_follow_rfc_4592() {
    let v = view();
    let m = ask(&v, q("anything.wild.lab.test.", RecordType::A));
    assert_eq!(answers(&m), ["anything.wild.lab.test. A 10.77.0.99"]);
    assert!(m.metadata.authoritative);
    // Type not at the wildcard: NODATA.
    let m = ask(&v, q("anything.wild.lab.test.", RecordType::AAAA));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // y.wild exists as an empty non-terminal: no wildcard match (§2.2.2).
    let m = ask(&v, q("y.wild.lab.test.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // Below y.wild the closest encloser is y.wild, which has no `*`.
    let m = ask(&v, q("z.y.wild.lab.test.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Two labels below the wildcard's parent: closest encloser is wild.
    let m = ask(&v, q("a.b.wild.lab.test.", RecordType::A));
    assert_eq!(answers(&m), ["a.b.wild.lab.test. A 10.77.0.99"]);
}

#[test]
fn case_is_matched_loosely_and_echoed() {
    let v = view();
    for edns in [None, Some(1232)] {
        let mut query = q("WeB.LaB.tEsT.", RecordType::A);
        query.edns = edns;
        let m = ask(&v, query);
        assert_eq!(m.queries[0].name().to_ascii(), "WeB.LaB.tEsT.");
        assert_eq!(m.answers.len(), 1);
        // NXDOMAIN path too.
        let mut query = q("NoPe.LaB.tEsT.", RecordType::A);
        query.edns = edns;
        let m = ask(&v, query);
        assert_eq!(m.queries[0].name().to_ascii(), "NoPe.LaB.tEsT.");
    }
}

#[test]
fn outside_our_zones_is_refused() {
    let v = view();
    let m = ask(&v, q("www.example.org.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
}

#[test]
fn unknown_opcode_is_notimp() {
    let v = view();
    let mut query = q("lab.test.", RecordType::SOA);
    query.op = OpCode::Update;
    let m = ask(&v, query);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(m.metadata.op_code, OpCode::Update);
}

#[test]
fn malformed_is_formerr_or_dropped() {
    let v = view();
    let good = q("web.lab.test.", RecordType::A).bytes();
    // Header fine, question cut short.
    let m = ask_on(&v, &good[..good.len() - 3], Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 4242);
    // Two questions.
    let mut two = good.clone();
    two[5] = 2;
    two.extend_from_slice(&good[12..]);
    let m = ask_on(&v, &two, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // No header: silence. A response: silence.
    assert_eq!(handle(&good[..5], src(), Transport::Udp, &v), Reply::Drop);
    let mut resp = good.clone();
    resp[2] |= 0x80;
    assert_eq!(handle(&resp, src(), Transport::Udp, &v), Reply::Drop);
}

#[test]
fn edns_is_echoed_and_badvers_for_version_one() {
    let v = view();
    let m = ask(&v, q("web.lab.test.", RecordType::A).edns(4096));
    let e = m.edns.as_ref().expect("OPT echoed");
    assert_eq!(e.max_payload(), 1232);
    assert_eq!(e.version(), 0);
    let m = ask(&v, q("web.lab.test.", RecordType::A));
    assert!(m.edns.is_none());

    let mut msg =
        Message::from_vec(&q("web.lab.test.", RecordType::A).edns(1232).bytes()).expect("decode");
    if let Some(e) = msg.edns.as_mut() {
        e.set_version(1);
    }
    let m = ask_on(&v, &msg.to_vec().expect("encode"), Transport::Udp);
    // 16 is BADVERS (RFC 6891) and BADSIG (RFC 8945); the decoder says BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.edns.is_some());
}

#[test]
fn too_big_for_udp_sets_tc_and_tcp_gets_everything() {
    let v = view();
    let m = ask(&v, q("big.lab.test.", RecordType::TXT));
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    let m = ask(&v, q("big.lab.test.", RecordType::TXT).edns(1232));
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 8);
    let m = ask(&v, q("big.lab.test.", RecordType::TXT).edns(512));
    assert!(m.metadata.truncation);
    let m = ask_on(
        &v,
        &q("big.lab.test.", RecordType::TXT).bytes(),
        Transport::Tcp,
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 8);
}

#[test]
fn fast_path_matches_the_full_path() {
    let v = view();
    let slow = {
        let mut c = Catalog::default();
        c.insert(zone(LAB));
        c.insert(zone(OTHER));
        let mut v = View::new(c, TransferAcl::default());
        v.clear_fast();
        v
    };
    for (name, t) in [
        ("web.lab.test.", RecordType::A),
        ("WWW.lab.test.", RecordType::A),
        ("lab.test.", RecordType::MX),
        ("lab.test.", RecordType::NS),
        ("web.lab.test.", RecordType::MX),
        ("_sip._tcp.lab.test.", RecordType::SRV),
    ] {
        for edns in [None, Some(1232)] {
            let mut query = q(name, t);
            query.edns = edns;
            let a = ask(&v, Q { ..query });
            let mut query = q(name, t);
            query.edns = edns;
            let b = ask(&slow, query);
            assert_eq!(a, b, "{name} {t} {edns:?}");
        }
    }
}

#[test]
fn axfr_over_tcp_to_allowed_sources_only() {
    let v = view();
    let bytes = q("lab.test.", RecordType::AXFR).bytes();
    let allowed: SocketAddr = "10.0.0.2:40000".parse().expect("addr");
    let other: SocketAddr = "10.0.0.3:40000".parse().expect("addr");
    let Reply::Stream(msgs) = handle(&bytes, allowed, Transport::Tcp, &v) else {
        panic!("no AXFR stream");
    };
    let all: Vec<_> = msgs
        .iter()
        .flat_map(|m| Message::from_vec(m).expect("decode").answers)
        .collect();
    assert_eq!(all.first().map(|r| r.record_type()), Some(RecordType::SOA));
    assert_eq!(all.last().map(|r| r.record_type()), Some(RecordType::SOA));
    assert!(all.len() > 20);
    let net: SocketAddr = "192.0.2.9:1".parse().expect("addr");
    assert!(matches!(
        handle(&bytes, net, Transport::Tcp, &v),
        Reply::Stream(_)
    ));
    for (from, t) in [(other, Transport::Tcp), (allowed, Transport::Udp)] {
        let Reply::Message(m) = handle(&bytes, from, t, &v) else {
            panic!("expected a refusal");
        };
        let m = Message::from_vec(&m).expect("decode");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }
}

fn lease(ip: &str, host: &str, expires: i64) -> Lease {
    Lease {
        ip: ip.parse().expect("ip"),
        mac: "52:54:00:00:00:01".into(),
        client_id: None,
        hostname: Some(host.into()),
        state: LeaseState::Bound,
        starts: 0,
        expires,
    }
}

fn lease_zones() -> LeaseZones {
    LeaseZones {
        zone: Name::from_ascii("lab.test.").expect("name"),
        ttl: 60,
        subnets: vec!["10.77.0.0/24".parse().expect("net")],
        ns_addr: Some("10.77.0.1".parse().expect("ip")),
    }
}

#[test]
fn lease_names_and_ptrs_in_a_synthesized_zone_with_moving_serial() {
    let mut serials = SerialState::default();
    let lz = lease_zones();
    let mut snap = Snapshot::default();
    let b0 = build(&snap, Some(&lz), &mut serials, 1000);
    let s0 = b0.catalog.zones[&Name::from_ascii("lab.test.").expect("n")].serial;
    assert!(b0
        .catalog
        .zones
        .contains_key(&Name::from_ascii("0.77.10.in-addr.arpa.").expect("n")));
    snap.leases = vec![
        lease("10.77.0.150", "VM1", 2000),
        lease("10.99.1.7", "far.example", 1500),
        lease("10.77.0.151", "bad_name!", 2000),
    ];
    let b1 = build(&snap, Some(&lz), &mut serials, 1001);
    assert_eq!(b1.next_expiry, Some(1500));
    let v = View::new(b1.catalog, TransferAcl::default());
    let m = ask(&v, q("vm1.lab.test.", RecordType::A));
    assert_eq!(answers(&m), ["vm1.lab.test. A 10.77.0.150"]);
    assert_eq!(m.answers[0].ttl, 60);
    let m = ask(&v, q("150.0.77.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(answers(&m), ["150.0.77.10.in-addr.arpa. PTR vm1.lab.test."]);
    assert!(m.metadata.authoritative);
    // A lease outside the DHCP subnets gets its /24 reverse zone.
    let m = ask(&v, q("7.1.99.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(answers(&m), ["7.1.99.10.in-addr.arpa. PTR far.lab.test."]);
    let s1 = v.catalog.zones[&Name::from_ascii("lab.test.").expect("n")].serial;
    assert!(labnet_store::serial_newer(s1, s0));
    // Same data later: same serial. Expired (by time): gone, serial moves.
    let b2 = build(&snap, Some(&lz), &mut serials, 1002);
    assert_eq!(
        b2.catalog.zones[&Name::from_ascii("lab.test.").expect("n")].serial,
        s1
    );
    let b3 = build(&snap, Some(&lz), &mut serials, 2000);
    let v = View::new(b3.catalog, TransferAcl::default());
    let m = ask(&v, q("vm1.lab.test.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let s3 = v.catalog.zones[&Name::from_ascii("lab.test.").expect("n")].serial;
    assert!(labnet_store::serial_newer(s3, s1));
}

/// A zone's records as the store holds them: wire RDATA.
fn stored_records(z: &Zone) -> Vec<labnet_store::ZoneRecord> {
    let mut out = Vec::new();
    for (name, node) in &z.nodes {
        for set in &node.rrsets {
            for rd in &set.rdatas {
                let mut wire = Vec::new();
                let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut wire);
                enc.set_canonical_form(true);
                hickory_proto::serialize::binary::BinEncodable::emit(rd, &mut enc).expect("emit");
                out.push(labnet_store::ZoneRecord {
                    id: 0,
                    zone: z.origin.to_ascii(),
                    name: name.to_ascii(),
                    rtype: set.rtype.to_string(),
                    ttl: set.ttl,
                    rdata: rd.to_string(),
                    wire,
                });
            }
        }
    }
    out
}

#[test]
fn lease_names_join_an_imported_lease_zone() {
    let mut serials = SerialState::default();
    let z = zone(LAB);
    let mut snap = Snapshot {
        zones: vec![("lab.test.".into(), 5)],
        ..Snapshot::default()
    };
    snap.records = stored_records(&z);
    let b = build(&snap, Some(&lease_zones()), &mut serials, 10);
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    assert_eq!(
        b.catalog.zones[&Name::from_ascii("lab.test.").expect("n")].serial,
        5
    );
    snap.leases = vec![lease("10.77.0.150", "vm1", 2000)];
    let b = build(&snap, Some(&lease_zones()), &mut serials, 11);
    assert_eq!(
        b.catalog.zones[&Name::from_ascii("lab.test.").expect("n")].serial,
        6
    );
    let v = View::new(b.catalog, TransferAcl::default());
    assert_eq!(ask(&v, q("vm1.lab.test.", RecordType::A)).answers.len(), 1);
    assert_eq!(ask(&v, q("web.lab.test.", RecordType::A)).answers.len(), 1);
}

#[test]
fn a_lease_never_joins_or_shadows_admin_names() {
    let mut serials = SerialState::default();
    let z = zone(LAB);
    let web_before: Vec<_> = {
        let v = View::new(
            {
                let mut c = crate::zone::Catalog::default();
                c.insert(z.clone());
                c
            },
            TransferAcl::default(),
        );
        ask(&v, q("web.lab.test.", RecordType::A)).answers
    };
    let mut snap = Snapshot {
        zones: vec![("lab.test.".into(), 5)],
        ..Snapshot::default()
    };
    snap.records = stored_records(&z);
    snap.leases = vec![lease("10.77.0.151", "web", 2000)];
    let b = build(&snap, Some(&lease_zones()), &mut serials, 11);
    assert_eq!(b.refused.len(), 1, "{:?}", b.refused);
    assert_eq!(
        b.refused[0].outcome,
        Err(labnet_store::NameRefusal::AdminRecord)
    );
    let v = View::new(b.catalog, TransferAcl::default());
    assert_eq!(
        ask(&v, q("web.lab.test.", RecordType::A)).answers,
        web_before
    );
    // No PTR either: the lease has no name.
    assert!(ask(&v, q("151.0.77.10.in-addr.arpa.", RecordType::PTR))
        .answers
        .is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes: no panic; silence, or a response with the query's ID
    /// that is FORMERR whenever the bytes do not decode.
    #[test]
    fn arbitrary_bytes_get_formerr_or_silence(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let v = view();
        for t in [Transport::Udp, Transport::Tcp] {
            match handle(&bytes, src(), t, &v) {
                Reply::Drop => {}
                Reply::Message(m) => {
                    let r = Message::from_vec(&m).expect("our reply decodes");
                    prop_assert_eq!(r.metadata.message_type, MessageType::Response);
                    prop_assert_eq!(&m[..2], &bytes[..2]);
                    if Message::from_vec(&bytes).is_err() {
                        prop_assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
                    }
                }
                Reply::Stream(ms) => prop_assert!(t == Transport::Tcp && !ms.is_empty()),
            }
        }
    }

    /// Valid queries with mangled bytes after the header.
    #[test]
    fn mangled_queries_never_panic(pos in 12usize..40, val in any::<u8>(), cut in 12usize..60) {
        let v = view();
        let mut b = q("web.lab.test.", RecordType::A).edns(1232).bytes();
        if pos < b.len() { b[pos] = val; }
        b.truncate(cut.max(12));
        let _ = handle(&b, src(), Transport::Udp, &v);
    }
}

/// RFC 8482 §4.1: ANY over UDP is answered with one RRset (it was the
/// classic amplification query); over TCP with all of them.
#[test]
fn any_over_udp_is_one_rrset_and_all_over_tcp() {
    let v = view();
    let bytes = q("web.lab.test.", RecordType::ANY).bytes();
    let udp = ask_on(&v, &bytes, Transport::Udp);
    let types: std::collections::BTreeSet<_> =
        udp.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "{:?}", answers(&udp));
    let tcp = ask_on(&v, &bytes, Transport::Tcp);
    let types: std::collections::BTreeSet<_> =
        tcp.answers.iter().map(|r| r.record_type()).collect();
    assert!(types.len() >= 2, "{:?}", answers(&tcp));
}
