//! Boot profiles (labnet-pxe): the kernel, initramfs and command line a
//! PXE-booting host loads, and which host gets which profile.
//!
//! A host's profile is found, in order: its reservation's `profile` column,
//! then `host_profiles` (a MAC → profile mapping for hosts that have no
//! reservation, so a profile can be given to a pool client without pinning
//! its address), then the config's `[pxe] default_profile`.
//! [`ProfileStore::assign_profile`] writes to the reservation when the host
//! has one and to `host_profiles` otherwise, so one place holds the answer.

use crate::Result;
use serde::Serialize;

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
    /// otherwise a clash is a [`crate::StoreError::Conflict`].
    async fn put_profile(&self, p: &BootProfile, replace: bool) -> Result<()>;
    /// Remove a profile; false if there was none. A profile still assigned
    /// to a host is a [`crate::StoreError::Conflict`].
    async fn remove_profile(&self, name: &str) -> Result<bool>;
    /// Host → profile mappings of hosts without a reservation.
    async fn host_profiles(&self) -> Result<Vec<HostProfile>>;
    /// Give the host `mac` the profile `profile` (which must exist).
    async fn assign_profile(&self, mac: &str, profile: &str) -> Result<Assignment>;
    /// Take the host's profile away (it falls back to the default); false
    /// if it had none.
    async fn unassign_profile(&self, mac: &str) -> Result<bool>;
}
