//! The query core: bytes in, bytes out, against one [`View`]. No I/O.
//!
//! `handle` first tries the fast path (a pre-encoded reply for an existing
//! name and type, with the ID, RD bit, question case and OPT patched in),
//! then the full path: decode with hickory-proto, filter (opcode, counts,
//! class, EDNS version), run the handler chain, encode within the size the
//! client can take.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use ipnet::IpNet;

use crate::zone::{Catalog, Resolution};

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

/// A link of the handler chain (in the spirit of hickory's catalog and
/// `LookupControlFlow`): local zones first; GSLB and recursion come later
/// and slot in after it.
pub enum Flow {
    /// This handler answers.
    Break(Resolution),
    /// Not ours: ask the next handler.
    Continue,
}

/// Everything the core reads: the zones and the pre-encoded replies.
#[derive(Debug, Default)]
pub struct View {
    pub catalog: Catalog,
    pub acl: TransferAcl,
    /// Lowercase wire qname + qtype (big-endian) -> reply to a plain query
    /// with ID 0 and RD clear.
    fast: HashMap<Box<[u8]>, Box<[u8]>>,
}

impl View {
    /// A view over `catalog`, pre-encoding the replies for every existing
    /// name and each of its types (plus A and AAAA).
    pub fn new(catalog: Catalog, acl: TransferAcl) -> View {
        let mut view = View {
            catalog,
            acl,
            fast: HashMap::new(),
        };
        view.fast = view.prebuild();
        view
    }

    fn prebuild(&self) -> HashMap<Box<[u8]>, Box<[u8]>> {
        let mut fast = HashMap::new();
        for zone in self.catalog.zones.values() {
            for (name, node) in &zone.nodes {
                let mut types: Vec<RecordType> = node.rrsets.iter().map(|s| s.rtype).collect();
                for t in [RecordType::A, RecordType::AAAA] {
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
                for t in types {
                    let Some(res) = self.chain(name, t) else {
                        continue;
                    };
                    let mut meta = Metadata::new(0, MessageType::Response, OpCode::Query);
                    meta.recursion_desired = false;
                    let q = Query::query(name.clone(), t);
                    let Some(bytes) = encode(&meta, &q, None, &res, u16::MAX as usize) else {
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

    /// Run the handler chain.
    pub fn chain(&self, qname: &Name, qtype: RecordType) -> Option<Resolution> {
        match self.local(qname, qtype) {
            Flow::Break(r) => Some(r),
            // GSLB, then recursion, go here.
            Flow::Continue => None,
        }
    }

    fn local(&self, qname: &Name, qtype: RecordType) -> Flow {
        match self.catalog.resolve(qname, qtype) {
            Some(r) => Flow::Break(r),
            None => Flow::Continue,
        }
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

/// Answer one DNS message received from `src`.
pub fn handle(query: &[u8], src: SocketAddr, transport: Transport, view: &View) -> Reply {
    if let Some(r) = fast_path(query, transport, view) {
        return Reply::Message(r);
    }
    slow_path(query, src, transport, view)
}

/// A header-only error reply for a query we cannot decode.
fn header_error(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut r = vec![0u8; 12];
    r[0] = query[0];
    r[1] = query[1];
    // QR, the query's opcode and RD.
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = rcode & 0x0f;
    r
}

fn fast_path(q: &[u8], transport: Transport, view: &View) -> Option<Vec<u8>> {
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

fn slow_path(bytes: &[u8], src: SocketAddr, transport: Transport, view: &View) -> Reply {
    if bytes.len() < 12 {
        return Reply::Drop;
    }
    if bytes[2] & 0x80 != 0 {
        // Never answer a response (no reflection loops).
        return Reply::Drop;
    }
    let msg = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(peer = %src, error = %e, "malformed query");
            return Reply::Message(header_error(bytes, ResponseCode::FormErr.low()));
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
    let limit = match (transport, &msg.edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(e)) => e.max_payload().clamp(512, MAX_UDP_PAYLOAD) as usize,
    };
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
        return error(ResponseCode::NotImp, msg.queries.first());
    }
    if msg.queries.len() != 1 {
        return error(ResponseCode::FormErr, None);
    }
    let query = &msg.queries[0];
    if let Some(e) = &msg.edns {
        if e.version() > 0 {
            // RFC 6891 §6.1.3.
            return error(ResponseCode::BADVERS, None);
        }
    }
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return error(ResponseCode::Refused, Some(query));
    }
    let qtype = query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return transfer(&msg, query, src, transport, view, rmeta);
    }
    let qname = query.name();
    let Some(res) = view.chain(qname, qtype) else {
        tracing::debug!(peer = %src, name = %qname, "not our zone");
        return error(ResponseCode::Refused, Some(query));
    };
    match encode(&rmeta, query, resp_edns.as_ref(), &res, limit) {
        Some(v) => Reply::Message(v),
        None => error(ResponseCode::ServFail, Some(query)),
    }
}

/// Encode a resolution; when it is larger than `limit`, drop the additional
/// section (unless it is a referral's glue), else send TC with no records
/// (RFC 2181 §9) so the client retries over TCP.
fn encode(
    meta: &Metadata,
    query: &Query,
    edns: Option<&Edns>,
    res: &Resolution,
    limit: usize,
) -> Option<Vec<u8>> {
    let build = |answers: &[Record], auth: &[Record], add: &[Record], tc: bool| {
        let mut m = Message::new(meta.id, MessageType::Response, OpCode::Query);
        m.metadata = *meta;
        m.metadata.authoritative = res.authoritative;
        m.metadata.response_code = res.rcode;
        m.metadata.truncation = tc;
        m.add_query(query.clone());
        m.answers = answers.to_vec();
        m.authorities = auth.to_vec();
        m.additionals = add.to_vec();
        if let Some(e) = edns {
            m.set_edns(e.clone());
        }
        m.to_vec().ok()
    };
    let full = build(&res.answers, &res.authorities, &res.additionals, false)?;
    if full.len() <= limit {
        return Some(full);
    }
    if !res.referral && !res.additionals.is_empty() {
        let less = build(&res.answers, &res.authorities, &[], false)?;
        if less.len() <= limit {
            return Some(less);
        }
    }
    build(&[], &[], &[], true)
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
        tracing::info!(peer = %src, zone = %query.name(), "zone transfer refused");
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
