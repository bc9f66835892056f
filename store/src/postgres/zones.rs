//! Zones and records on PostgreSQL.

use sqlx::Row;

use super::{bump, PgStore};
use crate::zones::serial_from_db;
use crate::{serial_newer, NewRecord, Result, StoreError, Topic, Zone, ZoneRecord, ZoneStore};

async fn zone_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    zone: &str,
) -> Result<Option<(i64, u32)>> {
    let row = sqlx::query("SELECT id, serial FROM zones WHERE name = $1 FOR UPDATE")
        .bind(zone)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("id")?, serial_from_db(r.try_get("serial")?))),
        None => None,
    })
}

async fn set_serial(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
    serial: u32,
) -> Result<()> {
    sqlx::query("UPDATE zones SET serial = $1 WHERE id = $2")
        .bind(i64::from(serial))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_record(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    zone_id: i64,
    r: &NewRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO records (zone_id, name, rtype, ttl, rdata, wire) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(zone_id)
    .bind(&r.name)
    .bind(&r.rtype)
    .bind(i64::from(r.ttl))
    .bind(&r.rdata)
    .bind(&r.wire)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl ZoneStore for PgStore {
    async fn zones(&self) -> Result<Vec<Zone>> {
        let rows = sqlx::query(
            "SELECT z.name, z.serial, (SELECT count(*) FROM records r WHERE r.zone_id = z.id) AS n \
             FROM zones z ORDER BY z.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Zone {
                    name: r.try_get("name")?,
                    serial: serial_from_db(r.try_get("serial")?),
                    records: r.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }

    async fn import_zone(&self, zone: &str, serial: u32, records: &[NewRecord]) -> Result<Zone> {
        let mut tx = self.write().await?;
        let new_serial = match zone_id(&mut tx, zone).await? {
            Some((id, old)) => {
                sqlx::query("DELETE FROM records WHERE zone_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let s = if serial_newer(serial, old) {
                    serial
                } else {
                    old.wrapping_add(1)
                };
                set_serial(&mut tx, id, s).await?;
                (id, s)
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO zones (name, serial) VALUES ($1, $2) RETURNING id",
                )
                .bind(zone)
                .bind(i64::from(serial))
                .fetch_one(&mut *tx)
                .await?;
                (id, serial)
            }
        };
        for r in records {
            insert_record(&mut tx, new_serial.0, r).await?;
        }
        bump(&mut tx, Topic::Zones).await?;
        tx.commit().await?;
        Ok(Zone {
            name: zone.to_owned(),
            serial: new_serial.1,
            records: records.len() as u64,
        })
    }

    async fn remove_zone(&self, zone: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query("DELETE FROM zones WHERE name = $1")
            .bind(zone)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Zones).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn add_record(&self, zone: &str, record: &NewRecord) -> Result<u32> {
        let mut tx = self.write().await?;
        let (id, old) = zone_id(&mut tx, zone)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("zone `{zone}`")))?;
        insert_record(&mut tx, id, record).await?;
        let serial = old.wrapping_add(1);
        set_serial(&mut tx, id, serial).await?;
        bump(&mut tx, Topic::Zones).await?;
        tx.commit().await?;
        Ok(serial)
    }

    async fn remove_records(
        &self,
        zone: &str,
        name: &str,
        rtype: Option<&str>,
        rdata: Option<&str>,
    ) -> Result<u64> {
        let mut tx = self.write().await?;
        let (id, old) = zone_id(&mut tx, zone)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("zone `{zone}`")))?;
        let n = sqlx::query(
            "DELETE FROM records WHERE zone_id = $1 AND lower(name) = lower($2) \
             AND ($3 IS NULL OR upper(rtype) = upper($4)) AND ($5 IS NULL OR rdata = $6)",
        )
        .bind(id)
        .bind(name)
        .bind(rtype)
        .bind(rtype)
        .bind(rdata)
        .bind(rdata)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            set_serial(&mut tx, id, old.wrapping_add(1)).await?;
            bump(&mut tx, Topic::Zones).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn zone_records(&self, zone: Option<&str>) -> Result<Vec<ZoneRecord>> {
        let rows = sqlx::query(
            "SELECT r.id, z.name AS zone, r.name, r.rtype, r.ttl, r.rdata, r.wire \
             FROM records r JOIN zones z ON z.id = r.zone_id \
             WHERE $1 IS NULL OR z.name = $2 ORDER BY z.name, r.id",
        )
        .bind(zone)
        .bind(zone)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ZoneRecord {
                    id: r.try_get("id")?,
                    zone: r.try_get("zone")?,
                    name: r.try_get("name")?,
                    rtype: r.try_get("rtype")?,
                    ttl: serial_from_db(r.try_get("ttl")?),
                    rdata: r.try_get("rdata")?,
                    wire: r.try_get("wire")?,
                })
            })
            .collect()
    }
}
