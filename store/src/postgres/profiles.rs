//! Boot profiles on PostgreSQL.

use sqlx::Row;

use super::{bump, PgStore};
use crate::error::unique;
use crate::{Assignment, BootProfile, HostProfile, ProfileStore, Result, StoreError, Topic};

#[async_trait::async_trait]
impl ProfileStore for PgStore {
    async fn profiles(&self) -> Result<Vec<BootProfile>> {
        let rows = sqlx::query(
            "SELECT name, kernel, initrd, cmdline, bios_loader, uefi_loader, uefi32_loader \
             FROM boot_profiles ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(BootProfile {
                    name: row.try_get("name")?,
                    kernel: row.try_get("kernel")?,
                    initrd: row.try_get("initrd")?,
                    cmdline: row.try_get("cmdline")?,
                    bios_loader: row.try_get("bios_loader")?,
                    uefi_loader: row.try_get("uefi_loader")?,
                    uefi32_loader: row.try_get("uefi32_loader")?,
                })
            })
            .collect()
    }

    async fn put_profile(&self, p: &BootProfile, replace: bool) -> Result<()> {
        let mut tx = self.write().await?;
        let sql = if replace {
            "INSERT INTO boot_profiles (name, kernel, initrd, cmdline, bios_loader, uefi_loader, uefi32_loader) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET kernel = excluded.kernel, \
             initrd = excluded.initrd, cmdline = excluded.cmdline, bios_loader = excluded.bios_loader, \
             uefi_loader = excluded.uefi_loader, uefi32_loader = excluded.uefi32_loader"
        } else {
            "INSERT INTO boot_profiles (name, kernel, initrd, cmdline, bios_loader, uefi_loader, uefi32_loader) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        };
        let res = sqlx::query(sql)
            .bind(&p.name)
            .bind(&p.kernel)
            .bind(&p.initrd)
            .bind(&p.cmdline)
            .bind(&p.bios_loader)
            .bind(&p.uefi_loader)
            .bind(&p.uefi32_loader)
            .execute(&mut *tx)
            .await;
        unique(res, || format!("a boot profile named `{}`", p.name))?;
        bump(&mut tx, Topic::Profiles).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_profile(&self, name: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT COALESCE(mac, 'client-id ' || encode(client_id, 'hex')) FROM reservations WHERE profile = $1 \
             UNION ALL SELECT mac FROM host_profiles WHERE profile = $2",
        )
        .bind(name)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "boot profile `{name}` is assigned to {}; unassign it first",
                users.join(", ")
            )));
        }
        let n = sqlx::query("DELETE FROM boot_profiles WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump(&mut tx, Topic::Profiles).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn host_profiles(&self) -> Result<Vec<HostProfile>> {
        let rows = sqlx::query("SELECT mac, profile FROM host_profiles ORDER BY mac")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(HostProfile {
                    mac: row.try_get("mac")?,
                    profile: row.try_get("profile")?,
                })
            })
            .collect()
    }

    async fn assign_profile(&self, mac: &str, profile: &str) -> Result<Assignment> {
        let mac = mac.to_ascii_lowercase();
        let mut tx = self.write().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1::bigint FROM boot_profiles WHERE name = $1")
                .bind(profile)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("boot profile `{profile}`")));
        }
        let on_reservation = sqlx::query("UPDATE reservations SET profile = $1 WHERE mac = $2")
            .bind(profile)
            .bind(&mac)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let how = if on_reservation {
            // One place holds the answer: drop a stale mapping made before
            // the reservation existed.
            sqlx::query("DELETE FROM host_profiles WHERE mac = $1")
                .bind(&mac)
                .execute(&mut *tx)
                .await?;
            bump(&mut tx, Topic::Reservations).await?;
            Assignment::Reservation
        } else {
            sqlx::query(
                "INSERT INTO host_profiles (mac, profile) VALUES ($1, $2) \
                 ON CONFLICT (mac) DO UPDATE SET profile = excluded.profile",
            )
            .bind(&mac)
            .bind(profile)
            .execute(&mut *tx)
            .await?;
            Assignment::Host
        };
        bump(&mut tx, Topic::Profiles).await?;
        tx.commit().await?;
        Ok(how)
    }

    async fn unassign_profile(&self, mac: &str) -> Result<bool> {
        let mac = mac.to_ascii_lowercase();
        let mut tx = self.write().await?;
        let r = sqlx::query(
            "UPDATE reservations SET profile = NULL WHERE mac = $1 AND profile IS NOT NULL",
        )
        .bind(&mac)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let h = sqlx::query("DELETE FROM host_profiles WHERE mac = $1")
            .bind(&mac)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if r > 0 {
            bump(&mut tx, Topic::Reservations).await?;
        }
        if r + h > 0 {
            bump(&mut tx, Topic::Profiles).await?;
        }
        tx.commit().await?;
        Ok(r + h > 0)
    }
}
