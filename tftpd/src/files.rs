//! Where a requested name leads: generated files first ([`VirtualFiles`]),
//! then the disk under the root, confined.
//!
//! Confinement (checked in this order): `\` becomes `/`; a `..` component is
//! refused; a leading `/` is relative to the root (or, when the name starts
//! with the root's own path, that prefix is dropped); the joined path is
//! canonicalised and must still lie under the canonical root (so no symlink
//! leads out); the file is opened without following a final symlink and
//! without blocking (a FIFO cannot hang us), and must be a regular file.

use std::fs::{File, Metadata, OpenOptions};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::{Error, Result};

/// Generated files, served without touching the disk and consulted before
/// it. `labnet-pxe` implements this to render `pxelinux.cfg/01-<mac>`,
/// `pxelinux.cfg/default` and per-host iPXE scripts from boot profiles.
///
/// `path` is normalised: `/` separators, no leading `/`, no `.` or `..`
/// components, no empty components (`pxelinux.cfg/01-52-54-00-12-34-56`).
/// `client` is the requester's address (to find its host by IP if needed).
/// Return `None` to fall through to the disk. The server bounds each call
/// with a timeout ([`VIRTUAL_FILE_TIMEOUT`]); a `None` or a timeout both
/// fall through.
#[async_trait]
pub trait VirtualFiles: Send + Sync {
    async fn get(&self, path: &str, client: SocketAddr) -> Option<Vec<u8>>;
}

/// How long one [`VirtualFiles::get`] may take.
pub const VIRTUAL_FILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Normalise a requested name (see the module doc). `root` is the canonical
/// root, used only to strip a client-sent absolute prefix.
pub fn normalize(name: &str, root: &Path) -> Result<String> {
    let name = name.replace('\\', "/");
    let mut rel: &str = &name;
    if let Some(root) = root.to_str() {
        let root = root.trim_end_matches('/');
        if !root.is_empty() {
            if let Some(rest) = rel.strip_prefix(root) {
                if rest.starts_with('/') {
                    rel = rest;
                }
            }
        }
    }
    let mut parts = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Error::Access("'..' in path")),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::Access("empty file name"));
    }
    Ok(parts.join("/"))
}

/// Open `rel` (normalised) under the canonical `root` for reading. Returns
/// the file, its metadata and its canonical path (the file cache's key).
pub fn open_read(root: &Path, rel: &str) -> Result<(File, Metadata, PathBuf)> {
    let joined = root.join(rel);
    let canon = match joined.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
        Err(e) => return Err(e.into()),
    };
    if !canon.starts_with(root) {
        return Err(Error::Access("outside the root"));
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&canon)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(Error::Access("not a regular file"));
    }
    Ok((f, md, canon))
}

/// Create `rel` (normalised) under the canonical `dir` for an upload: the
/// parent must exist inside `dir`, the file must not exist.
pub fn create_upload(dir: &Path, rel: &str) -> Result<(File, PathBuf)> {
    let joined = dir.join(rel);
    let (parent, leaf) = match (joined.parent(), joined.file_name()) {
        (Some(p), Some(l)) => (p, l),
        _ => return Err(Error::Access("bad upload name")),
    };
    let parent = match parent.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
        Err(e) => return Err(e.into()),
    };
    if !parent.starts_with(dir) {
        return Err(Error::Access("outside the upload directory"));
    }
    let path = parent.join(leaf);
    // create_new: never overwrite; O_NOFOLLOW: not through a planted symlink.
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Exists,
            _ => Error::Io(e),
        })?;
    Ok((f, path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packet::ErrorCode;

    #[test]
    fn normalize_rules() {
        let root = Path::new("/srv/tftp");
        assert_eq!(normalize("pxelinux.0", root).unwrap(), "pxelinux.0");
        assert_eq!(normalize("/boot//x/./y", root).unwrap(), "boot/x/y");
        assert_eq!(
            normalize("\\EFI\\boot\\x.efi", root).unwrap(),
            "EFI/boot/x.efi"
        );
        assert_eq!(normalize("/srv/tftp/a/b", root).unwrap(), "a/b");
        assert_eq!(normalize("/srv/tftpx/a", root).unwrap(), "srv/tftpx/a");
        assert_eq!(normalize("/etc/passwd", root).unwrap(), "etc/passwd");
        for bad in ["../etc/passwd", "a/../../b", "..\\x", "/", ""] {
            assert!(normalize(bad, root).is_err(), "{bad}");
        }
        assert_eq!(
            normalize("../x", root).unwrap_err().tftp_code(),
            ErrorCode::AccessViolation
        );
    }

    #[test]
    fn open_confined() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"hi").unwrap();
        std::fs::write(d.path().join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("in")).unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(open_read(&root, "sub/f").unwrap().1.len(), 2);
        assert_eq!(open_read(&root, "in").unwrap().1.len(), 2);
        assert_eq!(
            open_read(&root, "out").unwrap_err().tftp_code(),
            ErrorCode::AccessViolation
        );
        assert_eq!(
            open_read(&root, "sub").unwrap_err().tftp_code(),
            ErrorCode::AccessViolation
        );
        assert_eq!(
            open_read(&root, "nope").unwrap_err().tftp_code(),
            ErrorCode::FileNotFound
        );
        assert_eq!(
            open_read(Path::new("/"), "dev/null")
                .unwrap_err()
                .tftp_code(),
            ErrorCode::AccessViolation
        );
    }

    #[test]
    fn upload_no_overwrite_no_escape() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path().canonicalize().unwrap();
        create_upload(&up, "new").unwrap();
        assert_eq!(
            create_upload(&up, "new").unwrap_err().tftp_code(),
            ErrorCode::FileExists
        );
        assert_eq!(
            create_upload(&up, "missing/dir").unwrap_err().tftp_code(),
            ErrorCode::FileNotFound
        );
        std::os::unix::fs::symlink("/tmp", up.join("esc")).unwrap();
        assert_eq!(
            create_upload(&up, "esc/x").unwrap_err().tftp_code(),
            ErrorCode::AccessViolation
        );
    }
}
