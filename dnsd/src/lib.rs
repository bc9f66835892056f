//! `labnet-dnsd`: labnet's DNS server. It is authoritative for the zones and
//! records in the shared store and for the names of DHCP clients
//! (`<hostname>.<lease_zone>` A records and their PTRs, made live from the
//! leases dhcpd writes), and a recursive resolver for the clients in
//! `recursion_allowed`.
//!
//! How a query flows:
//!
//! ```text
//! UDP/TCP socket (server) ─▶ handler::handle(bytes, src, transport, &View, &Pipeline, now)
//!   │ reply cache: pre-encoded local answer for (qname, qtype), ID / RD / RA /
//!   │              question case / OPT patched in ─────────────────────────▶ socket
//!   │ decode once (hickory-proto) → filter (opcode, counts, class, EDNS
//!   │ version; AXFR/IXFR go to handler::transfer) → query::QueryCtx
//!   ▼
//! pipeline::Pipeline: local zones (zone::Catalog) ─Continue, or Chase of a
//!   CNAME into a pool─▶ gslb::Gslb (pool → CNAME by the client's ISP,
//!   level-2 name → nearest healthy members; client = ECS address or source;
//!   ECS echoed with SCOPE) ─Continue─▶ recursion::Recursion (ACL, RFC 6303,
//!   cache, forwarders, iteration, DNSSEC validation in recursion::dnssec)
//!   ─Continue─▶ REFUSED
//!   │ polled once on the socket thread: local names and cache hits are
//!   │ answered there; a query that must wait for upstream servers becomes a
//!   │ tokio task that sends its reply when the pipeline ends
//!   ▼
//! QueryCtx::reply: encode within the client's size (TC if it won't fit)
//!   │ UDP, client outside recursion_allowed: rrl::Rrl (send / slip TC=1 /
//!   ▼ drop, per client prefix and answer)
//! socket
//! ```
//!
//! The core ([`handler`], [`query`], [`pipeline`], [`zone`], [`view`], the
//! recursion cache) does no I/O. The sockets and the reloader live in
//! [`server`]: the hot path reads an in-memory [`handler::View`] behind an
//! `Arc` that is swapped whole when the store's watcher reports that
//! `Topic::Zones`, `Topic::Leases` or `Topic::Reservations` moved (at once on
//! PostgreSQL, within 250 ms on SQLite) or a lease runs out, so no query ever
//! waits on the store (`Topic::Gslb` rebuilds the GSLB table; member health
//! is probed by `gslb::health` and read at answer time). When a zone's
//! serial moves, its secondaries get a NOTIFY (RFC 1996) and may AXFR it
//! over TCP. [`limits`] holds the TCP side's caps and [`rrl`] the UDP
//! side's response rate limiting (clients outside `recursion_allowed`); the
//! socket loops count every reply by RCODE ([`metrics`]).

/// What `labnet-dnsd --help` and its man page say the daemon is.
pub const ABOUT: &str = "labnet's DNS server";

pub mod gslb;
pub mod handler;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod recursion;
pub mod rrl;
pub mod server;
pub mod view;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;

use labnet_config::Config;
use labnet_store::Store;
use tokio_util::sync::CancellationToken;

pub use server::Server;

/// Why labnet-dnsd stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error(transparent)]
    Config(#[from] labnet_config::ConfigError),
    #[error(transparent)]
    Store(#[from] labnet_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Zone(String),
    #[error(transparent)]
    Recursion(#[from] recursion::RecursionError),
}

/// Serve DNS from `store` as `config` says until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<(), DnsError> {
    Server::new(config, store).run(shutdown).await
}

#[cfg(test)]
mod tests;
