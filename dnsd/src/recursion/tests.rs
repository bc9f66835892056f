//! The recursion link against a scripted upstream: ACL, RA, the cache in
//! front (no second upstream query), coalescing, the deadline, EDE.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::cache::{TtlPolicy, Upstreamed};
use super::upstream::{Upstream, UpstreamError};
use super::Recursion;
use crate::handler::{handle, Reply, Step, TransferAcl, Transport, View};
use crate::pipeline::Pipeline;
use crate::zone::Catalog;

/// Answers `x.example` A 192.0.2.1 (after `delay`), NXDOMAIN for the rest,
/// and never answers `silent.example`; counts the questions it got.
struct Script {
    asked: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl Upstream for Script {
    async fn resolve(&self, q: &Query) -> Result<Upstreamed, UpstreamError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let n = |s: &str| Name::from_ascii(s).expect("name");
        if q.name() == &n("silent.example.") {
            std::future::pending::<()>().await;
        }
        if q.name() == &n("x.example.") {
            return Ok(Upstreamed {
                rcode: ResponseCode::NoError,
                answers: vec![Record::from_rdata(
                    n("x.example."),
                    300,
                    RData::A(A::new(192, 0, 2, 1)),
                )],
                authorities: vec![],
                authentic: false,
                bogus: None,
            });
        }
        let soa = SOA::new(n("ns.example."), n("h.example."), 1, 1, 1, 1, 60);
        Ok(Upstreamed {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(n("example."), 300, RData::SOA(soa))],
            authentic: false,
            bogus: None,
        })
    }
}

fn setup(delay: Duration) -> (Arc<Script>, Pipeline, View) {
    let script = Arc::new(Script {
        asked: AtomicUsize::new(0),
        delay,
    });
    let r = Recursion::new(
        script.clone(),
        Vec::new(),
        1 << 20,
        TtlPolicy {
            min_ttl: 0,
            max_ttl: 86400,
            max_negative_ttl: 3600,
        },
        Duration::from_millis(300),
    );
    let view = View::new(Catalog::default(), TransferAcl::default())
        .with_recursion_allowed(vec!["127.0.0.0/8".parse().expect("net")]);
    (script, Pipeline::new(vec![Arc::new(r)]), view)
}

fn query(name: &str, rd: bool) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().expect("encode")
}

const ALLOWED: &str = "127.0.0.1:4000";
const OUTSIDER: &str = "192.0.2.77:4000";

/// Run the pipeline as the server does: polled once, then to the end.
async fn ask(p: &Pipeline, v: &View, from: &str, bytes: &[u8]) -> (Message, bool) {
    ask_at(p, v, from, bytes, Instant::now()).await
}

async fn ask_at(p: &Pipeline, v: &View, from: &str, bytes: &[u8], now: Instant) -> (Message, bool) {
    let src: SocketAddr = from.parse().expect("addr");
    let (reply, waited) = match handle(bytes, src, Transport::Udp, v, p, now) {
        Step::Ready(r) => (r, false),
        Step::Pending(ctx) => (ctx.reply(&p.run(&ctx, v).await), true),
    };
    let Reply::Message(m) = reply else {
        panic!("no reply")
    };
    (Message::from_vec(&m).expect("decodes"), waited)
}

fn ede(m: &Message) -> Option<u16> {
    let opt = m
        .edns
        .as_ref()?
        .options()
        .get(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15))?;
    match opt {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, d) if d.len() >= 2 => {
            Some(u16::from_be_bytes([d[0], d[1]]))
        }
        _ => None,
    }
}

#[tokio::test]
async fn outsiders_and_rd_clear_are_refused_without_upstream_work() {
    let (script, p, v) = setup(Duration::ZERO);
    let (m, _) = ask(&p, &v, OUTSIDER, &query("x.example.", true)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.recursion_available);
    assert_eq!(ede(&m), Some(18));
    let (m, _) = ask(&p, &v, ALLOWED, &query("x.example.", false)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.metadata.recursion_available);
    assert_eq!(script.asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn answers_are_cached_positive_and_negative() {
    let (script, p, v) = setup(Duration::from_millis(5));
    let (m, waited) = ask(&p, &v, ALLOWED, &query("x.example.", true)).await;
    assert!(waited);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
    assert_eq!(m.answers.len(), 1);
    // The second ask is a cache hit, answered on the first poll.
    let (m, waited) = ask(&p, &v, ALLOWED, &query("X.example.", true)).await;
    assert!(!waited);
    assert_eq!(m.answers.len(), 1);
    let (m, _) = ask(&p, &v, ALLOWED, &query("nx.example.", true)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (m, waited) = ask(&p, &v, ALLOWED, &query("nx.example.", true)).await;
    assert!(!waited);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(script.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn identical_questions_in_flight_are_resolved_once() {
    let (script, p, v) = setup(Duration::from_millis(100));
    let p = Arc::new(p);
    let v = Arc::new(v);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (p, v) = (p.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            ask(&p, &v, ALLOWED, &query("x.example.", true)).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").answers.len(), 1);
    }
    assert_eq!(script.asked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn private_reverse_is_local_and_a_silent_upstream_is_servfail_with_ede() {
    let (script, p, v) = setup(Duration::ZERO);
    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii("1.0.0.10.in-addr.arpa.").expect("name"),
        RecordType::PTR,
    ));
    let (r, waited) = ask(&p, &v, ALLOWED, &m.to_vec().expect("encode")).await;
    assert!(!waited);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    let start = Instant::now();
    let (r, _) = ask(&p, &v, ALLOWED, &query("silent.example.", true)).await;
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ede(&r), Some(22));
    assert_eq!(script.asked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn popular_answers_are_prefetched_before_they_expire() {
    let (script, p, v) = setup(Duration::ZERO);
    let t0 = Instant::now();
    let q = query("x.example.", true);
    ask_at(&p, &v, ALLOWED, &q, t0).await;
    ask_at(&p, &v, ALLOWED, &q, t0 + Duration::from_secs(10)).await;
    assert_eq!(script.asked.load(Ordering::SeqCst), 1);
    // 285 s into a 300 s TTL: answered from the cache at once, and a
    // refresh goes upstream in the background.
    let (m, waited) = ask_at(&p, &v, ALLOWED, &q, t0 + Duration::from_secs(285)).await;
    assert!(!waited);
    assert_eq!(m.answers.len(), 1);
    for _ in 0..100 {
        if script.asked.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(script.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_local_cname_out_of_our_zones_is_followed_for_recursive_clients() {
    use hickory_proto::rr::rdata::{CNAME, NS};
    let (script, p, _) = setup(Duration::ZERO);
    let n = |s: &str| Name::from_ascii(s).expect("name");
    let mut z = crate::zone::Zone::new(&n("lab.test."));
    let soa = SOA::new(n("ns.lab.test."), n("h.lab.test."), 1, 1, 1, 1, 60);
    z.insert(&n("lab.test."), 60, RData::SOA(soa));
    z.insert(&n("lab.test."), 60, RData::NS(NS(n("ns.lab.test."))));
    z.insert(
        &n("alias.lab.test."),
        60,
        RData::CNAME(CNAME(n("x.example."))),
    );
    let mut c = Catalog::default();
    c.insert(z);
    let v = View::new(c, TransferAcl::default())
        .with_recursion_allowed(vec!["127.0.0.0/8".parse().expect("net")]);
    let (m, _) = ask(&p, &v, ALLOWED, &query("alias.lab.test.", true)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let got: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(got, ["alias.lab.test. x.example.", "x.example. 192.0.2.1"]);
    assert_eq!(script.asked.load(Ordering::SeqCst), 1);
    // Someone who may not recurse gets our part only, authoritatively.
    let (m, _) = ask(&p, &v, OUTSIDER, &query("alias.lab.test.", true)).await;
    assert_eq!(m.answers.len(), 1);
    assert!(m.metadata.authoritative);
}
