//! The query core: bytes in, bytes out, against one [`View`]. No I/O.
//!
//! `handle` first tries the reply cache (a pre-encoded reply for an existing
//! name and type, with the ID, RD/CD/RA bits, question case and OPT patched
//! in), then the full path: decode with hickory-proto, filter (opcode,
//! counts, class, EDNS version), run the [`Pipeline`], encode within the
//! size the client can take ([`QueryCtx::reply`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use ipnet::IpNet;

use crate::gslb::GslbTable;
use crate::pipeline::Pipeline;
use crate::query::{encode, QueryCtx};
use crate::zone::Catalog;

/// The EDNS payload size we advertise and the most we send over UDP
/// (DNS flag day 2020: 1232 avoids IP fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// RFC 1035 §4.2.1: without EDNS, UDP replies stop at 512 octets.
pub const PLAIN_UDP_LIMIT: usize = 512;
/// Records per AXFR message.
const AXFR_CHUNK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to send back.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing (not a query, or too broken to answer).
    Drop,
    Message(Vec<u8>),
    /// Several messages on one TCP connection (AXFR).
    Stream(Vec<Vec<u8>>),
}

/// Who may AXFR.
#[derive(Debug, Clone, Default)]
pub struct TransferAcl {
    pub secondaries: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
}

impl TransferAcl {
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.secondaries.iter().any(|s| canonical(s.ip()) == ip)
            || self.allow.iter().any(|n| n.contains(&ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The reply cache's table (see [`View`]).
type FastMap = HashMap<Box<[u8]>, Box<[u8]>, foldhash::fast::RandomState>;

/// Everything the core reads: the zones, the ACLs and the reply cache.
#[derive(Debug, Default)]
pub struct View {
    pub catalog: Catalog,
    pub acl: TransferAcl,
    /// Clients that may recurse (`recursion_allowed`).
    pub recursion_allowed: Vec<IpNet>,
    /// The reply cache in front of the pipeline: lowercase wire qname +
    /// qtype (big-endian) -> reply to a plain query with ID 0, RD and RA
    /// clear. Only answers that do not depend on the client fill it: the
    /// local zones' answers, built with the view (a GSLB answer, or a
    /// recursive one, which only some clients may see, never goes here).
    /// foldhash rather than SipHash: one lookup per query, and the keys come
    /// from the zones, not from clients, so flooding the table is not a risk
    /// (a client's key is only looked up); the seed is random per process.
    fast: FastMap,
    /// GSLB pools and maps (their names are in `catalog.gslb_names`).
    pub gslb: Arc<GslbTable>,
}

impl View {
    /// A view over `catalog`, pre-encoding the replies for every existing
    /// name and each of its types (plus A and AAAA).
    pub fn new(catalog: Catalog, acl: TransferAcl) -> View {
        let mut view = View {
            catalog,
            acl,
            recursion_allowed: Vec::new(),
            fast: FastMap::default(),
            gslb: Arc::default(),
        };
        view.fast = view.prebuild();
        view
    }

    /// A view over `catalog` whose GSLB names are `gslb`'s.
    pub fn with_gslb(mut catalog: Catalog, acl: TransferAcl, gslb: Arc<GslbTable>) -> View {
        catalog.gslb_names = Arc::new(gslb.names().cloned().collect());
        let mut view = View::new(catalog, acl);
        view.gslb = gslb;
        view
    }

    /// The same view, with the clients that may recurse.
    pub fn with_recursion_allowed(mut self, nets: Vec<IpNet>) -> View {
        self.recursion_allowed = nets;
        self
    }

    /// Whether `ip` may recurse.
    pub fn may_recurse(&self, ip: IpAddr) -> bool {
        if self.recursion_allowed.is_empty() {
            return false;
        }
        let ip = canonical(ip);
        self.recursion_allowed.iter().any(|n| n.contains(&ip))
    }

    fn prebuild(&self) -> FastMap {
        let mut fast = FastMap::default();
        for zone in self.catalog.zones.values() {
            for (name, node) in &zone.nodes {
                let mut types: Vec<RecordType> = node.rrsets.iter().map(|s| s.rtype).collect();
                for t in [RecordType::A, RecordType::AAAA] {
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
                for t in types {
                    let Some(res) = self.catalog.resolve(name, t) else {
                        continue;
                    };
                    if res.leaves_zones.is_some() {
                        // Recursive clients get the chain resolved on: not
                        // the same for every client.
                        continue;
                    }
                    let mut meta = Metadata::new(0, MessageType::Response, OpCode::Query);
                    meta.recursion_desired = false;
                    meta.authoritative = res.authoritative;
                    meta.response_code = res.rcode;
                    let q = Query::query(name.clone(), t);
                    let Some(bytes) = encode(&meta, &q, None, &res.into(), u16::MAX as usize)
                    else {
                        continue;
                    };
                    // The fast path checks the size against each client's limit.
                    if bytes.len() > 3 {
                        let mut key = name_key(name);
                        key.extend_from_slice(&u16::from(t).to_be_bytes());
                        fast.insert(key.into_boxed_slice(), bytes.into_boxed_slice());
                    }
                }
            }
        }
        fast
    }

    /// Drop the pre-encoded replies (tests compare both paths).
    #[cfg(test)]
    pub fn clear_fast(&mut self) {
        self.fast.clear();
    }

    /// Number of pre-encoded replies.
    pub fn fast_len(&self) -> usize {
        self.fast.len()
    }
}

fn name_key(name: &Name) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 4);
    for label in name.iter() {
        key.push(label.len() as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    key.push(0);
    key
}

/// What [`handle`] decided.
#[derive(Debug)]
pub enum Step {
    /// Send this now.
    Ready(Reply),
    /// A link is still working (recursion): run the pipeline to its end off
    /// the socket thread, then send `ctx.reply(..)`.
    Pending(Box<QueryCtx>),
}

/// Answer one DNS message received from `src` at `now`: the reply cache,
/// then decode and filter, then the pipeline, polled once here so that an
/// answer that needs no waiting (local names, recursion cache hits) goes
/// back at once.
pub fn handle(
    query: &[u8],
    src: SocketAddr,
    transport: Transport,
    view: &View,
    pipeline: &Pipeline,
    now: Instant,
) -> Step {
    if let Some(r) = fast_path(query, src, transport, view) {
        return Step::Ready(Reply::Message(r));
    }
    let ctx = match prepare(query, src, transport, view, now) {
        Ok(ctx) => ctx,
        Err(reply) => return Step::Ready(reply),
    };
    let polled = {
        let mut fut = std::pin::pin!(pipeline.run(&ctx, view));
        let mut cx = Context::from_waker(Waker::noop());
        fut.as_mut().poll(&mut cx)
    };
    match polled {
        Poll::Ready(answer) => Step::Ready(ctx.reply(&answer)),
        // The future is dropped here; the caller runs the pipeline again
        // where it may wait. Whatever the first poll started upstream (a
        // resolution task) goes on and the second run joins it.
        Poll::Pending => Step::Pending(Box::new(ctx)),
    }
}

/// A header-only error reply for a query we cannot decode.
pub fn header_error(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut r = vec![0u8; 12];
    r[0] = query[0];
    r[1] = query[1];
    // QR, the query's opcode and RD.
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = rcode & 0x0f;
    r
}

fn fast_path(q: &[u8], src: SocketAddr, transport: Transport, view: &View) -> Option<Vec<u8>> {
    if q.len() < 17 || q[2] & 0xfa != 0 {
        // Too short, a response, an opcode other than QUERY, or TC set.
        return None;
    }
    if q[4..10] != [0, 1, 0, 0, 0, 0] || q[10] != 0 || q[11] > 1 {
        return None;
    }
    let mut key = [0u8; 260];
    let mut i = 12;
    let mut k = 0;
    loop {
        let len = *q.get(i)? as usize;
        if len > 63 || k + len + 1 > 255 {
            return None;
        }
        key[k] = len as u8;
        k += 1;
        i += 1;
        if len == 0 {
            break;
        }
        let label = q.get(i..i + len)?;
        for (d, s) in key[k..k + len].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        k += len;
        i += len;
    }
    let qname_end = i;
    let tail = q.get(i..i + 4)?;
    if tail[2..4] != [0, 1] {
        return None;
    }
    key[k] = tail[0];
    key[k + 1] = tail[1];
    k += 2;
    i += 4;
    let mut limit = match transport {
        Transport::Udp => PLAIN_UDP_LIMIT,
        Transport::Tcp => u16::MAX as usize,
    };
    let edns = if q[11] == 1 {
        // OPT: root owner, type 41, class = payload, TTL = rcode/version/flags.
        let opt = q.get(i..i + 11)?;
        if opt[0] != 0 || opt[1..3] != [0, 41] || opt[5] != 0 || opt[6] != 0 {
            return None;
        }
        let rdlen = u16::from_be_bytes([opt[9], opt[10]]) as usize;
        i += 11 + rdlen;
        let payload = u16::from_be_bytes([opt[3], opt[4]]).clamp(512, MAX_UDP_PAYLOAD);
        if transport == Transport::Udp {
            limit = payload as usize;
        }
        true
    } else {
        false
    };
    if i != q.len() {
        return None;
    }
    let pre = view.fast.get(&key[..k])?;
    let extra = if edns { 11 } else { 0 };
    if pre.len() + extra > limit {
        return None;
    }
    let mut r = Vec::with_capacity(pre.len() + extra);
    r.extend_from_slice(pre);
    r[0] = q[0];
    r[1] = q[1];
    r[2] |= q[2] & 0x01; // RD
    r[3] |= q[3] & 0x10; // CD
    if view.may_recurse(src.ip()) {
        r[3] |= 0x80; // RA: recursion is available to this client
    }
    // Echo the question's case: same length, same place.
    r[12..qname_end].copy_from_slice(&q[12..qname_end]);
    if edns {
        let ar = u16::from_be_bytes([r[10], r[11]]) + 1;
        r[10..12].copy_from_slice(&ar.to_be_bytes());
        let p = MAX_UDP_PAYLOAD.to_be_bytes();
        r.extend_from_slice(&[0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]);
    }
    Some(r)
}

/// Decode and filter: the query context for the pipeline, or the reply
/// already decided (errors, zone transfers).
fn prepare(
    bytes: &[u8],
    src: SocketAddr,
    transport: Transport,
    view: &View,
    now: Instant,
) -> Result<QueryCtx, Reply> {
    if bytes.len() < 12 {
        return Err(Reply::Drop);
    }
    if bytes[2] & 0x80 != 0 {
        // Never answer a response (no reflection loops).
        return Err(Reply::Drop);
    }
    let msg = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(peer = %src, error = %e, "malformed query");
            return Err(Reply::Message(header_error(
                bytes,
                ResponseCode::FormErr.low(),
            )));
        }
    };
    let meta = &msg.metadata;
    let mut rmeta = Metadata::new(meta.id, MessageType::Response, meta.op_code);
    rmeta.recursion_desired = meta.recursion_desired;
    rmeta.checking_disabled = meta.checking_disabled;
    let resp_edns = msg.edns.as_ref().map(|_| {
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP_PAYLOAD);
        e.set_version(0);
        e
    });
    let error = |rcode: ResponseCode, q: Option<&Query>| {
        let mut m = rmeta;
        m.response_code = rcode;
        let mut out = Message::new(meta.id, MessageType::Response, meta.op_code);
        out.metadata = m;
        if let Some(q) = q {
            out.add_query(q.clone());
        }
        if let Some(e) = &resp_edns {
            out.set_edns(e.clone());
        }
        match out.to_vec() {
            Ok(v) => Reply::Message(v),
            Err(_) => Reply::Message(header_error(bytes, rcode.low())),
        }
    };
    if meta.op_code != OpCode::Query {
        // RFC 1035 §4.1.1 / RFC 6895: NOTIFY, UPDATE and the rest are not
        // implemented by a primary without them.
        return Err(error(ResponseCode::NotImp, msg.queries.first()));
    }
    if msg.queries.len() != 1 {
        return Err(error(ResponseCode::FormErr, None));
    }
    let query = &msg.queries[0];
    if let Some(e) = &msg.edns {
        if e.version() > 0 {
            // RFC 6891 §6.1.3.
            return Err(error(ResponseCode::BADVERS, None));
        }
    }
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return Err(error(ResponseCode::Refused, Some(query)));
    }
    let qtype = query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Err(transfer(&msg, query, src, transport, view, rmeta));
    }
    QueryCtx::new(&msg, src, transport, view.may_recurse(src.ip()), now)
        .ok_or_else(|| error(ResponseCode::FormErr, None))
}

/// AXFR (RFC 5936) and IXFR answered with the whole zone (RFC 1995 §4).
fn transfer(
    msg: &Message,
    query: &Query,
    src: SocketAddr,
    transport: Transport,
    view: &View,
    meta: Metadata,
) -> Reply {
    let refuse = |rcode: ResponseCode| {
        let mut m = Message::new(meta.id, MessageType::Response, OpCode::Query);
        m.metadata = meta;
        m.metadata.response_code = rcode;
        m.add_query(query.clone());
        match m.to_vec() {
            Ok(v) => Reply::Message(v),
            Err(_) => Reply::Drop,
        }
    };
    if transport != Transport::Tcp || !view.acl.allowed(src.ip()) {
        // One line per refused packet would be a 4x amplifier into the
        // journal (issue 12): a few a second, the rest counted.
        static REFUSED: labnet_daemon::LogLimit = labnet_daemon::LogLimit::new(5);
        if let Some(suppressed) = REFUSED.allow() {
            tracing::info!(peer = %src, zone = %query.name(), suppressed, "zone transfer refused");
        }
        return refuse(ResponseCode::Refused);
    }
    let Some(zone) = view.catalog.zone_at(&query.name().to_lowercase()) else {
        return refuse(ResponseCode::NotAuth);
    };
    let mut records = zone.all_records();
    let Some(soa) = records.first().cloned() else {
        return refuse(ResponseCode::ServFail);
    };
    records.push(soa);
    let mut out = Vec::new();
    for (i, chunk) in records.chunks(AXFR_CHUNK).enumerate() {
        let mut m = Message::new(meta.id, MessageType::Response, OpCode::Query);
        m.metadata = meta;
        m.metadata.authoritative = true;
        if i == 0 {
            m.add_query(query.clone());
        }
        m.answers = chunk.to_vec();
        if i == 0 && msg.edns.is_some() {
            let mut e = Edns::new();
            e.set_max_payload(MAX_UDP_PAYLOAD);
            m.set_edns(e);
        }
        match m.to_vec() {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::warn!(zone = %zone.origin, error = %e, "cannot encode AXFR");
                return refuse(ResponseCode::ServFail);
            }
        }
    }
    tracing::info!(peer = %src, zone = %zone.origin, serial = zone.serial, records = records.len(), "zone transfer");
    Reply::Stream(out)
}
