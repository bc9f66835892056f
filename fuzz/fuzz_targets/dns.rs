//! DNS: one message -> `labnet_dnsd::handler::handle(bytes, src, transport,
//! &View, &Pipeline::local(), now)`, the whole local query path: the pre-encoded fast path first, then
//! the full decode/lookup/encode path, AXFR included. The view is built by
//! `View::new(Catalog, TransferAcl)` over a small zone (`Zone::new`,
//! `Zone::insert`, `Catalog::insert`) with CNAME chains, a loop, a
//! wildcard, a delegation and an RRset too big for 512 octets. Each input
//! is asked over UDP from a stranger and over TCP from an allowed
//! secondary; the local pipeline must answer every one at once.
//! Asserts: no panic; every reply is a DNS response that hickory decodes,
//! carries the query's ID, and over UDP fits `MAX_UDP_PAYLOAD`.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RData;
use hickory_proto::serialize::txt::Parser;
use labnet_dnsd::handler::{handle, Reply, Step, TransferAcl, Transport, View, MAX_UDP_PAYLOAD};
use labnet_dnsd::pipeline::Pipeline;
use labnet_dnsd::zone::{Catalog, Zone};
use libfuzzer_sys::fuzz_target;

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
txt     IN TXT "hello" "world"
_sip._tcp IN SRV 10 5 5060 web
@       IN CAA 0 issue "ca.example"
*.wild  IN A 10.77.0.99
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

fn view() -> &'static View {
    static VIEW: OnceLock<View> = OnceLock::new();
    VIEW.get_or_init(|| {
        let (origin, sets) = Parser::new(LAB, None, None).parse().expect("zone text");
        let mut z = Zone::new(&origin);
        for set in sets.values() {
            for r in set.records_without_rrsigs() {
                assert!(z.insert(&r.name, r.ttl, r.data.clone()));
                if let RData::SOA(soa) = &r.data {
                    z.serial = soa.serial;
                }
            }
        }
        let mut c = Catalog::default();
        c.insert(z);
        View::new(
            c,
            TransferAcl {
                secondaries: vec!["192.0.2.2:53".parse().expect("addr")],
                allow: Vec::new(),
            },
        )
    })
}

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(Pipeline::local)
}

fn check(query: &[u8], reply: &[u8], transport: Transport) {
    if transport == Transport::Udp {
        assert!(
            reply.len() <= usize::from(MAX_UDP_PAYLOAD),
            "UDP reply of {} octets",
            reply.len()
        );
    }
    let m = match Message::from_vec(reply) {
        Ok(m) => m,
        Err(e) => panic!("reply does not decode: {e}: {reply:02x?}"),
    };
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(&reply[..2], &query[..2], "reply ID differs");
}

fuzz_target!(|data: &[u8]| {
    let v = view();
    let stranger: SocketAddr = "198.51.100.7:5353".parse().expect("addr");
    let secondary: SocketAddr = "192.0.2.2:40000".parse().expect("addr");
    for (src, t) in [(stranger, Transport::Udp), (secondary, Transport::Tcp)] {
        let step = handle(data, src, t, v, pipeline(), std::time::Instant::now());
        let reply = match step {
            Step::Ready(r) => r,
            Step::Pending(ctx) => panic!("the local pipeline never waits: {ctx:?}"),
        };
        match reply {
            Reply::Drop => {}
            Reply::Message(m) => check(data, &m, t),
            Reply::Stream(ms) => {
                assert_eq!(t, Transport::Tcp, "AXFR over UDP");
                for m in &ms {
                    check(data, m, t);
                }
            }
        }
    }
});
