//! Where answers come from when the cache has none: iteration from the root
//! ([`Iterate`], hickory-resolver's recursor) or forwarding to recursive
//! servers ([`Forward`], written here on hickory-proto).
//!
//! Both sit behind [`Upstream`], so labnet's own cache, limits and
//! coalescing stay in front whatever engine resolves.
//!
//! Why hickory's recursor (hickory-resolver 0.26, feature `recursor`) and
//! not our own iteration: it is maintained, on the same hickory-proto, and
//! does what the tests ask for (glue and glueless delegations, NS names in
//! other TLDs, CNAME chains across zones, TC → TCP, EDNS0, random source
//! port and ID per query with strict matching, bailiwick filtering of
//! referrals, referral depth and per-request query budgets). What it lacks
//! (serve-stale, prefetch, ECS) belongs to labnet's cache in front. Its
//! per-server timeout is hickory's default (5 s), not settable through
//! `RecursorOptions`. The abandoned `hickory-recursor` crate is not used.
//!
//! The forwarder is hand-written because hickory's stub resolver brings a
//! cache and search-list logic of its own that a forwarder behind our cache
//! does not want: one question, RD set, to each server in turn, from a fresh
//! socket on a kernel-chosen random port with a random ID, accepting only a
//! reply from that server with that ID and that question (RFC 5452 §9.1),
//! retried over TCP when truncated (RFC 7766).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::recursor::{Recursor, RecursorError, RecursorOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cache::Upstreamed;
use crate::query::Ede;

/// Why an upstream gave no answer; each maps to an Extended DNS Error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("no server answered in time")]
    Timeout,
    #[error("network: {0}")]
    Network(String),
    #[error("limit reached: {0}")]
    Limit(String),
    #[error("{0}")]
    Other(String),
}

impl UpstreamError {
    /// RFC 8914 code and text for the client.
    pub fn ede(&self) -> Ede {
        let code = match self {
            UpstreamError::Timeout => Ede::NO_REACHABLE_AUTHORITY,
            UpstreamError::Network(_) => Ede::NETWORK_ERROR,
            UpstreamError::Limit(_) | UpstreamError::Other(_) => Ede::OTHER,
        };
        Ede::new(code, self.to_string())
    }
}

/// One question in, one answer (or a reason) out.
#[async_trait]
pub trait Upstream: Send + Sync {
    async fn resolve(&self, query: &Query) -> Result<Upstreamed, UpstreamError>;
}

/// Iteration from root server addresses with hickory's recursor.
pub struct Iterate {
    recursor: Recursor<TokioRuntimeProvider>,
}

/// Referral depth and NS-lookup depth (hickory's default is 24).
const RECURSION_LIMIT: u8 = 12;

impl Iterate {
    pub fn new(roots: &[IpAddr]) -> Result<Iterate, String> {
        let options = RecursorOptions {
            recursion_limit: RECURSION_LIMIT,
            ns_recursion_limit: RECURSION_LIMIT,
            // hickory refuses to query private and loopback addresses by
            // default; a lab's own root (`root_hints`) and the tests' fake
            // Internet live there, and the operator chose those hints.
            deny_server: Vec::new(),
            // hickory caches delegations and answers itself; labnet's
            // cache in front holds the answers clients see, so these stay
            // small.
            ns_cache_size: 4096,
            response_cache_size: 16_384,
            ..RecursorOptions::default()
        };
        let recursor = Recursor::with_options(roots, options, TokioRuntimeProvider::new())
            .map_err(|e| e.to_string())?;
        Ok(Iterate { recursor })
    }
}

#[async_trait]
impl Upstream for Iterate {
    async fn resolve(&self, query: &Query) -> Result<Upstreamed, UpstreamError> {
        match self
            .recursor
            .resolve(query.clone(), Instant::now(), false)
            .await
        {
            Ok(m) => Ok(Upstreamed {
                rcode: m.metadata.response_code,
                answers: m.answers,
                authorities: m.authorities,
                authentic: false,
            }),
            Err(RecursorError::Negative(neg)) => {
                let mut authorities: Vec<Record> = neg
                    .authorities
                    .as_ref()
                    .map(|a| a.to_vec())
                    .unwrap_or_default();
                if !authorities
                    .iter()
                    .any(|r| r.record_type() == hickory_proto::rr::RecordType::SOA)
                {
                    if let Some(soa) = &neg.soa {
                        authorities.push(soa.as_ref().clone().into_record_of_rdata());
                    }
                }
                Ok(Upstreamed {
                    rcode: if neg.is_nx_domain() {
                        ResponseCode::NXDomain
                    } else {
                        ResponseCode::NoError
                    },
                    answers: Vec::new(),
                    authorities,
                    authentic: false,
                })
            }
            Err(e @ RecursorError::Timeout) => Err(UpstreamError::Network(e.to_string())),
            Err(
                e @ (RecursorError::RecursionLimitExceeded { .. }
                | RecursorError::QueryBudgetExceeded
                | RecursorError::MaxRecordLimitExceeded { .. }),
            ) => Err(UpstreamError::Limit(e.to_string())),
            Err(e @ (RecursorError::Io(_) | RecursorError::Net(_))) => {
                Err(UpstreamError::Network(e.to_string()))
            }
            Err(e) => Err(UpstreamError::Other(e.to_string())),
        }
    }
}

/// Forwarding to recursive servers, tried in turn (starting with the next
/// one each time, so load spreads).
pub struct Forward {
    servers: Vec<SocketAddr>,
    next: AtomicUsize,
    /// How long to wait for each server.
    timeout: Duration,
}

/// EDNS payload size we ask for (DNS flag day 2020).
const EDNS_PAYLOAD: u16 = 1232;

impl Forward {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Forward {
        Forward {
            servers,
            next: AtomicUsize::new(0),
            timeout,
        }
    }

    fn message(query: &Query, id: u16) -> Result<Vec<u8>, UpstreamError> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(query.clone());
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(e);
        m.to_vec().map_err(|e| UpstreamError::Other(e.to_string()))
    }

    /// Whether `reply` answers `query` sent with `id` (RFC 5452 §9.1: ID,
    /// question name, type and class).
    fn matches(reply: &Message, id: u16, query: &Query) -> bool {
        reply.metadata.id == id
            && reply.metadata.message_type == MessageType::Response
            && reply.queries.len() == 1
            && reply.queries[0].name().to_lowercase() == query.name().to_lowercase()
            && reply.queries[0].query_type() == query.query_type()
            && reply.queries[0].query_class() == query.query_class()
    }

    async fn udp(&self, server: SocketAddr, query: &Query) -> Result<Message, UpstreamError> {
        let id: u16 = rand::random();
        let bytes = Self::message(query, id)?;
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let net = |e: std::io::Error| UpstreamError::Network(format!("{server}: {e}"));
        // A new socket per query: the kernel picks a random ephemeral port;
        // connect() makes it drop datagrams from any other address.
        let sock = tokio::net::UdpSocket::bind(bind).await.map_err(net)?;
        sock.connect(server).await.map_err(net)?;
        sock.send(&bytes).await.map_err(net)?;
        let mut buf = vec![0u8; 65535];
        let end = tokio::time::Instant::now() + self.timeout;
        loop {
            let n = match tokio::time::timeout_at(end, sock.recv(&mut buf)).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(r) => r.map_err(net)?,
            };
            match Message::from_vec(&buf[..n]) {
                Ok(m) if Self::matches(&m, id, query) => return Ok(m),
                Ok(_) | Err(_) => {
                    tracing::debug!(server = %server, "reply that does not match the query ignored");
                }
            }
        }
    }

    async fn tcp(&self, server: SocketAddr, query: &Query) -> Result<Message, UpstreamError> {
        let id: u16 = rand::random();
        let bytes = Self::message(query, id)?;
        let net = |e: std::io::Error| UpstreamError::Network(format!("{server} tcp: {e}"));
        let work = async {
            let mut s = tokio::net::TcpStream::connect(server).await.map_err(net)?;
            let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&bytes);
            s.write_all(&out).await.map_err(net)?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.map_err(net)?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).await.map_err(net)?;
            let m = Message::from_vec(&buf).map_err(|e| UpstreamError::Other(e.to_string()))?;
            if Self::matches(&m, id, query) {
                Ok(m)
            } else {
                Err(UpstreamError::Other(format!(
                    "{server}: mismatched TCP reply"
                )))
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }
}

#[async_trait]
impl Upstream for Forward {
    async fn resolve(&self, query: &Query) -> Result<Upstreamed, UpstreamError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = UpstreamError::Other("no forwarders".into());
        for i in 0..self.servers.len() {
            let server = self.servers[(start + i) % self.servers.len()];
            let reply = match self.udp(server, query).await {
                Ok(m) if m.metadata.truncation => self.tcp(server, query).await,
                other => other,
            };
            match reply {
                Ok(m)
                    if matches!(
                        m.metadata.response_code,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    return Ok(Upstreamed {
                        rcode: m.metadata.response_code,
                        authentic: m.metadata.authentic_data,
                        answers: m.answers,
                        authorities: m.authorities,
                    })
                }
                Ok(m) => {
                    tracing::debug!(server = %server, rcode = %m.metadata.response_code, "forwarder failed");
                    last = UpstreamError::Other(format!(
                        "forwarder {server} answered {}",
                        m.metadata.response_code
                    ));
                }
                Err(e) => {
                    tracing::debug!(server = %server, error = %e, "forwarder failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}
