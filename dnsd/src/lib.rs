//! `labnet-dnsd`: labnet's DNS server. Part 1 owns the authoritative side:
//! the zones and records in the shared store, and the names of DHCP clients
//! (`<hostname>.<lease_zone>` A records and their PTRs) made live from the
//! leases dhcpd writes.
//!
//! How a query flows:
//!
//! ```text
//! UDP/TCP socket ─▶ handler::handle(bytes, src, transport, &View) ─▶ socket
//!                      │ fast path: pre-encoded reply for (qname, qtype),
//!                      │            ID / RD / question case / OPT patched in
//!                      │ full path: decode (hickory-proto) → filter (opcode,
//!                      │   counts, class, EDNS version) → handler chain →
//!                      │   encode within the client's size (TC if it won't fit)
//!                      ▼
//!                   handler chain: local zones (zone::Catalog) ─Continue─▶
//!                   [GSLB] ─Continue─▶ [recursion] ─Continue─▶ REFUSED
//! ```
//!
//! The chain works like hickory's catalog and `LookupControlFlow`: each
//! link returns `Flow::Break(answer)` or `Flow::Continue`; GSLB and recursion
//! (later issues) are further links. The core ([`handler`], [`zone`],
//! [`view`]) does no I/O. The sockets and the reloader live in [`server`]:
//! the hot path reads an in-memory [`handler::View`] behind an `Arc` that is
//! swapped whole when the store's watcher reports that `Topic::Zones`,
//! `Topic::Leases` or `Topic::Reservations` moved (at once on PostgreSQL,
//! within 250 ms on SQLite) or a lease runs out, so no query ever waits on
//! the store. When a zone's serial moves, its secondaries get a NOTIFY
//! (RFC 1996) and may AXFR it over TCP.

pub mod handler;
pub mod limits;
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
