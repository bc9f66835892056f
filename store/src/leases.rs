//! DHCP leases.

use std::net::Ipv4Addr;

use serde::Serialize;
use sqlx::{QueryBuilder, Row};

use crate::sqlite::{bump, SqliteStore};
use crate::{Result, StoreError, Topic};

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

    fn parse(s: &str) -> Option<LeaseState> {
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

/// Rows per INSERT statement: SQLite allows 32766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;

fn lease_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Lease> {
    let ip: String = row.try_get("ip")?;
    let state: String = row.try_get("state")?;
    Ok(Lease {
        ip: ip
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("lease ip `{ip}`")))?,
        mac: row.try_get("mac")?,
        client_id: row.try_get("client_id")?,
        hostname: row.try_get("hostname")?,
        state: LeaseState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("lease state `{state}`")))?,
        starts: row.try_get("starts")?,
        expires: row.try_get("expires")?,
    })
}

#[async_trait::async_trait]
impl LeaseStore for SqliteStore {
    async fn load_leases(&self) -> Result<Vec<Lease>> {
        let rows =
            sqlx::query("SELECT ip, mac, client_id, hostname, state, starts, expires FROM leases")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(lease_from_row).collect()
    }

    async fn commit_leases(&self, leases: &[Lease]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.lock().await;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for chunk in leases.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new(
                "INSERT INTO leases (ip, mac, client_id, hostname, state, starts, expires) ",
            );
            q.push_values(chunk, |mut b, l| {
                b.push_bind(l.ip.to_string())
                    .push_bind(&l.mac)
                    .push_bind(&l.client_id)
                    .push_bind(&l.hostname)
                    .push_bind(l.state.as_str())
                    .push_bind(l.starts)
                    .push_bind(l.expires);
            });
            q.push(
                " ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, client_id = excluded.client_id, \
                 hostname = excluded.hostname, state = excluded.state, starts = excluded.starts, \
                 expires = excluded.expires",
            );
            q.build().execute(&mut *tx).await?;
        }
        bump(&mut tx, Topic::Leases).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn active_leases(&self, now: i64) -> Result<Vec<Lease>> {
        let rows = sqlx::query(
            "SELECT ip, mac, client_id, hostname, state, starts, expires FROM leases \
             WHERE state = 'bound' AND expires > ? ORDER BY ip",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease_from_row).collect()
    }

    async fn release_lease(&self, ip: Ipv4Addr, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE leases SET state = 'released', expires = ? WHERE ip = ? AND state = 'bound'",
        )
        .bind(now)
        .bind(ip.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Leases).await?;
            bump(&mut tx, Topic::LeaseAdmin).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
