//! Leases on PostgreSQL.

use std::net::Ipv4Addr;

use sqlx::{QueryBuilder, Row};

use super::{bump, PgStore};
use crate::{ip_from_db, ip_to_db, Lease, LeaseState, LeaseStore, Result, StoreError, Topic};

/// Rows per INSERT statement (7 parameters a row; PostgreSQL allows 65535).
const ROWS_PER_STATEMENT: usize = 1000;

fn lease_from_row(row: &sqlx::postgres::PgRow) -> Result<Lease> {
    let state: String = row.try_get("state")?;
    Ok(Lease {
        ip: ip_from_db(row.try_get("ip")?, "lease")?,
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
impl LeaseStore for PgStore {
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
        let mut tx = self.write().await?;
        for chunk in leases.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new(
                "INSERT INTO leases (ip, mac, client_id, hostname, state, starts, expires) ",
            );
            q.push_values(chunk, |mut b, l| {
                b.push_bind(ip_to_db(l.ip))
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
             WHERE state = 'bound' AND expires > $1 ORDER BY ip",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease_from_row).collect()
    }

    async fn release_lease(&self, ip: Ipv4Addr, now: i64) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE leases SET state = 'released', expires = $1 WHERE ip = $2 AND state = 'bound'",
        )
        .bind(now)
        .bind(ip_to_db(ip))
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
