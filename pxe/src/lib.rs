//! `labnet-pxe`: what a network-booting host gets, and the files that tell
//! its loader what to boot.
//!
//! Two halves, both pure:
//!
//! - **The boot decision** ([`decide`]), asked by labnet-dhcpd for each
//!   request: from the client's arch (option 93, RFC 4578 §2.1), its vendor
//!   class (option 60: `PXEClient` / `HTTPClient`) and whether it already runs
//!   iPXE (user class option 77 `iPXE`, or iPXE's own option 175), choose the
//!   boot file and TFTP server that go into `siaddr`, `file` and options 66/67.
//! - **The generated files** ([`generated_file`]), asked by labnet-tftpd
//!   before the disk: `pxelinux.cfg/01-<mac>` and
//!   `pxelinux.cfg/default` for pxelinux, and the per-host iPXE script, each
//!   rendered from the host's [`BootProfile`] (see [`ProfileBook`] for how a
//!   host's profile is found). A host without a profile gets no generated
//!   file at all: it boots from what the TFTP root holds (an existing
//!   dnsmasq-style root with its own `boot.ipxe` keeps working).
//!
//! [`BootFiles`] is the one piece that touches the store: an in-memory
//! [`ProfileBook`] reloaded when the store's `profiles` or `reservations`
//! generation moves, so a `labnetctl profiles ...` change is served on the
//! next request without restarting anything.

mod book;
mod cache;
mod decide;
mod render;
#[cfg(test)]
mod testutil;

pub use book::ProfileBook;
pub use cache::BootFiles;
pub use decide::{decide, BootDecision, BootFileKind, BootRequest, ClientArch, ClientClass};
pub use labnet_store::BootProfile;
pub use render::{
    check_profile, generated_file, ipxe_host_script, ipxe_host_script_path, pxelinux_config,
    GeneratedPath,
};

/// Why labnet-pxe could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PxeError {
    /// A profile that cannot be rendered safely into a loader's config.
    #[error("boot profile `{name}`: {reason}")]
    BadProfile { name: String, reason: String },
    /// Reading profiles, reservations or generations failed.
    #[error(transparent)]
    Store(#[from] labnet_store::StoreError),
}
