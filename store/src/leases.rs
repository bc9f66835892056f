//! DHCP leases.

use std::net::Ipv4Addr;

use crate::Result;
use serde::Serialize;

/// Where a lease stands (RFC 2131 §4.3: an address is bound to a client, or
/// free again after release or expiry, or set aside after a DECLINE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    Bound,
    Released,
    Expired,
    Declined,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Expired => "expired",
            LeaseState::Declined => "declined",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<LeaseState> {
        Some(match s {
            "bound" => LeaseState::Bound,
            "released" => LeaseState::Released,
            "expired" => LeaseState::Expired,
            "declined" => LeaseState::Declined,
            _ => return None,
        })
    }
}

/// One address and who holds (or last held) it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// Client hardware address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Option 61, when the client sent one.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_opt")]
    pub client_id: Option<Vec<u8>>,
    pub hostname: Option<String>,
    pub state: LeaseState,
    /// Unix seconds.
    pub starts: i64,
    /// Unix seconds; for a declined address, the end of its probation.
    pub expires: i64,
}

impl Lease {
    /// Bound and not yet expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.state == LeaseState::Bound && self.expires > now
    }
}

fn hex_opt<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&crate::format_mac(b)),
        None => s.serialize_none(),
    }
}

/// Lease operations.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// Every lease row, whatever its state (dhcpd loads these at start).
    async fn load_leases(&self) -> Result<Vec<Lease>>;
    /// Write a batch of leases in one transaction; when this returns `Ok`,
    /// every one of them is durable.
    async fn commit_leases(&self, leases: &[Lease]) -> Result<()>;
    /// Bound leases that have not expired at `now`.
    async fn active_leases(&self, now: i64) -> Result<Vec<Lease>>;
    /// An admin frees an address: the lease becomes `released` now. Returns
    /// false when there was no bound lease on `ip`.
    async fn release_lease(&self, ip: Ipv4Addr, now: i64) -> Result<bool>;
}
