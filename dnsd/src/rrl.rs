//! Response rate limiting (RRL) for UDP answers, as NSD and Knot do it: a
//! spoofed source must not turn labnet-dnsd into an amplifier, and one
//! client must not take the server. Pure: the socket loops pass `now`.
//!
//! Each reply about to leave over UDP is accounted to a bucket keyed by the
//! client's prefix (/24 for IPv4, /56 for IPv6, NSD's and Knot's defaults:
//! one attacker rarely holds more, and spoofed sources within it share one
//! budget) and by what the reply is:
//! - an answer or NODATA: the question (lowercase name, type), so a client
//!   asking many different names is not limited by one hot name;
//! - NXDOMAIN, a referral, or an error (REFUSED, SERVFAIL, FORMERR, …): one
//!   bucket per kind per prefix, so random names (the usual way around a
//!   per-name limit) share one budget. Knot keys these by zone; one budget
//!   per prefix is stricter and needs no zone lookup on the reply bytes.
//!
//! A bucket refills at `rate` replies per second (a token bucket, at most one
//! second's worth saved). Past it, every `slip`-th reply goes out truncated
//! (TC=1, the question only: 12 bytes plus the name, no amplification) so a
//! real client behind the prefix retries over TCP, which RRL never limits;
//! the others are dropped. Clients in `recursion_allowed` are the lab's own
//! machines and are never limited (the caller checks).
//!
//! The table is split in shards by key hash (the UDP threads share it) and
//! bounded: a shard that fills forgets buckets idle for a second (a bucket
//! idle that long is full again, which is what a new one starts as); when
//! even that frees nothing, a new key is answered untracked rather than
//! refused, since refusing would hand a spoofer the power to silence anyone.
//! Keys are hashed with a per-process random key (SipHash), so nobody can
//! aim collisions at one shard.
//!
//! Left out: Knot keys wildcard answers by the wildcard's owner; here each
//! name a wildcard matched is its own key (labnet zones rarely hold
//! wildcards).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// Buckets per shard (16 × 4096 = 65,536 prefixes × answers tracked).
const SHARD_CAP: usize = 4096;

/// What to do with one UDP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send this instead: the reply truncated (TC=1, question only).
    Slip(Vec<u8>),
    Drop,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    over: u64,
}

/// Response rate limiting; shared by the UDP threads.
#[derive(Debug)]
pub struct Rrl {
    rate: u32,
    slip: u32,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
}

/// The kind of reply, for the key (see the module doc).
#[derive(Hash)]
enum Kind<'a> {
    /// Lowercased question bytes (name and type).
    Answer(&'a [u8]),
    NxDomain,
    Referral,
    Error(u8),
}

impl Rrl {
    /// `rate` replies per second per prefix and kind (0: off); every
    /// `slip`-th reply over the rate is sent truncated (0: none).
    pub fn new(rate: u32, slip: u32) -> Rrl {
        Rrl {
            rate,
            slip,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0
    }

    /// The prefix a client is accounted under.
    pub fn prefix(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                IpAddr::from([o[0], o[1], o[2], 0])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::prefix(IpAddr::V4(v4)),
                None => {
                    let mut o = v6.octets();
                    o[7..].fill(0);
                    IpAddr::from(o)
                }
            },
        }
    }

    /// One UDP `reply` (wire bytes) about to go to `client` at `now`.
    pub fn check(&self, reply: &[u8], client: IpAddr, now: Instant) -> Verdict {
        if self.rate == 0 || reply.len() < 12 {
            return Verdict::Send;
        }
        let qend = question_end(reply);
        let mut h = self.hasher.build_hasher();
        Self::prefix(client).hash(&mut h);
        kind(reply, qend).hash(&mut h);
        let key = h.finish();
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut buckets = shard.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SHARD_CAP && !buckets.contains_key(&key) {
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(1));
            if buckets.len() >= SHARD_CAP {
                return Verdict::Send;
            }
        }
        let rate = f64::from(self.rate);
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: rate,
            last: now,
            over: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Send;
        }
        b.over += 1;
        if self.slip > 0 && b.over.is_multiple_of(u64::from(self.slip)) {
            Verdict::Slip(truncated(reply, qend))
        } else {
            Verdict::Drop
        }
    }
}

/// Where the question section ends (RFC 1035 §4.1.2), or 12 when the reply
/// has none or it cannot be walked.
fn question_end(m: &[u8]) -> usize {
    if u16::from_be_bytes([m[4], m[5]]) == 0 {
        return 12;
    }
    let mut i = 12;
    while let Some(&len) = m.get(i) {
        match len {
            0 => return if i + 5 <= m.len() { i + 5 } else { 12 },
            // A pointer ends the name (our encoder never starts a message
            // with one, but a name is two bytes then).
            l if l & 0xc0 == 0xc0 => return if i + 6 <= m.len() { i + 6 } else { 12 },
            l => i += 1 + usize::from(l),
        }
    }
    12
}

fn kind(m: &[u8], qend: usize) -> Kind<'_> {
    let rcode = m[3] & 0x0f;
    let answers = u16::from_be_bytes([m[6], m[7]]);
    let authoritative = m[2] & 0x04 != 0;
    match rcode {
        0 if answers > 0 || authoritative => Kind::Answer(&m[12..qend]),
        0 => Kind::Referral,
        3 => Kind::NxDomain,
        r => Kind::Error(r),
    }
}

/// The reply cut to its header and question, TC=1 (RFC 1035 §4.1.1), so
/// the client retries over TCP.
fn truncated(m: &[u8], qend: usize) -> Vec<u8> {
    let mut t = m[..qend].to_vec();
    t[2] |= 0x02;
    let qd: u16 = if qend > 12 { 1 } else { 0 };
    t[4..6].copy_from_slice(&qd.to_be_bytes());
    t[6..12].fill(0);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn reply(name: &str, rcode: ResponseCode, answers: usize) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.metadata.authoritative = true;
        let n = Name::from_ascii(name).expect("name");
        m.add_query(Query::query(n.clone(), RecordType::TXT));
        for _ in 0..answers {
            m.add_answer(Record::from_rdata(
                n.clone(),
                60,
                RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["x".repeat(200)])),
            ));
        }
        m.to_vec().expect("encode")
    }

    #[test]
    fn a_flood_is_limited_and_slips_while_others_are_answered() {
        let r = Rrl::new(10, 2);
        let t0 = Instant::now();
        let flood: IpAddr = "192.0.2.7".parse().expect("ip");
        let same_prefix: IpAddr = "192.0.2.9".parse().expect("ip");
        let other: IpAddr = "198.51.100.7".parse().expect("ip");
        let big = reply("big.lab.test.", ResponseCode::NoError, 5);
        let verdicts: Vec<_> = (0..100).map(|_| r.check(&big, flood, t0)).collect();
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        let slipped: Vec<_> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Slip(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(sent, 10);
        assert_eq!(slipped.len(), 45);
        // The slip is the header and the question, TC set, no records.
        let t = slipped[0];
        let msg = Message::from_vec(t).expect("decode slip");
        assert!(msg.metadata.truncation);
        assert_eq!(msg.queries.len(), 1);
        assert!(msg.answers.is_empty());
        assert!(t.len() < big.len() / 10, "{} vs {}", t.len(), big.len());
        // Same prefix shares the budget; another prefix and another name do not.
        assert_ne!(r.check(&big, same_prefix, t0), Verdict::Send);
        assert_eq!(r.check(&big, other, t0), Verdict::Send);
        let small = reply("small.lab.test.", ResponseCode::NoError, 1);
        assert_eq!(r.check(&small, flood, t0), Verdict::Send);
        // Tokens come back with time.
        assert_eq!(
            r.check(&big, flood, t0 + Duration::from_millis(500)),
            Verdict::Send
        );
        assert_eq!(Rrl::new(0, 2).check(&big, flood, t0), Verdict::Send);
    }

    #[test]
    fn random_names_share_the_nxdomain_budget() {
        let r = Rrl::new(5, 0);
        let t0 = Instant::now();
        let c: IpAddr = "2001:db8:1:2:3::9".parse().expect("ip");
        let sent = (0..50)
            .filter(|i| {
                let m = reply(&format!("r{i}.lab.test."), ResponseCode::NXDomain, 0);
                r.check(&m, c, t0) == Verdict::Send
            })
            .count();
        assert_eq!(sent, 5);
        // slip 0: never a truncated reply, only drops.
        let m = reply("again.lab.test.", ResponseCode::NXDomain, 0);
        assert_eq!(r.check(&m, c, t0), Verdict::Drop);
        // The same /56 shares it.
        let near: IpAddr = "2001:db8:1:ff::1".parse().expect("ip");
        assert_eq!(r.check(&m, near, t0), Verdict::Drop);
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = Rrl::new(1, 1);
        let t0 = Instant::now();
        let m = reply("a.lab.test.", ResponseCode::NoError, 1);
        for i in 0..(SHARDS * SHARD_CAP * 2) as u32 {
            let ip = IpAddr::from((i << 8).to_be_bytes());
            r.check(&m, ip, t0);
        }
        let total: usize = r.shards.iter().map(|s| s.lock().expect("lock").len()).sum();
        assert!(total <= SHARDS * SHARD_CAP, "{total}");
    }
}
