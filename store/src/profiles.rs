//! Boot profiles (labnet-pxe): the kernel, initramfs and command line a
//! PXE-booting host loads, and which host gets which profile.
//!
//! A host's profile is found, in order: its reservation's `profile` column,
//! then `host_profiles` (a MAC → profile mapping for hosts that have no
//! reservation, so a profile can be given to a pool client without pinning
//! its address), then the config's `[pxe] default_profile`.
//! [`ProfileStore::assign_profile`] writes to the reservation when the host
//! has one and to `host_profiles` otherwise, so one place holds the answer.

use serde::Serialize;
use sqlx::Row;

use crate::sqlite::{bump, unique, SqliteStore};
use crate::{Result, StoreError, Topic};

/// What a host boots. Paths are relative to the TFTP root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootProfile {
    pub name: String,
    pub kernel: String,
    pub initrd: Option<String>,
    /// Kernel command line (without `initrd=`, which labnet adds where a
    /// loader needs it).
    pub cmdline: String,
    /// Loader for BIOS clients instead of `[pxe] bios_boot_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bios_loader: Option<String>,
    /// Loader for x64 UEFI clients instead of `[pxe] uefi_boot_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uefi_loader: Option<String>,
    /// Loader for IA32 UEFI clients instead of `[pxe] uefi32_boot_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uefi32_loader: Option<String>,
}

/// A host (by MAC) given a profile without a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostProfile {
    /// `aa:bb:cc:dd:ee:ff`
    pub mac: String,
    pub profile: String,
}

/// Where [`ProfileStore::assign_profile`] recorded an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Assignment {
    /// On the host's reservation.
    Reservation,
    /// In the host → profile mapping (the host has no reservation).
    Host,
}

#[async_trait::async_trait]
pub trait ProfileStore: Send + Sync {
    /// Every boot profile, by name.
    async fn profiles(&self) -> Result<Vec<BootProfile>>;
    /// Add a profile; with `replace`, overwrite one of the same name,
    /// otherwise a clash is a [`StoreError::Conflict`].
    async fn put_profile(&self, p: &BootProfile, replace: bool) -> Result<()>;
    /// Remove a profile; false if there was none. A profile still assigned
    /// to a host is a [`StoreError::Conflict`].
    async fn remove_profile(&self, name: &str) -> Result<bool>;
    /// Host → profile mappings of hosts without a reservation.
    async fn host_profiles(&self) -> Result<Vec<HostProfile>>;
    /// Give the host `mac` the profile `profile` (which must exist).
    async fn assign_profile(&self, mac: &str, profile: &str) -> Result<Assignment>;
    /// Take the host's profile away (it falls back to the default); false
    /// if it had none.
    async fn unassign_profile(&self, mac: &str) -> Result<bool>;
}

#[async_trait::async_trait]
impl ProfileStore for SqliteStore {
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
        let mut tx = self.pool.begin().await?;
        let sql = if replace {
            "INSERT INTO boot_profiles (name, kernel, initrd, cmdline, bios_loader, uefi_loader, uefi32_loader) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kernel = excluded.kernel, \
             initrd = excluded.initrd, cmdline = excluded.cmdline, bios_loader = excluded.bios_loader, \
             uefi_loader = excluded.uefi_loader, uefi32_loader = excluded.uefi32_loader"
        } else {
            "INSERT INTO boot_profiles (name, kernel, initrd, cmdline, bios_loader, uefi_loader, uefi32_loader) \
             VALUES (?, ?, ?, ?, ?, ?, ?)"
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
        let mut tx = self.pool.begin().await?;
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT COALESCE(mac, 'client-id ' || hex(client_id)) FROM reservations WHERE profile = ? \
             UNION ALL SELECT mac FROM host_profiles WHERE profile = ?",
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
        let n = sqlx::query("DELETE FROM boot_profiles WHERE name = ?")
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
        let mut tx = self.pool.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM boot_profiles WHERE name = ?")
            .bind(profile)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("boot profile `{profile}`")));
        }
        let on_reservation = sqlx::query("UPDATE reservations SET profile = ? WHERE mac = ?")
            .bind(profile)
            .bind(&mac)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let how = if on_reservation {
            // One place holds the answer: drop a stale mapping made before
            // the reservation existed.
            sqlx::query("DELETE FROM host_profiles WHERE mac = ?")
                .bind(&mac)
                .execute(&mut *tx)
                .await?;
            bump(&mut tx, Topic::Reservations).await?;
            Assignment::Reservation
        } else {
            sqlx::query(
                "INSERT INTO host_profiles (mac, profile) VALUES (?, ?) \
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
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE reservations SET profile = NULL WHERE mac = ? AND profile IS NOT NULL",
        )
        .bind(&mac)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let h = sqlx::query("DELETE FROM host_profiles WHERE mac = ?")
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
