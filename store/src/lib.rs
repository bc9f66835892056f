//! `labnet-store`: the one store labnet's daemons and `labnetctl` share.
//!
//! The daemons see it only through the traits here ([`LeaseStore`],
//! [`ReservationStore`], [`ZoneStore`], gathered in [`Store`]); [`SqliteStore`] implements
//! them on one SQLite file in WAL mode with a busy timeout, so three daemons
//! and the CLI can use it at once. A PostgreSQL backend implements the same
//! traits without the daemons changing.
//!
//! How a change made by one process reaches the others: every write bumps a
//! per-topic counter ([`Topic`]) in the same transaction; daemons poll
//! [`Store::generation`] (a one-row read) and reload what moved. Hot paths
//! never wait on the store: dhcpd keeps its lease table in memory and writes
//! through in batches, dnsd answers from an in-memory view.
//!
//! Durability: `synchronous = FULL` in WAL mode, so a committed lease survives
//! a power cut, not only `kill -9`; writers batch to pay one fsync per batch.

mod error;
mod leases;
mod names;
mod profiles;
mod reservations;
mod sqlite;
mod zones;

use std::sync::Arc;

pub use error::StoreError;
pub use leases::{Lease, LeaseState, LeaseStore};
pub use names::{
    admin_names, fqdn, lease_label, lease_names, synthesized_ns, LeaseName, NameRefusal,
};
pub use profiles::{Assignment, BootProfile, HostProfile, ProfileStore};
pub use reservations::{Reservation, ReservationKey, ReservationStore};
pub use sqlite::SqliteStore;
pub use zones::{serial_newer, NewRecord, Zone, ZoneRecord, ZoneStore};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a generation counter covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Topic {
    /// Any lease write (dnsd follows it for lease names).
    Leases,
    /// Lease writes made by an admin (`labnetctl leases release`): dhcpd,
    /// which owns the lease table, reloads only on these.
    LeaseAdmin,
    Reservations,
    /// Zones and records (dnsd reloads its view).
    Zones,
    /// Boot profiles and host→profile assignments without a reservation.
    Profiles,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Leases => "leases",
            Topic::LeaseAdmin => "lease_admin",
            Topic::Reservations => "reservations",
            Topic::Zones => "zones",
            Topic::Profiles => "profiles",
        }
    }
}

/// Everything a daemon needs from the store.
#[async_trait::async_trait]
pub trait Store: LeaseStore + ReservationStore + ZoneStore + ProfileStore + Send + Sync {
    /// The counter for `topic`; it moves whenever data under it changes.
    async fn generation(&self, topic: Topic) -> Result<i64>;
}

/// Open the store a config's `[store] url` names, creating and migrating it
/// if needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(open_sqlite(url).await?))
}

/// Open an SQLite store from a `sqlite://` URL.
pub async fn open_sqlite(url: &str) -> Result<SqliteStore> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    SqliteStore::open(std::path::Path::new(path)).await
}

/// Seconds since the Unix epoch, the store's unit of time.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `aa:bb:cc:dd:ee:ff` for a hardware address.
pub fn format_mac(mac: &[u8]) -> String {
    let mut s = String::with_capacity(mac.len() * 3);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parse `aa:bb:cc:dd:ee:ff` (or with `-`) into bytes.
pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() < 2 || parts.len() > 16 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            if p.len() == 2 {
                u8::from_str_radix(p, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
