//! The recursion link: what labnet-dnsd answers for names outside its own
//! zones, to clients in `recursion_allowed`.
//!
//! ```text
//! QueryCtx ─▶ may recurse? RD set? ──no──▶ Continue (REFUSED at the end)
//!          ─▶ RFC 6303 private reverse zone ─▶ answered here
//!          ─▶ cache (bytes-bounded, + and −) ─hit─▶ answered at once
//!               (popular entries near expiry are refreshed in the background)
//!          ─▶ in flight already? wait for it : start one resolution task
//!               (semaphore on concurrent resolutions)
//!          ─▶ [[dns.forward]] zone ─▶ Forward to its servers
//!             forwarders          ─▶ Forward
//!             else                ─▶ Iterate from the root hints, each zone's
//!                                    part DNSSEC-validated ([`dnssec`])
//!          ─▶ to the client: bogus → SERVFAIL + EDE (unless CD), AD on
//!             secure data for DO/AD clients, DNSSEC records only for DO
//! ```
//!
//! DNSSEC: validation happens once, when the answer is resolved; the cache
//! keeps the verdict with the answer (a bogus one for [`dnssec::BOGUS_TTL`]
//! at most), so a cached answer is never verified again and a client that
//! sets CD gets the bogus data from the same entry (RFC 4035 §3.2.2).
//! Names under `[[dns.forward]]` zones and everything behind `forwarders`
//! are not validated (the AD bit of a forwarder is passed on as it is).
//!
//! Bounds: at most [`MAX_RESOLUTIONS`] resolutions in flight (the
//! semaphore), each client query waits at most `deadline` (then SERVFAIL
//! with an Extended DNS Error), identical questions in flight are resolved
//! once, the cache is bounded in bytes. The resolution runs in its own task,
//! so a client that gives up does not cancel it for the others waiting. When
//! the cache still holds an expired answer and a fresh one fails or takes
//! longer than 1.8 s, the stale one is served (RFC 8767) with EDE 3.

pub mod cache;
pub mod dnssec;
pub mod iterate;
pub mod private;
pub mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name};
use hickory_proto::rr::{Record, RecordType};
use labnet_config::{Config, ConfigError, DnsConfig};
use tokio::sync::{watch, Semaphore};

use crate::handler::View;
use crate::pipeline::{Flow, Link, LinkFuture};
use crate::query::{Answer, Ede, QueryCtx};
use cache::{Cache, Key, Lookup, TtlPolicy, Upstreamed};
use dnssec::{Anchors, Validator};
use iterate::Iterate;
use private::PrivateZones;
use upstream::{Forward, Upstream, UpstreamError};

/// Resolutions in flight at once (Unbound's num-queries-per-thread is 1024
/// on a 64-bit build; hickory multiplexes them over few sockets).
pub const MAX_RESOLUTIONS: usize = 1024;
/// How long one client query may wait for its answer.
pub const DEADLINE: Duration = Duration::from_secs(4);
/// RFC 8767 §5: with a stale answer at hand, how long a client waits for a
/// fresh one before it gets the stale one.
pub const STALE_CLIENT_WAIT: Duration = Duration::from_millis(1800);
/// How long a forwarder gets before the next one is tried.
const FORWARD_TIMEOUT: Duration = Duration::from_millis(1500);

/// The IANA root hints (https://www.internic.net/domain/named.root, the
/// a–m root servers), used unless `root_hints` names a file.
pub const IANA_ROOTS: [IpAddr; 26] = [
    IpAddr::V4(Ipv4Addr::new(198, 41, 0, 4)),
    IpAddr::V4(Ipv4Addr::new(170, 247, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(192, 33, 4, 12)),
    IpAddr::V4(Ipv4Addr::new(199, 7, 91, 13)),
    IpAddr::V4(Ipv4Addr::new(192, 203, 230, 10)),
    IpAddr::V4(Ipv4Addr::new(192, 5, 5, 241)),
    IpAddr::V4(Ipv4Addr::new(192, 112, 36, 4)),
    IpAddr::V4(Ipv4Addr::new(198, 97, 190, 53)),
    IpAddr::V4(Ipv4Addr::new(192, 36, 148, 17)),
    IpAddr::V4(Ipv4Addr::new(192, 58, 128, 30)),
    IpAddr::V4(Ipv4Addr::new(193, 0, 14, 129)),
    IpAddr::V4(Ipv4Addr::new(199, 7, 83, 42)),
    IpAddr::V4(Ipv4Addr::new(202, 12, 27, 33)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x503, 0xba3e, 0, 0, 0, 2, 0x30)),
    IpAddr::V6(Ipv6Addr::new(0x2801, 0x1b8, 0x10, 0, 0, 0, 0, 0xb)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x2, 0, 0, 0, 0, 0xc)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x2d, 0, 0, 0, 0, 0xd)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0xa8, 0, 0, 0, 0, 0xe)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x2f, 0, 0, 0, 0, 0xf)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x12, 0, 0, 0, 0, 0xd0d)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x1, 0, 0, 0, 0, 0x53)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x7fe, 0, 0, 0, 0, 0, 0x53)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x503, 0xc27, 0, 0, 0, 2, 0x30)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x7fd, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x9f, 0, 0, 0, 0, 0x42)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdc3, 0, 0, 0, 0, 0, 0x35)),
];

/// Why recursion could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecursionError {
    #[error("dns.forward: `{zone}` is not a domain name: {reason}")]
    ForwardZone { zone: String, reason: String },
}

/// The trust anchors labnet-dnsd validates with, or why it does not:
/// `dnssec = false` turns validation off; `trust_anchors = FILE` gives the
/// anchors (checked here, with the key's line on error); without it the
/// built-in IANA root anchors apply when iterating from the IANA root, and
/// with `root_hints` (a lab's own root, which the IANA keys do not sign) or
/// `forwarders` validation is off, as Unbound is without an anchor.
pub fn trust_anchors(config: &Config) -> Result<Result<Anchors, &'static str>, ConfigError> {
    let Some(dns) = &config.dns else {
        return Ok(Err("no [dns] section"));
    };
    if dns.dnssec == Some(false) {
        return Ok(Err("dnssec = false"));
    }
    if !dns.forwarders.is_empty() {
        return Ok(Err(
            "forwarding: answers are not validated behind forwarders",
        ));
    }
    match config.dns_trust_anchors()? {
        Some(text) => Anchors::parse(&text)
            .map(Ok)
            .map_err(|why| config.invalid_key("dns.trust_anchors", why)),
        None if dns.root_hints.is_none() => Ok(Ok(Anchors::iana())),
        None => Ok(Err(
            "root_hints names another root and no trust_anchors are given",
        )),
    }
}

/// What a resolution ended with, shared by everyone waiting on it: the
/// answer, or why not.
type Outcome = Option<Arc<Result<Upstreamed, Ede>>>;

/// Shared between client futures and the resolution tasks they start.
struct Inner {
    private: PrivateZones,
    /// Conditional forwarding: longest zone first.
    forward: Vec<(Name, Arc<dyn Upstream>)>,
    default: Arc<dyn Upstream>,
    cache: Mutex<Cache>,
    ttl: TtlPolicy,
    inflight: Mutex<HashMap<Key, watch::Receiver<Outcome>>>,
    resolutions: Arc<Semaphore>,
    deadline: Duration,
}

/// The recursion link.
pub struct Recursion {
    inner: Arc<Inner>,
}

impl Recursion {
    /// From the `[dns]` config, the addresses read from its `root_hints`
    /// (`None`: the IANA root) and the trust anchors to validate with
    /// (`None`: no validation; see [`trust_anchors`]). Must run inside a
    /// tokio runtime.
    pub fn from_config(
        dns: &DnsConfig,
        root_hints: Option<Vec<IpAddr>>,
        anchors: Option<Anchors>,
    ) -> Result<Recursion, RecursionError> {
        let mut forward: Vec<(Name, Arc<dyn Upstream>)> = Vec::new();
        for f in &dns.forward {
            let mut zone = Name::from_ascii(&f.zone).map_err(|e| RecursionError::ForwardZone {
                zone: f.zone.clone(),
                reason: e.to_string(),
            })?;
            zone.set_fqdn(true);
            forward.push((
                zone.to_lowercase(),
                Arc::new(Forward::new(f.servers.clone(), FORWARD_TIMEOUT)),
            ));
        }
        forward.sort_by_key(|(z, _)| std::cmp::Reverse(z.num_labels()));
        let default: Arc<dyn Upstream> = if !dns.forwarders.is_empty() {
            Arc::new(Forward::new(dns.forwarders.clone(), FORWARD_TIMEOUT))
        } else {
            let roots: Vec<IpAddr> = root_hints.unwrap_or_else(|| IANA_ROOTS.to_vec());
            let it = Iterate::new(&roots, dns.qname_minimisation);
            Arc::new(match anchors {
                Some(a) => it.with_validator(Validator::new(a)),
                None => it,
            })
        };
        let ttl = TtlPolicy {
            min_ttl: dns.min_ttl,
            max_ttl: dns.max_ttl,
            max_negative_ttl: dns.max_negative_ttl,
        };
        Ok(Recursion::new(
            default,
            forward,
            dns.cache_size,
            ttl,
            DEADLINE,
        ))
    }

    /// From parts (tests inject their own upstreams).
    pub fn new(
        default: Arc<dyn Upstream>,
        forward: Vec<(Name, Arc<dyn Upstream>)>,
        cache_bytes: u64,
        ttl: TtlPolicy,
        deadline: Duration,
    ) -> Recursion {
        Recursion {
            inner: Arc::new(Inner {
                private: PrivateZones::default(),
                forward,
                default,
                cache: Mutex::new(Cache::new(cache_bytes)),
                ttl,
                inflight: Mutex::new(HashMap::new()),
                resolutions: Arc::new(Semaphore::new(MAX_RESOLUTIONS)),
                deadline,
            }),
        }
    }
}

impl Link for Recursion {
    fn name(&self) -> &'static str {
        "recursion"
    }

    fn answer<'a>(&'a self, ctx: &'a QueryCtx, _view: &'a View) -> LinkFuture<'a> {
        Box::pin(self.inner.clone().answer(ctx))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    async fn answer(self: Arc<Self>, ctx: &QueryCtx) -> Flow {
        // No open resolver: others get REFUSED from the end of the pipeline.
        // RFC 1034 §4.3.1: without RD, no recursion.
        if !ctx.may_recurse || !ctx.meta.recursion_desired {
            return Flow::Continue;
        }
        if let Some(a) = self.private.answer(&ctx.qname, ctx.qtype) {
            return Flow::Answer(a);
        }
        let key = Key::new(&ctx.qname, ctx.qtype);
        let lookup = lock(&self.cache).lookup(&key, ctx.now);
        let stale = match lookup {
            Lookup::Fresh { answer, prefetch } => {
                if prefetch {
                    // Refresh in the background; this client is answered now.
                    drop(self.clone().join_or_start(key, ctx));
                }
                return Flow::Answer(to_answer(answer, ctx));
            }
            Lookup::Stale(a) => Some(a),
            Lookup::Miss => None,
        };
        let mut rx = self.clone().join_or_start(key, ctx);
        let wait = match stale {
            Some(_) => STALE_CLIENT_WAIT.min(self.deadline),
            None => self.deadline,
        };
        let waited = tokio::time::timeout(wait, rx.wait_for(|v| v.is_some())).await;
        let answer = match waited {
            Ok(Ok(v)) => match v.as_ref().map(|o| o.as_ref()) {
                Some(Ok(u)) => to_answer(u.clone(), ctx),
                Some(Err(ede)) => Answer::servfail(ede.clone()),
                None => Answer::servfail(Ede::new(Ede::OTHER, "resolution lost")),
            },
            Ok(Err(_)) => Answer::servfail(Ede::new(Ede::OTHER, "resolution task ended")),
            Err(_) => Answer::servfail(Ede::new(
                Ede::NO_REACHABLE_AUTHORITY,
                format!("no answer within {} ms", wait.as_millis()),
            )),
        };
        let answer = match (answer.rcode, stale) {
            // RFC 8767: the authorities failed us; the stale answer, said so.
            (ResponseCode::ServFail, Some(s)) => {
                tracing::debug!(name = %ctx.qname, qtype = %ctx.qtype, reason = ?answer.ede, "serving stale");
                let mut a = to_answer(s, ctx);
                a.ede = Some(Ede::new(
                    Ede::STALE_ANSWER,
                    answer.ede.map(|e| e.text).unwrap_or_default(),
                ));
                a
            }
            (_, _) => answer,
        };
        if answer.rcode == ResponseCode::ServFail {
            tracing::debug!(peer = %ctx.src, name = %ctx.qname, qtype = %ctx.qtype,
                reason = ?answer.ede, "SERVFAIL");
        }
        Flow::Answer(answer)
    }

    /// Wait on the resolution of `key` already in flight, or start one.
    fn join_or_start(self: Arc<Self>, key: Key, ctx: &QueryCtx) -> watch::Receiver<Outcome> {
        let mut inflight = lock(&self.inflight);
        if let Some(rx) = inflight.get(&key) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(key.clone(), rx.clone());
        drop(inflight);
        let mut query = Query::query(ctx.qname.clone(), ctx.qtype);
        query.set_query_class(DNSClass::IN);
        let upstream = self
            .forward
            .iter()
            .find(|(z, _)| z.zone_of(&ctx.qname))
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| self.default.clone());
        let me = self.clone();
        tokio::spawn(async move {
            // The task's own bound, waiting for a permit included: twice the
            // clients' deadline, so queued or hung upstream work always ends.
            let work = async {
                match me.resolutions.clone().acquire_owned().await {
                    Ok(_permit) => upstream.resolve(&query).await,
                    Err(_) => Err(UpstreamError::Other("shutting down".into())),
                }
            };
            let result = match tokio::time::timeout(me.deadline * 2, work).await {
                Ok(r) => r,
                Err(_) => Err(UpstreamError::Timeout),
            };
            let outcome = match result {
                Ok(u) => {
                    if let Some(ttl) = me.ttl.ttl(&u) {
                        lock(&me.cache).insert(key.clone(), u.clone(), ttl, Instant::now());
                    }
                    Ok(u)
                }
                Err(e) => {
                    tracing::debug!(name = %query.name(), qtype = %query.query_type(), error = %e, "resolution failed");
                    Err(e.ede())
                }
            };
            lock(&me.inflight).remove(&key);
            let _ = tx.send(Some(Arc::new(outcome)));
        });
        rx
    }
}

/// What the client gets of `u`: bogus data only with CD set, else SERVFAIL
/// with the reason (RFC 4035 §3.2.2, §5.5; RFC 8914); AD on secure data for
/// a client that set DO or AD (RFC 6840 §5.7); RRSIG, NSEC and NSEC3 only
/// for DO (RFC 4035 §3.2.1), unless they are what was asked.
fn to_answer(u: Upstreamed, ctx: &QueryCtx) -> Answer {
    if let Some(e) = &u.bogus {
        if !ctx.meta.checking_disabled {
            return Answer::servfail(e.clone());
        }
    }
    let mut a = Answer::rcode(u.rcode);
    a.authentic_data =
        u.authentic && u.bogus.is_none() && (ctx.dnssec_ok || ctx.meta.authentic_data);
    let dnssec = |r: &Record| {
        matches!(
            r.record_type(),
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
        )
    };
    let keep = |r: &Record| ctx.dnssec_ok || !dnssec(r) || r.record_type() == ctx.qtype;
    a.answers = u.answers.into_iter().filter(keep).collect();
    a.authorities = u
        .authorities
        .into_iter()
        .filter(|r| ctx.dnssec_ok || !dnssec(r))
        .collect();
    if a.rcode == ResponseCode::ServFail {
        a.ede = Some(Ede::new(Ede::OTHER, "upstream answered SERVFAIL"));
    }
    a
}

#[cfg(test)]
mod tests;
