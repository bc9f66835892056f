//! `labnet-store`: the one store labnet's daemons and `labnetctl` share.
//!
//! The daemons see it only through the traits here ([`LeaseStore`],
//! [`ReservationStore`], [`ZoneStore`], [`ProfileStore`], [`GslbStore`], gathered in
//! [`Store`]) and [`open`], which picks the backend from the URL:
//!
//! - `sqlite:///path/labnet.db` → [`SqliteStore`] (`src/sqlite/`): one file
//!   in WAL mode with a busy timeout, so the daemons and the CLI on one
//!   machine use it at once;
//! - `postgres://user:pass@host/db` (or `postgresql://`, the libpq URL forms,
//!   `?host=/socket/dir`, `?sslmode=`) → [`PgStore`] (`src/postgres/`), which
//!   several machines share.
//!
//! Each backend folder holds its SQL and its migrations; the row types here
//! ([`Lease`], [`Reservation`], ...) hold no backend's types. Addresses are
//! stored as integers (the address as an unsigned 32-bit number), which sort
//! and range in address order on both backends.
//!
//! How a change made by one process reaches the others: every write bumps a
//! per-topic counter ([`Topic`]) in the same transaction; [`watch`] follows
//! the counters of the topics a daemon cares about and says which moved. On
//! PostgreSQL the writer also sends a NOTIFY, so watchers wake at once;
//! polling stays as the fallback. Hot paths never wait on the store: dhcpd
//! keeps its lease table in memory and writes through in batches, dnsd
//! answers from an in-memory view.
//!
//! Durability: SQLite runs `synchronous = FULL` in WAL mode and PostgreSQL
//! commits synchronously, so a committed lease survives a power cut, not
//! only `kill -9`; writers batch to pay one flush per batch.

mod error;
mod gslb;
mod leases;
mod names;
mod postgres;
mod profiles;
mod reservations;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod watch;
mod zones;

use std::sync::Arc;

pub use error::StoreError;
pub use gslb::{
    GslbData, GslbHealth, GslbMap, GslbMember, GslbPool, GslbPrefix, GslbRegion, GslbStore,
    WhenAllDown,
};
pub use leases::{Lease, LeaseState, LeaseStore};
pub use names::{
    admin_names, clean_label, fqdn, lease_label, lease_names, synthesized_ns, LeaseName,
    NameRefusal,
};
pub use postgres::PgStore;
pub use profiles::{Assignment, BootProfile, HostProfile, ProfileStore};
pub use reservations::{Reservation, ReservationKey, ReservationStore};
pub use sqlite::SqliteStore;
pub use watch::{watch, Current, Watch};
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
    /// GSLB maps, regions, pools and members (dnsd rebuilds its GSLB table).
    Gslb,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 6] = [
        Topic::Leases,
        Topic::LeaseAdmin,
        Topic::Reservations,
        Topic::Zones,
        Topic::Profiles,
        Topic::Gslb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Leases => "leases",
            Topic::LeaseAdmin => "lease_admin",
            Topic::Reservations => "reservations",
            Topic::Zones => "zones",
            Topic::Profiles => "profiles",
            Topic::Gslb => "gslb",
        }
    }
}

/// Everything a daemon needs from the store.
#[async_trait::async_trait]
pub trait Store:
    LeaseStore + ReservationStore + ZoneStore + ProfileStore + GslbStore + Send + Sync
{
    /// The counter for `topic`; it moves whenever data under it changes.
    async fn generation(&self, topic: Topic) -> Result<i64>;
    /// Topics other processes announce as they write them, when the backend
    /// can push (PostgreSQL's NOTIFY); `None` when only polling tells.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Topic>> {
        None
    }
    /// Whether processes on other machines may write leases here (several
    /// dhcpd nodes): then each dhcpd follows the others' leases.
    fn shared(&self) -> bool {
        false
    }
}

/// Open the store a config's `[store] url` names, creating and migrating it
/// if needed (on PostgreSQL, the database is created when the server has
/// none of that name and the user may create one).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if is_postgres_url(url) {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Ok(Arc::new(open_sqlite(url).await?))
    }
}

/// Does `url` name a PostgreSQL store?
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Open an SQLite store from a `sqlite://` URL.
pub async fn open_sqlite(url: &str) -> Result<SqliteStore> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    SqliteStore::open(std::path::Path::new(path)).await
}

/// An address as both backends store it.
pub(crate) fn ip_to_db(ip: std::net::Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

/// An address read back; `what` names the table for the error.
pub(crate) fn ip_from_db(v: i64, what: &str) -> Result<std::net::Ipv4Addr> {
    u32::try_from(v)
        .map(std::net::Ipv4Addr::from)
        .map_err(|_| StoreError::Corrupt(format!("{what} address {v}")))
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
