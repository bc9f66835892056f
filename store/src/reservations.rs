//! Reservations: a fixed address (and hostname, boot profile) for a client
//! known by hardware address or client identifier.

use std::net::Ipv4Addr;

use serde::Serialize;
use sqlx::Row;

use crate::sqlite::{bump, unique, SqliteStore};
use crate::{Result, StoreError, Topic};

/// How a reserved client is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationKey {
    /// `aa:bb:cc:dd:ee:ff`
    Mac(String),
    /// Option 61 bytes.
    ClientId(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub key: ReservationKey,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// Boot profile assigned to this host (labnet-pxe).
    pub profile: Option<String>,
}

#[async_trait::async_trait]
pub trait ReservationStore: Send + Sync {
    async fn reservations(&self) -> Result<Vec<Reservation>>;
    /// Add a reservation; a clash on key or address is a [`StoreError::Conflict`].
    async fn add_reservation(&self, r: &Reservation) -> Result<()>;
    /// Remove the reservation with this key; false if there was none.
    async fn remove_reservation(&self, key: &ReservationKey) -> Result<bool>;
}

#[async_trait::async_trait]
impl ReservationStore for SqliteStore {
    async fn reservations(&self) -> Result<Vec<Reservation>> {
        let rows = sqlx::query(
            "SELECT mac, client_id, ip, hostname, profile FROM reservations ORDER BY ip",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let mac: Option<String> = row.try_get("mac")?;
                let cid: Option<Vec<u8>> = row.try_get("client_id")?;
                let ip: String = row.try_get("ip")?;
                let key = match (mac, cid) {
                    (_, Some(c)) => ReservationKey::ClientId(c),
                    (Some(m), None) => ReservationKey::Mac(m),
                    (None, None) => {
                        return Err(StoreError::Corrupt("reservation without key".into()))
                    }
                };
                Ok(Reservation {
                    key,
                    ip: ip
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("reservation ip `{ip}`")))?,
                    hostname: row.try_get("hostname")?,
                    profile: row.try_get("profile")?,
                })
            })
            .collect()
    }

    async fn add_reservation(&self, r: &Reservation) -> Result<()> {
        let (mac, cid) = match &r.key {
            ReservationKey::Mac(m) => (Some(m.to_ascii_lowercase()), None),
            ReservationKey::ClientId(c) => (None, Some(c.clone())),
        };
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT INTO reservations (mac, client_id, ip, hostname, profile) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(mac)
        .bind(cid)
        .bind(r.ip.to_string())
        .bind(&r.hostname)
        .bind(&r.profile)
        .execute(&mut *tx)
        .await;
        unique(res, || {
            format!("a reservation for this client or for {}", r.ip)
        })?;
        bump(&mut tx, Topic::Reservations).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_reservation(&self, key: &ReservationKey) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let q = match key {
            ReservationKey::Mac(m) => {
                sqlx::query("DELETE FROM reservations WHERE mac = ?").bind(m.to_ascii_lowercase())
            }
            ReservationKey::ClientId(c) => {
                sqlx::query("DELETE FROM reservations WHERE client_id = ?").bind(c.clone())
            }
        };
        let n = q.execute(&mut *tx).await?.rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Reservations).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
