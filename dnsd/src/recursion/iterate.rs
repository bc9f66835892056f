//! Iteration from the root (RFC 1034 §5.3.3), written on hickory-proto.
//!
//! Why not hickory-resolver's recursor (0.26, feature `recursor`), which was
//! evaluated first behind the same [`Upstream`] trait: on the tests' fake
//! Internet it resolved glue, glueless, cross-TLD NS and cross-zone CNAME
//! chains like Unbound, but its name-server pool gives up on the first
//! REFUSED or SERVFAIL from one server of a zone instead of trying the next
//! (a lame server beside a working one made every lookup SERVFAIL), and its
//! time limit is one 5 s budget for the whole pool, not per server, so a
//! silent first server used all of a client's patience. Neither is settable
//! through `RecursorOptions`. The loop below is small and owns those choices:
//!
//! - servers of a zone tried in order of smoothed RTT, each with its own
//!   short timeout; a timeout or a lame answer (REFUSED, SERVFAIL, a
//!   non-authoritative answer that is no referral) backs the address off for
//!   a while and the next one is tried;
//! - bailiwick (RFC 2181 §5.4.1, the classic poisoning): from a server asked
//!   about zone Z only records at or under Z are taken; a referral is only
//!   believed for a child of Z that encloses the question, and glue only for
//!   names under Z; nothing but the delegation (NS + glue) is cached here;
//! - QNAME minimisation (RFC 9156, relaxed: an NXDOMAIN or anything odd for
//!   a shortened name falls back to the full name);
//! - CNAME chains followed across zones, glueless delegations resolved with a
//!   nested lookup, with limits on CNAME links, referral depth, nesting and
//!   upstream queries per client query;
//! - a random source port (a new socket per query, the kernel's random
//!   ephemeral port) and a random ID, replies matched strictly (address,
//!   ID, question), TC → TCP (RFC 7766), EDNS0 with a 1232-byte payload.
//! - DNSSEC (with a [`Validator`]): DO on every query, DS questions asked of
//!   the parent's servers (RFC 4035 §4.2), and each zone's part of an
//!   answer (with the zone that gave it) handed to the validator, which
//!   fetches DS and DNSKEY through this same iterator; the answer carries
//!   the verdict over all its parts.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use lru::LruCache;

use super::cache::Upstreamed;
use super::dnssec::{self, Fetch, Fetched, Security, Validator};
use super::upstream::{exchange, Upstream, UpstreamError};
use crate::query::Ede;

/// Longest CNAME chain followed (Unbound stops at 11 restarts).
pub const MAX_CNAME_LINKS: usize = 11;
/// Referrals followed for one name.
const MAX_REFERRALS: usize = 16;
/// Extra questions QNAME minimisation may add per name (RFC 9156 §2.3
/// MAX_MINIMISE_COUNT).
const MAX_MINIMISE: usize = 10;
/// Nested lookups (addresses of glueless name servers) inside each other.
const MAX_NESTING: u8 = 3;
/// Upstream queries per client question, all nested work included.
const MAX_QUERIES: usize = 64;
/// Timeout for one server that has no RTT yet; others get 3×SRTT within
/// [MIN_TRY, MAX_TRY].
const FIRST_TRY: Duration = Duration::from_millis(800);
const MIN_TRY: Duration = Duration::from_millis(250);
const MAX_TRY: Duration = Duration::from_millis(1500);
/// How long an address that timed out or answered lame is avoided.
const BACKOFF: Duration = Duration::from_secs(30);
/// Zones whose delegations are remembered.
const DELEGATIONS: usize = 16_384;
/// Addresses with RTT statistics.
const SERVERS: usize = 16_384;

/// The name servers of one zone.
#[derive(Debug, Clone)]
struct Delegation {
    zone: Name,
    /// NS names and the addresses known for them.
    servers: Vec<(Name, Vec<IpAddr>)>,
    expires: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    /// Smoothed RTT in µs (RFC 6298 style, α = 1/8); 0 = never measured.
    srtt_us: u64,
    /// Avoid until then (timeouts, lame answers).
    backoff_until: Option<Instant>,
}

/// The iterator; one per daemon, shared by all resolutions.
pub struct Iterate {
    roots: Vec<IpAddr>,
    qname_minimisation: bool,
    delegations: Mutex<LruCache<Name, Delegation>>,
    stats: Mutex<LruCache<IpAddr, Stats>>,
    /// DNSSEC validation (`None`: off, and upstream queries go without DO).
    validator: Option<Validator>,
}

/// The work one client question may still do.
struct Budget {
    queries: AtomicUsize,
}

impl Budget {
    fn spend(&self) -> Result<(), UpstreamError> {
        let left = self.queries.load(Ordering::Relaxed);
        if left == 0 {
            return Err(UpstreamError::Limit(format!(
                "more than {MAX_QUERIES} upstream queries"
            )));
        }
        self.queries.store(left - 1, Ordering::Relaxed);
        Ok(())
    }
}

/// The DNSSEC records a reply's authority section may carry for a
/// validator: the SOA of a negative answer, NSEC/NSEC3, and their RRSIGs.
fn is_proof(r: &Record) -> bool {
    match dnssec::rrsig(r) {
        Some(sig) => matches!(
            sig.input().type_covered,
            RecordType::SOA | RecordType::NSEC | RecordType::NSEC3
        ),
        None => matches!(
            r.record_type(),
            RecordType::SOA | RecordType::NSEC | RecordType::NSEC3
        ),
    }
}

/// The records of `name`/`rtype` in `records` and the RRSIGs over them.
fn with_sigs(records: &[Record], name: &Name, rtype: RecordType) -> Vec<Record> {
    records
        .iter()
        .filter(|r| {
            r.name.to_lowercase() == *name
                && (r.record_type() == rtype
                    || dnssec::rrsig(r).is_some_and(|s| s.input().type_covered == rtype))
        })
        .cloned()
        .collect()
}

/// The iterator as the validator's way to ask for DS and DNSKEY records,
/// within the client question's budget.
struct Stepper<'a> {
    it: &'a Iterate,
    budget: &'a Budget,
    depth: u8,
}

#[async_trait]
impl Fetch for Stepper<'_> {
    async fn fetch(&self, name: &Name, qtype: RecordType) -> Result<Fetched, Ede> {
        self.it
            .step(name, qtype, self.budget, self.depth)
            .await
            .map_err(|e| e.ede())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Iterate {
    /// Iteration from `roots`, with QNAME minimisation (RFC 9156) or not.
    pub fn new(roots: &[IpAddr], qname_minimisation: bool) -> Iterate {
        let cap = |n: usize| std::num::NonZeroUsize::new(n).unwrap_or(std::num::NonZeroUsize::MIN);
        Iterate {
            roots: roots.to_vec(),
            qname_minimisation,
            delegations: Mutex::new(LruCache::new(cap(DELEGATIONS))),
            stats: Mutex::new(LruCache::new(cap(SERVERS))),
            validator: None,
        }
    }

    /// Validate answers with `v` (and ask upstream with DO set).
    pub fn with_validator(mut self, v: Validator) -> Iterate {
        self.validator = Some(v);
        self
    }

    /// The closest enclosing zone whose servers we know, else the root.
    fn closest(&self, name: &Name, now: Instant) -> Delegation {
        let mut cache = lock(&self.delegations);
        let labels = name.num_labels() as usize;
        for n in (1..=labels).rev() {
            let z = name.trim_to(n);
            if let Some(d) = cache.get(&z) {
                if d.expires > now {
                    return d.clone();
                }
            }
        }
        drop(cache);
        Delegation {
            zone: Name::root(),
            servers: vec![(Name::root(), self.roots.clone())],
            expires: now + Duration::from_secs(86400),
        }
    }

    /// Addresses to try, best first: known-fast, then unmeasured, then
    /// backed off (as a last resort).
    fn order(&self, addrs: Vec<IpAddr>, now: Instant) -> Vec<IpAddr> {
        let mut stats = lock(&self.stats);
        let mut scored: Vec<(u8, u64, u32, IpAddr)> = addrs
            .into_iter()
            .map(|a| {
                let s = stats.get(&a).copied().unwrap_or_default();
                let backed_off = s.backoff_until.is_some_and(|t| t > now);
                // Unmeasured servers are tried in random order among
                // themselves, and before slow ones (≥ 50 ms).
                let rank = if backed_off { 2 } else { 0 };
                let rtt = if s.srtt_us == 0 { 50_000 } else { s.srtt_us };
                (rank, rtt, rand::random::<u32>(), a)
            })
            .collect();
        scored.sort();
        scored.into_iter().map(|(_, _, _, a)| a).collect()
    }

    fn timeout_for(&self, a: IpAddr) -> Duration {
        let s = lock(&self.stats).get(&a).copied().unwrap_or_default();
        if s.srtt_us == 0 {
            FIRST_TRY
        } else {
            Duration::from_micros(s.srtt_us * 3).clamp(MIN_TRY, MAX_TRY)
        }
    }

    fn record_rtt(&self, a: IpAddr, rtt: Duration) {
        let mut stats = lock(&self.stats);
        let s = stats.get_or_insert_mut(a, Stats::default);
        let us = rtt.as_micros() as u64;
        s.srtt_us = if s.srtt_us == 0 {
            us
        } else {
            (s.srtt_us * 7 + us) / 8
        };
        s.backoff_until = None;
    }

    fn back_off(&self, a: IpAddr, now: Instant) {
        let mut stats = lock(&self.stats);
        let s = stats.get_or_insert_mut(a, Stats::default);
        s.backoff_until = Some(now + BACKOFF);
    }

    /// Ask the servers of `d` about `name`/`qtype` until one gives a usable
    /// answer; `Ok(None)` when none did.
    async fn ask_zone(
        &self,
        d: &Delegation,
        name: &Name,
        qtype: RecordType,
        budget: &Budget,
        depth: u8,
    ) -> Result<Option<Message>, UpstreamError> {
        let mut addrs: Vec<IpAddr> = d.servers.iter().flat_map(|(_, a)| a.clone()).collect();
        addrs.dedup();
        if addrs.is_empty() {
            // Glueless: find the name servers' addresses (RFC 1034 §5.3.3
            // step 2), one nested lookup at a time until one has some.
            for (ns, _) in &d.servers {
                if depth >= MAX_NESTING {
                    return Err(UpstreamError::Limit(format!(
                        "name server lookups nested more than {MAX_NESTING} deep"
                    )));
                }
                if d.zone.zone_of(ns) && ns != &d.zone {
                    // In-zone NS without glue: unreachable by design.
                    continue;
                }
                let found = Box::pin(self.lookup(ns, RecordType::A, budget, depth + 1)).await;
                if let Ok(Upstreamed { answers, .. }) = found {
                    addrs.extend(answers.iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        _ => None,
                    }));
                }
                if !addrs.is_empty() {
                    let mut cache = lock(&self.delegations);
                    if let Some(c) = cache.get_mut(&d.zone) {
                        for (n, a) in c.servers.iter_mut() {
                            if n == ns {
                                *a = addrs.clone();
                            }
                        }
                    }
                    break;
                }
            }
        }
        let mut query = Query::query(name.clone(), qtype);
        query.set_query_class(DNSClass::IN);
        // Two rounds (RFC 1035 §7.2: retransmit, with a longer wait): a
        // server that timed out in the first is asked again with twice the
        // patience; one that answered lame or refused the connection is not.
        let order = self.order(addrs, Instant::now());
        let mut skip: Vec<IpAddr> = Vec::new();
        for round in 0..2u32 {
            for &a in &order {
                if skip.contains(&a) {
                    continue;
                }
                budget.spend()?;
                let server = SocketAddr::new(a, 53);
                let wait = match round {
                    0 => self.timeout_for(a),
                    _ => (self.timeout_for(a) * 2).max(FIRST_TRY),
                };
                let start = Instant::now();
                match exchange(server, &query, false, self.validator.is_some(), wait).await {
                    Ok(m) => {
                        self.record_rtt(a, start.elapsed());
                        let rcode = m.metadata.response_code;
                        let usable =
                            matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
                                && (m.metadata.authoritative || is_referral(&m, &d.zone, name));
                        if usable {
                            return Ok(Some(m));
                        }
                        tracing::debug!(server = %server, zone = %d.zone, rcode = %rcode, aa = m.metadata.authoritative, "lame answer");
                        self.back_off(a, Instant::now());
                        skip.push(a);
                    }
                    Err(UpstreamError::Timeout) => {
                        tracing::debug!(server = %server, zone = %d.zone, round, "timed out");
                        self.back_off(a, Instant::now());
                    }
                    Err(e) => {
                        tracing::debug!(server = %server, zone = %d.zone, error = %e, "no answer");
                        self.back_off(a, Instant::now());
                        skip.push(a);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Resolve one name without following CNAMEs out of the zone that
    /// answers: referrals are followed down from the closest known zone.
    async fn step(
        &self,
        name: &Name,
        qtype: RecordType,
        budget: &Budget,
        depth: u8,
    ) -> Result<Fetched, UpstreamError> {
        // RFC 4035 §4.2: a DS record lives in the parent zone; ask there.
        let mut d = match qtype {
            RecordType::DS if !name.is_root() => self.closest(&name.base_name(), Instant::now()),
            _ => self.closest(name, Instant::now()),
        };
        // QNAME minimisation (RFC 9156): a zone's servers are asked about
        // one label below the zone at a time, type A (§3), until the name
        // itself; `extra` is how many labels below the zone we reveal.
        let mut extra: usize = 1;
        let mut minimise = self.qname_minimisation;
        for _ in 0..MAX_REFERRALS + MAX_MINIMISE {
            let zone_labels = d.zone.num_labels() as usize;
            let (ask, ask_type) = if minimise && (name.num_labels() as usize) > zone_labels + extra
            {
                (name.trim_to(zone_labels + extra), RecordType::A)
            } else {
                (name.clone(), qtype)
            };
            let Some(m) = self.ask_zone(&d, &ask, ask_type, budget, depth).await? else {
                return Err(UpstreamError::Timeout);
            };
            let zone = d.zone.clone();
            if ask != *name {
                if let Some(next) = self.referral(&m, &zone, &ask) {
                    d = next;
                    extra = 1;
                    continue;
                }
                let exists = m.metadata.response_code == ResponseCode::NoError
                    && m.metadata.authoritative
                    && !m
                        .answers
                        .iter()
                        .any(|r| r.record_type() == RecordType::CNAME);
                if exists {
                    // No cut at `ask`: reveal one more label.
                    extra += 1;
                } else {
                    // NXDOMAIN for an empty non-terminal, a CNAME, anything
                    // odd: the relaxed fallback, ask the full name (§2.3).
                    minimise = false;
                }
                continue;
            }
            // Bailiwick: only what this zone's servers may speak for.
            let inzone = |r: &&Record| zone.zone_of(&r.name);
            let authorities: Vec<Record> = m
                .authorities
                .iter()
                .filter(inzone)
                .filter(|r| is_proof(r))
                .filter(|r| r.record_type() != RecordType::SOA || r.name.zone_of(name))
                .cloned()
                .collect();
            let answers: Vec<Record> = m.answers.iter().filter(inzone).cloned().collect();
            let fetched = |rcode| Fetched {
                zone: zone.clone(),
                rcode,
                answers: answers.clone(),
                authorities: authorities.clone(),
            };
            if m.metadata.response_code == ResponseCode::NXDomain {
                return Ok(fetched(ResponseCode::NXDomain));
            }
            if !answers.is_empty() {
                return Ok(fetched(ResponseCode::NoError));
            }
            if let Some(next) = self.referral(&m, &zone, name) {
                if qtype == RecordType::DS && next.zone == *name {
                    return Err(UpstreamError::Other(format!(
                        "servers of {zone} referred the DS of {name} to the child"
                    )));
                }
                d = next;
                extra = 1;
                continue;
            }
            if m.metadata.authoritative {
                return Ok(fetched(ResponseCode::NoError));
            }
            return Err(UpstreamError::Other(format!(
                "servers of {zone} neither answered nor referred for {name}"
            )));
        }
        Err(UpstreamError::Limit(format!(
            "more than {MAX_REFERRALS} referrals"
        )))
    }

    /// A referral from a server of `zone` for `name`: a child zone of
    /// `zone` that encloses `name`, its NS, and glue under `zone` only.
    fn referral(&self, m: &Message, zone: &Name, name: &Name) -> Option<Delegation> {
        let ns: Vec<&Record> = m
            .authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::NS)
            .collect();
        let child = ns.first()?.name.to_lowercase();
        if !(zone.zone_of(&child) && child != *zone && child.zone_of(name)) {
            return None;
        }
        let mut servers: Vec<(Name, Vec<IpAddr>)> = Vec::new();
        let mut ttl = u32::MAX;
        for r in ns.iter().filter(|r| r.name.to_lowercase() == child) {
            if let RData::NS(n) = &r.data {
                ttl = ttl.min(r.ttl);
                let host = n.0.to_lowercase();
                let glue: Vec<IpAddr> = if zone.zone_of(&host) {
                    m.additionals
                        .iter()
                        .filter(|g| g.name.to_lowercase() == host)
                        .filter_map(|g| match &g.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                servers.push((host, glue));
            }
        }
        if servers.is_empty() {
            return None;
        }
        let d = Delegation {
            zone: child.clone(),
            servers,
            expires: Instant::now() + Duration::from_secs(u64::from(ttl.clamp(5, 86400))),
        };
        lock(&self.delegations).put(child, d.clone());
        Some(d)
    }

    /// Resolve `qname`/`qtype`, following CNAMEs across zones; with a
    /// validator, each zone's part is validated and the answer carries the
    /// verdict over all of them.
    async fn lookup(
        &self,
        qname: &Name,
        qtype: RecordType,
        budget: &Budget,
        depth: u8,
    ) -> Result<Upstreamed, UpstreamError> {
        let mut chain: Vec<Record> = Vec::new();
        let mut name = qname.to_lowercase();
        let mut seen: Vec<Name> = Vec::new();
        let mut security = match self.validator {
            Some(_) => Security::Secure,
            None => Security::Insecure,
        };
        for _ in 0..=MAX_CNAME_LINKS {
            if seen.contains(&name) {
                return Err(UpstreamError::Limit(format!("CNAME loop at {name}")));
            }
            seen.push(name.clone());
            let f = self.step(&name, qtype, budget, depth).await?;
            if let Some(v) = &self.validator {
                let fetch = Stepper {
                    it: self,
                    budget,
                    depth,
                };
                security = security.and(v.check(&fetch, &f, &name, qtype).await);
            }
            let done = |rcode, answers, authorities| Upstreamed {
                rcode,
                answers,
                authorities,
                authentic: security == Security::Secure,
                bogus: match &security {
                    Security::Bogus(e) => Some(e.clone()),
                    _ => None,
                },
            };
            if f.rcode == ResponseCode::NXDomain
                || f.answers.is_empty()
                || matches!(security, Security::Bogus(_))
            {
                // RFC 6604 §3: the chain so far and the last name's RCODE.
                chain.extend(f.answers);
                return Ok(done(f.rcode, chain, f.authorities));
            }
            // Positive: only the proofs a wildcard answer needs stay.
            let proofs: Vec<Record> = f
                .authorities
                .iter()
                .filter(|r| {
                    r.record_type() != RecordType::SOA
                        && dnssec::rrsig(r)
                            .is_none_or(|s| s.input().type_covered != RecordType::SOA)
                })
                .cloned()
                .collect();
            // Walk the chain inside this answer from `name`.
            let records = f.answers;
            let mut cur = name.clone();
            let mut links = 0;
            loop {
                let found = with_sigs(&records, &cur, qtype);
                if !found.is_empty() || qtype == RecordType::CNAME {
                    chain.extend(found);
                    return Ok(done(ResponseCode::NoError, chain, proofs));
                }
                let cname = records.iter().find_map(|r| match &r.data {
                    RData::CNAME(t) if r.name.to_lowercase() == cur => Some(t.0.to_lowercase()),
                    _ => None,
                });
                let Some(target) = cname else {
                    // The answer holds nothing for `cur`: ask anew.
                    break;
                };
                chain.extend(with_sigs(&records, &cur, RecordType::CNAME));
                links += 1;
                if links > MAX_CNAME_LINKS
                    || chain
                        .iter()
                        .filter(|r| r.record_type() == RecordType::CNAME)
                        .count()
                        > MAX_CNAME_LINKS
                {
                    return Err(UpstreamError::Limit(format!(
                        "CNAME chain longer than {MAX_CNAME_LINKS}"
                    )));
                }
                if seen.contains(&target) && target != cur {
                    return Err(UpstreamError::Limit(format!("CNAME loop at {target}")));
                }
                cur = target;
            }
            if cur == name {
                return Err(UpstreamError::Other(format!(
                    "answer for {name} holds no {qtype} nor CNAME"
                )));
            }
            name = cur;
        }
        Err(UpstreamError::Limit(format!(
            "CNAME chain longer than {MAX_CNAME_LINKS}"
        )))
    }
}

/// Whether `m` (from a server of `zone`) delegates `name` further down.
fn is_referral(m: &Message, zone: &Name, name: &Name) -> bool {
    m.answers.is_empty()
        && m.authorities.iter().any(|r| {
            r.record_type() == RecordType::NS
                && zone.zone_of(&r.name)
                && r.name != *zone
                && r.name.zone_of(name)
        })
}

#[async_trait]
impl Upstream for Iterate {
    async fn resolve(&self, query: &Query) -> Result<Upstreamed, UpstreamError> {
        let budget = Budget {
            queries: AtomicUsize::new(MAX_QUERIES),
        };
        self.lookup(query.name(), query.query_type(), &budget, 0)
            .await
    }
}
