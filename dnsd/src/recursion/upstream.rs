//! Where answers come from when the cache has none, behind one trait
//! ([`Upstream`]) so that labnet's cache, limits and coalescing stay in
//! front whatever resolves: iteration from the root (`iterate`) or
//! forwarding to recursive servers ([`Forward`]). Both use [`exchange`].
//!
//! The forwarder is hand-written because hickory's stub resolver brings a
//! cache and search-list logic of its own that a forwarder behind our cache
//! does not want: one question, RD set, to each server in turn (the next one
//! first each time, so load spreads).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
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
}

/// One question to one server: a fresh socket on a kernel-chosen random
/// port, connected to the server (the kernel drops datagrams from anyone
/// else), a random ID, and only a reply with that ID and that question is
/// taken (RFC 5452 §9.1); a truncated reply is asked again over TCP (RFC
/// 7766). EDNS0 with a 1232-byte payload (DNS flag day 2020); DO set
/// when validating (RFC 4035 §4.1), so RRSIGs and NSEC/NSEC3 come along.
pub async fn exchange(
    server: SocketAddr,
    query: &Query,
    rd: bool,
    dnssec_ok: bool,
    timeout: Duration,
) -> Result<Message, UpstreamError> {
    let m = udp(server, query, rd, dnssec_ok, timeout).await?;
    if m.metadata.truncation {
        return tcp(server, query, rd, dnssec_ok, timeout).await;
    }
    Ok(m)
}

fn message(query: &Query, id: u16, rd: bool, dnssec_ok: bool) -> Result<Vec<u8>, UpstreamError> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.add_query(query.clone());
    let mut e = Edns::new();
    e.set_max_payload(EDNS_PAYLOAD);
    e.set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    m.to_vec().map_err(|e| UpstreamError::Other(e.to_string()))
}

/// Whether `reply` answers `query` sent with `id`.
fn matches(reply: &Message, id: u16, query: &Query) -> bool {
    reply.metadata.id == id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries.len() == 1
        && reply.queries[0].name().to_lowercase() == query.name().to_lowercase()
        && reply.queries[0].query_type() == query.query_type()
        && reply.queries[0].query_class() == query.query_class()
}

async fn udp(
    server: SocketAddr,
    query: &Query,
    rd: bool,
    dnssec_ok: bool,
    timeout: Duration,
) -> Result<Message, UpstreamError> {
    let id: u16 = rand::random();
    let bytes = message(query, id, rd, dnssec_ok)?;
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let net = |e: std::io::Error| UpstreamError::Network(format!("{server}: {e}"));
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(net)?;
    sock.connect(server).await.map_err(net)?;
    sock.send(&bytes).await.map_err(net)?;
    let mut buf = vec![0u8; 65535];
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let n = match tokio::time::timeout_at(end, sock.recv(&mut buf)).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(r) => r.map_err(net)?,
        };
        match Message::from_vec(&buf[..n]) {
            Ok(m) if matches(&m, id, query) => return Ok(m),
            Ok(_) | Err(_) => {
                tracing::debug!(server = %server, "reply that does not match the query ignored");
            }
        }
    }
}

async fn tcp(
    server: SocketAddr,
    query: &Query,
    rd: bool,
    dnssec_ok: bool,
    timeout: Duration,
) -> Result<Message, UpstreamError> {
    let id: u16 = rand::random();
    let bytes = message(query, id, rd, dnssec_ok)?;
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
        if matches(&m, id, query) {
            Ok(m)
        } else {
            Err(UpstreamError::Other(format!(
                "{server}: mismatched TCP reply"
            )))
        }
    };
    // TCP gets twice the UDP patience: a handshake and a longer reply.
    tokio::time::timeout(timeout * 2, work)
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

#[async_trait]
impl Upstream for Forward {
    async fn resolve(&self, query: &Query) -> Result<Upstreamed, UpstreamError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = UpstreamError::Other("no forwarders".into());
        for i in 0..self.servers.len() {
            let server = self.servers[(start + i) % self.servers.len()];
            // No validation behind forwarders (yet): no DO either.
            let reply = exchange(server, query, true, false, self.timeout).await;
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
                        bogus: None,
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
