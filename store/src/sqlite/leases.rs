//! Leases on SQLite.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use sqlx::{QueryBuilder, Row};

use super::{bump, SqliteStore};
use crate::leases::{last_per_address, CLAIM};
use crate::{ip_from_db, ip_to_db, Lease, LeaseState, LeaseStore, Result, StoreError, Topic};

/// Rows per INSERT statement: SQLite allows 32766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;

fn lease_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Lease> {
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
impl LeaseStore for SqliteStore {
    async fn load_leases(&self) -> Result<Vec<Lease>> {
        let rows =
            sqlx::query("SELECT ip, mac, client_id, hostname, state, starts, expires FROM leases")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(lease_from_row).collect()
    }

    async fn commit_leases(&self, leases: &[Lease]) -> Result<Vec<Lease>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let leases = last_per_address(leases);
        let mut conn = self.writer.lock().await;
        self.check_identity()?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, super::BEGIN_WRITE).await?;
        // Bump first: the new generation marks every row this write
        // touches, and holding the counter's row lock serialises writers,
        // so rows become visible in `seq` order.
        let seq = bump_returning(&mut tx).await?;
        let mut written = HashSet::with_capacity(leases.len());
        for chunk in leases.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new(
                "INSERT INTO leases (ip, mac, client_id, hostname, state, starts, expires, seq) ",
            );
            q.push_values(chunk, |mut b, l| {
                b.push_bind(ip_to_db(l.ip))
                    .push_bind(&l.mac)
                    .push_bind(&l.client_id)
                    .push_bind(&l.hostname)
                    .push_bind(l.state.as_str())
                    .push_bind(l.starts)
                    .push_bind(l.expires)
                    .push_bind(seq);
            });
            q.push(CLAIM);
            let ips: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?;
            written.extend(ips);
        }
        let refused: Vec<i64> = leases
            .iter()
            .map(|l| ip_to_db(l.ip))
            .filter(|ip| !written.contains(ip))
            .collect();
        let mut holders = Vec::new();
        if !refused.is_empty() {
            let mut q = QueryBuilder::new(
                "SELECT ip, mac, client_id, hostname, state, starts, expires FROM leases WHERE ip IN (",
            );
            let mut list = q.separated(", ");
            for ip in &refused {
                list.push_bind(*ip);
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await? {
                holders.push(lease_from_row(&row)?);
            }
        }
        tx.commit().await?;
        Ok(holders)
    }

    async fn leases_since(&self, seq: i64) -> Result<(Vec<Lease>, i64)> {
        let rows = sqlx::query(
            "SELECT ip, mac, client_id, hostname, state, starts, expires, seq FROM leases \
             WHERE seq > ?",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        let mut last = seq;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            last = last.max(row.try_get("seq")?);
            out.push(lease_from_row(row)?);
        }
        Ok((out, last))
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
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE leases SET state = 'released', expires = ? WHERE ip = ? AND state = 'bound'",
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

/// Bump the `leases` counter and return its new value.
async fn bump_returning(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<i64> {
    let gen: i64 = sqlx::query_scalar(
        "UPDATE generations SET gen = gen + 1 WHERE topic = 'leases' RETURNING gen",
    )
    .fetch_one(&mut **tx)
    .await?;

    Ok(gen)
}
