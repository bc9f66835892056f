//! Files read once into memory and shared by every transfer of them.
//!
//! Every PXE client of a lab fetches the same kernel and initrd, often at the
//! same moment; streaming each transfer from its own file handle costs a read
//! per read-ahead and a copy of the file per transfer in the page cache's
//! path. Here a file no larger than [`FileCache::max_file`] is read whole,
//! once, into an `Arc<[u8]>` that concurrent and later transfers share.
//!
//! An entry is keyed by the canonical path and stamped with the file's size,
//! mtime, ctime and inode: a file edited in place, replaced by a rename, or
//! touched is seen as changed at the next request and read again (a transfer
//! that already holds the old bytes finishes with them, as it would have
//! with an open file handle). Concurrent first requests wait for one read
//! (`OnceLock`) instead of each reading the file.
//!
//! Bounded: the entries' sizes together stay within `budget` bytes, least
//! recently requested evicted first. An evicted file still being sent stays
//! alive until its transfers end, so the resident total can briefly exceed
//! the budget by the files in flight.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(md: &Metadata) -> Stamp {
        Stamp {
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
        }
    }
}

struct Entry {
    stamp: Stamp,
    /// Filled by the first request; the others wait for it.
    data: OnceLock<Result<Arc<[u8]>, io::ErrorKind>>,
}

struct Inner {
    map: LruCache<PathBuf, Arc<Entry>>,
    /// Sum of the entries' sizes.
    bytes: u64,
}

/// See the module doc.
pub struct FileCache {
    budget: u64,
    max_file: u64,
    inner: Mutex<Inner>,
}

impl FileCache {
    /// A cache holding at most `budget` bytes; a file is cached when it is
    /// at most half of that (so that two boot files fit). 0 turns it off.
    pub fn new(budget: u64) -> FileCache {
        FileCache {
            budget,
            max_file: budget / 2,
            inner: Mutex::new(Inner {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// Largest file kept.
    pub fn max_file(&self) -> u64 {
        self.max_file
    }

    /// Bytes held by the entries.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole content of `file` (opened from canonical `path`, with
    /// metadata `md`), from memory when this version was read before.
    /// `None` when the file is not cached (too large, or the cache is off):
    /// the caller streams it from the file instead.
    pub fn get(&self, path: &Path, file: &File, md: &Metadata) -> Option<io::Result<Arc<[u8]>>> {
        let stamp = Stamp::of(md);
        if self.budget == 0 || stamp.len > self.max_file {
            return None;
        }
        let entry = {
            let mut g = self.lock();
            match g.map.get(path) {
                Some(e) if e.stamp == stamp => e.clone(),
                _ => {
                    let e = Arc::new(Entry {
                        stamp,
                        data: OnceLock::new(),
                    });
                    if let Some(old) = g.map.put(path.to_owned(), e.clone()) {
                        g.bytes -= old.stamp.len;
                    }
                    g.bytes += stamp.len;
                    // The new entry is the most recent and fits the budget
                    // alone (max_file <= budget), so it is never evicted here.
                    while g.bytes > self.budget {
                        match g.map.pop_lru() {
                            Some((_, old)) => g.bytes -= old.stamp.len,
                            None => break,
                        }
                    }
                    e
                }
            }
        };
        let data = entry.data.get_or_init(|| read_whole(file, stamp.len));
        match data {
            Ok(d) => Some(Ok(d.clone())),
            Err(kind) => {
                // Forget a failed read so that the next request tries again.
                let mut g = self.lock();
                if g.map.peek(path).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                    g.map.pop(path);
                    g.bytes -= stamp.len;
                }
                Some(Err(io::Error::from(*kind)))
            }
        }
    }
}

/// Read `file` from its start to its end (`len` is the size stat saw; a
/// file growing meanwhile is read as far as it goes, which the next
/// request's changed stamp then corrects).
fn read_whole(mut file: &File, len: u64) -> Result<Arc<[u8]>, io::ErrorKind> {
    let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut v).map_err(|e| e.kind())?;
    Ok(Arc::from(v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn get(c: &FileCache, p: &Path) -> Option<Arc<[u8]>> {
        let f = File::open(p).unwrap();
        let md = f.metadata().unwrap();
        c.get(p, &f, &md).map(|r| r.unwrap())
    }

    #[test]
    fn read_once_shared_and_reread_when_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kernel");
        std::fs::write(&p, b"version one").unwrap();
        let c = FileCache::new(1000);
        let a = get(&c, &p).unwrap();
        let b = get(&c, &p).unwrap();
        assert_eq!(&a[..], b"version one");
        assert!(
            Arc::ptr_eq(&a, &b),
            "second request must share the first read"
        );
        // Same size, new content: the stamp (mtime/ctime) differs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"version two").unwrap();
        let n = get(&c, &p).unwrap();
        assert_eq!(&n[..], b"version two");
        assert_eq!(&a[..], b"version one", "a running transfer keeps its bytes");
        assert_eq!(c.bytes(), 11);
    }

    #[test]
    fn bounded_lru_and_large_files_streamed() {
        let d = tempfile::tempdir().unwrap();
        let c = FileCache::new(100);
        assert_eq!(c.max_file(), 50);
        for (name, len) in [("a", 40), ("b", 40), ("c", 40)] {
            std::fs::write(d.path().join(name), vec![1u8; len]).unwrap();
        }
        std::fs::write(d.path().join("big"), vec![2u8; 51]).unwrap();
        assert!(get(&c, &d.path().join("big")).is_none());
        get(&c, &d.path().join("a")).unwrap();
        get(&c, &d.path().join("b")).unwrap();
        get(&c, &d.path().join("a")).unwrap(); // a is now the most recent
        get(&c, &d.path().join("c")).unwrap(); // evicts b
        assert_eq!(c.bytes(), 80);
        let g = c.lock();
        assert!(g.map.contains(&d.path().join("a")));
        assert!(!g.map.contains(&d.path().join("b")));
    }

    #[test]
    fn off_when_zero() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        assert!(get(&FileCache::new(0), &p).is_none());
    }
}
