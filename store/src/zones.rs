//! Authoritative DNS zones and their records.
//!
//! The store keeps records as rows with both the presentation form (for
//! people and `labnetctl records list`) and the RFC 1035 wire form of the
//! RDATA (what labnet-dnsd decodes), so this crate needs no DNS codec. Names
//! are absolute with the final dot; zone names are lowercase.

use sqlx::Row;

use crate::sqlite::{bump, SqliteStore};
use crate::{Result, StoreError, Topic};

/// A zone and its SOA serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, absolute (`lab.test.`).
    pub name: String,
    /// The SOA serial dnsd serves; it moves on every write to the zone.
    pub serial: u32,
    /// Number of records.
    pub records: u64,
}

/// A record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Absolute owner name (`www.lab.test.`).
    pub name: String,
    /// Type mnemonic (`A`).
    pub rtype: String,
    pub ttl: u32,
    /// Presentation form of the RDATA.
    pub rdata: String,
    /// Wire form of the RDATA, names uncompressed.
    pub wire: Vec<u8>,
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    pub id: i64,
    /// The zone it belongs to (lowercase, absolute).
    pub zone: String,
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub rdata: String,
    pub wire: Vec<u8>,
}

/// Zone and record operations. Every write bumps the zone's serial and
/// [`Topic::Zones`] in its transaction.
#[async_trait::async_trait]
pub trait ZoneStore: Send + Sync {
    /// Every zone, by name.
    async fn zones(&self) -> Result<Vec<Zone>>;
    /// Create `zone` or replace all its records with `records`. The serial
    /// becomes `serial` when that is newer (RFC 1982) than the stored one,
    /// else the stored one plus one. Returns the zone as written.
    async fn import_zone(&self, zone: &str, serial: u32, records: &[NewRecord]) -> Result<Zone>;
    /// Remove a zone and its records; false when there was none.
    async fn remove_zone(&self, zone: &str) -> Result<bool>;
    /// Add one record to an existing zone; returns the new serial.
    async fn add_record(&self, zone: &str, record: &NewRecord) -> Result<u32>;
    /// Remove the records of `zone` owned by `name` (case-insensitive),
    /// optionally only of type `rtype` and with presentation RDATA `rdata`.
    /// Returns how many went (the serial moves only when some did).
    async fn remove_records(
        &self,
        zone: &str,
        name: &str,
        rtype: Option<&str>,
        rdata: Option<&str>,
    ) -> Result<u64>;
    /// The records of one zone, or of all zones, in zone then insertion order.
    async fn zone_records(&self, zone: Option<&str>) -> Result<Vec<ZoneRecord>>;
}

/// RFC 1982 §3.2: is `a` newer than `b`?
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

fn serial_from_db(v: i64) -> u32 {
    (v & 0xffff_ffff) as u32
}

async fn zone_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    zone: &str,
) -> Result<Option<(i64, u32)>> {
    let row = sqlx::query("SELECT id, serial FROM zones WHERE name = ?")
        .bind(zone)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("id")?, serial_from_db(r.try_get("serial")?))),
        None => None,
    })
}

async fn set_serial(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    serial: u32,
) -> Result<()> {
    sqlx::query("UPDATE zones SET serial = ? WHERE id = ?")
        .bind(i64::from(serial))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_record(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    zone_id: i64,
    r: &NewRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO records (zone_id, name, rtype, ttl, rdata, wire) VALUES (?, ?, ?, ?, ?, ?)",
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
impl ZoneStore for SqliteStore {
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
        let mut tx = self.pool.begin().await?;
        let new_serial = match zone_id(&mut tx, zone).await? {
            Some((id, old)) => {
                sqlx::query("DELETE FROM records WHERE zone_id = ?")
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
                    "INSERT INTO zones (name, serial) VALUES (?, ?) RETURNING id",
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
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM zones WHERE name = ?")
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
        let (id, old) = zone_id(&mut tx, zone)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("zone `{zone}`")))?;
        let n = sqlx::query(
            "DELETE FROM records WHERE zone_id = ? AND lower(name) = lower(?) \
             AND (? IS NULL OR upper(rtype) = upper(?)) AND (? IS NULL OR rdata = ?)",
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
             WHERE ? IS NULL OR z.name = ? ORDER BY z.name, r.id",
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
