use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::packet::ErrorCode;

/// Everything that can go wrong in labnet-tftpd.
///
/// The first group stops the server (startup); the second ends one request
/// and maps to the TFTP ERROR sent to the client ([`Error::tftp_code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("[tftp] {key} {path}: {source}")]
    Dir {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("file not found")]
    NotFound,
    #[error("access violation: {0}")]
    Access(&'static str),
    #[error("file already exists")]
    Exists,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// The TFTP error code (RFC 1350 §5) a client gets for this error.
    pub fn tftp_code(&self) -> ErrorCode {
        match self {
            Error::NotFound => ErrorCode::FileNotFound,
            Error::Access(_) => ErrorCode::AccessViolation,
            Error::Exists => ErrorCode::FileExists,
            Error::Io(e) => match e.kind() {
                io::ErrorKind::NotFound => ErrorCode::FileNotFound,
                io::ErrorKind::PermissionDenied => ErrorCode::AccessViolation,
                io::ErrorKind::AlreadyExists => ErrorCode::FileExists,
                _ if e.raw_os_error() == Some(libc::ENOSPC) => ErrorCode::DiskFull,
                _ => ErrorCode::NotDefined,
            },
            _ => ErrorCode::NotDefined,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
