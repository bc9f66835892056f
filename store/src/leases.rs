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
    /// every lease written is durable.
    ///
    /// Each lease is a claim (see [`CLAIM`]): it is written only when the
    /// store does not show its address held by another client, so nodes
    /// sharing one store never commit one address to two clients. Returns
    /// the store's rows for the addresses whose claim was refused (their
    /// holders); the caller must not acknowledge those leases. When a batch
    /// holds several rows for one address, the last one counts.
    async fn commit_leases(&self, leases: &[Lease]) -> Result<Vec<Lease>>;
    /// Leases written since the write numbered `seq` (0: all), and the
    /// number of the latest write among them (`seq` when there are none).
    /// Nodes sharing a store follow one another's leases with this.
    async fn leases_since(&self, seq: i64) -> Result<(Vec<Lease>, i64)>;
    /// Bound leases that have not expired at `now`.
    async fn active_leases(&self, now: i64) -> Result<Vec<Lease>>;
    /// An admin frees an address: the lease becomes `released` now. Returns
    /// false when there was no bound lease on `ip`.
    async fn release_lease(&self, ip: Ipv4Addr, now: i64) -> Result<bool>;
}

/// The conditional write behind [`LeaseStore::commit_leases`], the same SQL
/// on both backends (an upsert whose update only happens when the stored
/// row allows it; `RETURNING` names the rows written).
///
/// The stored row blocks the write while it is held, i.e. bound or declined
/// and not expired at the new lease's `starts`, by another client. "Another
/// client" follows dhcpd's rule (`Client::owns`): client identifiers decide
/// when both rows have one, else the hardware address. On PostgreSQL the
/// upsert locks the conflicting row and evaluates the condition on its
/// latest committed version, so two nodes claiming one address at once
/// serialise and the second is refused; on SQLite writers are serialised
/// by the write lock already.
pub(crate) const CLAIM: &str = " ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, \
    client_id = excluded.client_id, hostname = excluded.hostname, state = excluded.state, \
    starts = excluded.starts, expires = excluded.expires, seq = excluded.seq \
    WHERE leases.state NOT IN ('bound', 'declined') OR leases.expires <= excluded.starts \
    OR CASE WHEN leases.client_id IS NOT NULL AND excluded.client_id IS NOT NULL \
    THEN leases.client_id = excluded.client_id ELSE leases.mac = excluded.mac END \
    RETURNING ip";

/// The last row for each address, in first-seen order (an upsert may not
/// touch one row twice in one statement).
pub(crate) fn last_per_address(leases: &[Lease]) -> Vec<Lease> {
    let mut at = std::collections::HashMap::with_capacity(leases.len());
    let mut out: Vec<Lease> = Vec::with_capacity(leases.len());
    for l in leases {
        match at.get(&l.ip) {
            Some(&i) => out[i] = l.clone(),
            None => {
                at.insert(l.ip, out.len());
                out.push(l.clone());
            }
        }
    }
    out
}
