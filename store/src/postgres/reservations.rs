//! Reservations on PostgreSQL.

use sqlx::Row;

use super::{bump, PgStore};
use crate::error::unique;
use crate::{
    ip_from_db, ip_to_db, Reservation, ReservationKey, ReservationStore, Result, StoreError, Topic,
};

#[async_trait::async_trait]
impl ReservationStore for PgStore {
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
                let key = match (mac, cid) {
                    (_, Some(c)) => ReservationKey::ClientId(c),
                    (Some(m), None) => ReservationKey::Mac(m),
                    (None, None) => {
                        return Err(StoreError::Corrupt("reservation without key".into()))
                    }
                };
                Ok(Reservation {
                    key,
                    ip: ip_from_db(row.try_get("ip")?, "reservation")?,
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
        let mut tx = self.write().await?;
        let res = sqlx::query(
            "INSERT INTO reservations (mac, client_id, ip, hostname, profile) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(mac)
        .bind(cid)
        .bind(ip_to_db(r.ip))
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
        let mut tx = self.write().await?;
        let q = match key {
            ReservationKey::Mac(m) => {
                sqlx::query("DELETE FROM reservations WHERE mac = $1").bind(m.to_ascii_lowercase())
            }
            ReservationKey::ClientId(c) => {
                sqlx::query("DELETE FROM reservations WHERE client_id = $1").bind(c.clone())
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
