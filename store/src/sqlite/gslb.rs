//! GSLB maps, regions, pools, members and health on SQLite.

use std::net::IpAddr;

use ipnet::IpNet;
use sqlx::Row;

use super::{bump, SqliteStore};
use crate::error::unique;
use crate::gslb::{cidr_from_db, ipaddr_from_db, MapSql};
use crate::{
    GslbData, GslbHealth, GslbMap, GslbMember, GslbPool, GslbPrefix, GslbRegion, GslbStore, Result,
    StoreError, Topic, WhenAllDown,
};

/// The statements for one prefix map (static text: sqlx refuses built SQL).
fn map_sql(map: GslbMap) -> MapSql {
    match map {
        GslbMap::Isp => MapSql {
            what: "isp",
            delete_owner: "DELETE FROM gslb_isp_map WHERE isp = ?",
            insert: "INSERT INTO gslb_isp_map (cidr, isp) VALUES (?, ?)",
            delete_cidr: "DELETE FROM gslb_isp_map WHERE cidr = ?",
            select: "SELECT cidr, isp AS name FROM gslb_isp_map",
        },
        GslbMap::Region => MapSql {
            what: "region",
            delete_owner: "DELETE FROM gslb_region_map WHERE region = ?",
            insert: "INSERT INTO gslb_region_map (cidr, region) VALUES (?, ?)",
            delete_cidr: "DELETE FROM gslb_region_map WHERE cidr = ?",
            select: "SELECT cidr, region AS name FROM gslb_region_map",
        },
    }
}

#[async_trait::async_trait]
impl GslbStore for SqliteStore {
    async fn gslb_map_add(
        &self,
        map: GslbMap,
        entries: &[GslbPrefix],
        replace: Option<&str>,
    ) -> Result<u64> {
        let q = map_sql(map);
        let mut tx = self.write().await?;
        if let Some(name) = replace {
            sqlx::query(q.delete_owner)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if map == GslbMap::Region {
            let names: std::collections::BTreeSet<&str> =
                entries.iter().map(|e| e.name.as_str()).collect();
            for name in names {
                let known: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM gslb_regions WHERE name = ?")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                if known.is_none() {
                    return Err(StoreError::NotFound(format!("region `{name}`")));
                }
            }
        }
        for e in entries {
            let r = sqlx::query(q.insert)
                .bind(e.cidr.to_string())
                .bind(&e.name)
                .execute(&mut *tx)
                .await;
            unique(r, || format!("{} map prefix {}", q.what, e.cidr))?;
        }
        bump(&mut tx, Topic::Gslb).await?;
        tx.commit().await?;
        Ok(entries.len() as u64)
    }

    async fn gslb_map_remove(&self, map: GslbMap, cidr: IpNet) -> Result<bool> {
        let q = map_sql(map);
        let mut tx = self.write().await?;
        let n = sqlx::query(q.delete_cidr)
            .bind(cidr.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Gslb).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn gslb_region_put(&self, region: &GslbRegion) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO gslb_regions (name, lat, lon) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET lat = excluded.lat, lon = excluded.lon",
        )
        .bind(&region.name)
        .bind(region.lat)
        .bind(region.lon)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, Topic::Gslb).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn gslb_pool_put(&self, pool: &GslbPool) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO gslb_pools (name, answers, ttl, when_all_down) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET answers = excluded.answers, ttl = excluded.ttl, \
             when_all_down = excluded.when_all_down",
        )
        .bind(&pool.name)
        .bind(i64::from(pool.answers))
        .bind(i64::from(pool.ttl))
        .bind(pool.when_all_down.as_str())
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, Topic::Gslb).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn gslb_pool_remove(&self, name: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query("DELETE FROM gslb_pools WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Gslb).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn gslb_member_put(&self, m: &GslbMember) -> Result<()> {
        let mut tx = self.write().await?;
        let pool: Option<String> = sqlx::query_scalar("SELECT name FROM gslb_pools WHERE name = ?")
            .bind(&m.pool)
            .fetch_optional(&mut *tx)
            .await?;
        if pool.is_none() {
            return Err(StoreError::NotFound(format!("pool `{}`", m.pool)));
        }
        let region: Option<i64> = sqlx::query_scalar("SELECT id FROM gslb_regions WHERE name = ?")
            .bind(&m.region)
            .fetch_optional(&mut *tx)
            .await?;
        if region.is_none() {
            return Err(StoreError::NotFound(format!("region `{}`", m.region)));
        }
        sqlx::query(
            "INSERT INTO gslb_members (pool, ip, isp, region, weight, check_spec) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pool, ip) DO UPDATE SET isp = excluded.isp, \
             region = excluded.region, weight = excluded.weight, check_spec = excluded.check_spec",
        )
        .bind(&m.pool)
        .bind(m.ip.to_string())
        .bind(&m.isp)
        .bind(&m.region)
        .bind(i64::from(m.weight))
        .bind(&m.check)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, Topic::Gslb).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn gslb_member_remove(&self, pool: &str, ip: IpAddr) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query("DELETE FROM gslb_members WHERE pool = ? AND ip = ?")
            .bind(pool)
            .bind(ip.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Gslb).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn gslb_data(&self) -> Result<GslbData> {
        // One read transaction: a consistent picture of all five tables.
        let mut tx = self.pool.begin().await?;
        let mut data = GslbData::default();
        for (map, out) in [
            (GslbMap::Isp, &mut data.isp_map),
            (GslbMap::Region, &mut data.region_map),
        ] {
            let q = map_sql(map);
            let rows = sqlx::query(q.select).fetch_all(&mut *tx).await?;
            for r in rows {
                out.push(GslbPrefix {
                    cidr: cidr_from_db(r.try_get("cidr")?)?,
                    name: r.try_get("name")?,
                });
            }
        }
        for r in sqlx::query("SELECT name, lat, lon FROM gslb_regions ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            data.regions.push(GslbRegion {
                name: r.try_get("name")?,
                lat: r.try_get("lat")?,
                lon: r.try_get("lon")?,
            });
        }
        for r in
            sqlx::query("SELECT name, answers, ttl, when_all_down FROM gslb_pools ORDER BY name")
                .fetch_all(&mut *tx)
                .await?
        {
            let w: String = r.try_get("when_all_down")?;
            data.pools.push(GslbPool {
                name: r.try_get("name")?,
                answers: r.try_get::<i64, _>("answers")?.clamp(1, u32::MAX.into()) as u32,
                ttl: r.try_get::<i64, _>("ttl")?.clamp(0, u32::MAX.into()) as u32,
                when_all_down: WhenAllDown::parse(&w)
                    .ok_or_else(|| StoreError::Corrupt(format!("when_all_down `{w}`")))?,
            });
        }
        for r in sqlx::query(
            "SELECT pool, ip, isp, region, weight, check_spec FROM gslb_members ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            data.members.push(GslbMember {
                pool: r.try_get("pool")?,
                ip: ipaddr_from_db(r.try_get("ip")?)?,
                isp: r.try_get("isp")?,
                region: r.try_get("region")?,
                weight: r.try_get::<i64, _>("weight")?.clamp(1, u32::MAX.into()) as u32,
                check: r.try_get("check_spec")?,
            });
        }
        tx.commit().await?;
        Ok(data)
    }

    async fn gslb_health_report(&self, health: &[GslbHealth]) -> Result<()> {
        let mut tx = self.write().await?;
        for h in health {
            sqlx::query(
                "INSERT INTO gslb_health (ip, check_spec, node, up, at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (ip, check_spec, node) DO UPDATE SET up = excluded.up, at = excluded.at",
            )
            .bind(h.ip.to_string())
            .bind(&h.check)
            .bind(&h.node)
            .bind(h.up)
            .bind(h.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn gslb_health(&self) -> Result<Vec<GslbHealth>> {
        let rows = sqlx::query(
            "SELECT ip, check_spec, node, up, at FROM gslb_health ORDER BY ip, check_spec, node",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GslbHealth {
                    ip: ipaddr_from_db(r.try_get("ip")?)?,
                    check: r.try_get("check_spec")?,
                    node: r.try_get("node")?,
                    up: r.try_get("up")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}
