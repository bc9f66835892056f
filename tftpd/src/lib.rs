//! `labnet-tftpd`: the TFTP server (RFC 1350, options per RFC 2347, 2348,
//! 2349 and 7440) that serves files under `[tftp] root` and the generated
//! PXE files that `labnet-pxe` renders.
//!
//! How a read request flows through the crate:
//!
//! 1. [`server`] owns the sockets. A listening socket (one per `listen`
//!    address, IPv4 or IPv6) receives the RRQ; [`packet::Packet::decode`]
//!    parses it. Caps are checked (a semaphore for the total, a per-address
//!    count); beyond them the client gets ERROR 0 "server busy".
//! 2. A task is spawned for the transfer with its own socket, bound to the
//!    local IP the request arrived on, port 0, and connected to the client.
//! 3. The name is normalised and confined ([`files`]): generated files
//!    ([`VirtualFiles`]) are asked first, then the disk under the root; a
//!    file small enough is read once into memory and shared by every
//!    transfer of it ([`cache`]).
//! 4. Options are negotiated ([`transfer::negotiate`]): blksize capped by the
//!    config and the interface MTU ([`mtu`]), windowsize capped, timeout,
//!    tsize.
//! 5. The sans-IO state machine [`transfer::Transfer`] decides every packet:
//!    the task feeds it ACKs (`on_packet`) and deadlines (`on_timeout`) and
//!    sends what it returns, until it reports `Out::Done`: a lockstep
//!    transfer on a blocking thread of its own (a send and a receive per
//!    block, no reactor round trip), a windowed one as a task that sends the
//!    whole window in one `sendmmsg`. One info line per
//!    finished transfer; per-packet detail at debug; counters in [`metrics`].
//!
//! A write request is refused with ERROR 2 unless `upload_dir` is set; then
//! it is received (lockstep) into a new file there, never overwriting.
//!
//! With `[http]`, [`http`] serves the same root and the same generated
//! files over HTTP (GET, HEAD, ranges) from the same process, for iPXE and
//! UEFI HTTP boot.
//!
//! [`run`] and [`run_with_files`] tie it together; `main.rs` only adds
//! flags, tracing, signals and sd_notify.

/// What `labnet-tftpd --help` and its man page say the daemon is.
pub const ABOUT: &str = "labnet's TFTP server";

pub mod cache;
pub mod error;
pub mod files;
pub mod http;
pub mod metrics;
pub mod mtu;
pub mod packet;
mod pxe;
pub mod server;
pub mod transfer;

use std::sync::Arc;

use labnet_config::TftpConfig;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};
pub use files::VirtualFiles;
pub use server::Server;

/// Serve files under the root until `shutdown` is cancelled.
pub async fn run(config: TftpConfig, shutdown: CancellationToken) -> Result<()> {
    run_with_files(config, None, shutdown).await
}

/// Like [`run`], with generated files consulted before the disk.
pub async fn run_with_files(
    config: TftpConfig,
    files: Option<Arc<dyn VirtualFiles>>,
    shutdown: CancellationToken,
) -> Result<()> {
    Server::bind(&config, files)?.serve(shutdown).await
}
