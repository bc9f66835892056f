//! `labnet-dhcpd`: labnet's DHCPv4 server (RFC 2131/2132).
//!
//! How a request flows, and where to read:
//! - [`server`]: a socket per interface receives a packet; [`wire::decode`]
//!   checks its framing and decodes it with `dhcproto`; malformed, oversized
//!   or foreign packets are dropped there.
//! - [`core::Dhcp::handle`]: the pure protocol core picks the subnet (by
//!   interface, or for relayed packets by giaddr / option 118 / option 82
//!   sub-option 5), and answers DISCOVER, REQUEST (SELECTING, INIT-REBOOT,
//!   RENEWING, REBINDING), RELEASE, DECLINE and INFORM with an
//!   [`core::Action`].
//! - [`leases::LeaseTable`]: the in-memory lease table the core allocates
//!   from (reservations, returning clients, pools, probation).
//! - [`options`]: what a subnet's replies carry.
//! - Back in [`server`]: OFFERs may wait for a ping check ([`ping`]); ACKs go
//!   to the committer, which writes leases to the store in batches and sends
//!   each ACK only after its lease has been committed.
//! - [`pxe`]: for network-boot clients, labnet-pxe's boot decision goes
//!   into every reply (`siaddr`, `file`, options 60/66/67).
//! - [`metrics`]: packets by type and outcome, pool usage, commit batches,
//!   recorded on the way through [`server`].

/// What `labnet-dhcpd --help` and its man page say the daemon is.
pub const ABOUT: &str = "labnet's DHCPv4 server";

pub mod core;
pub mod leases;
pub mod metrics;
pub mod options;
pub mod ping;
pub mod pxe;
pub mod server;
pub mod wire;

use std::sync::Arc;

use labnet_config::DhcpConfig;
use labnet_store::Store;
use tokio_util::sync::CancellationToken;

pub use server::{Reconfigure, Server};

/// Why the DHCP server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhcpError {
    #[error("interface {interface}: {reason}")]
    Interface { interface: String, reason: String },
    #[error("interface {interface}: cannot open the DHCP socket: {source}")]
    Socket {
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] labnet_store::StoreError),
    #[error(transparent)]
    Pxe(#[from] labnet_pxe::PxeError),
}

/// Bind and serve until `shutdown` is cancelled.
pub async fn run(
    cfg: &DhcpConfig,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    Server::bind(cfg, store).await?.run(shutdown).await
}

#[cfg(test)]
mod tests;
