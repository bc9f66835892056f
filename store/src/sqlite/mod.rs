//! The SQLite backend: one file in WAL mode shared by every labnet process
//! on one machine. Its schema is `migrations/` beside this file.
//!
//! Two rules keep several processes on one file safe:
//! - Every transaction that writes begins `IMMEDIATE` ([`SqliteStore::write`]):
//!   it takes the write lock before its first read, so it waits (busy
//!   timeout) for another writer instead of failing. A deferred transaction
//!   that reads and then writes cannot wait: when another process committed
//!   in between, SQLite refuses its upgrade with `SQLITE_BUSY_SNAPSHOT`
//!   (517) at once, whatever the busy timeout (sqlite.org/isolation.html,
//!   "BEGIN IMMEDIATE").
//! - The file's identity (device and inode) is taken at open and checked
//!   before every lease commit and every generation read: a file deleted or
//!   replaced under a running daemon is [`StoreError::Replaced`], which the
//!   daemons treat as fatal, instead of commits going on into an unlinked
//!   inode that the next process to open the path never sees.

mod gslb;
mod leases;
mod profiles;
mod reservations;
mod zones;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::{Result, Store, StoreError, Topic};

/// How a writer starts: take the write lock now (see the module doc).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The store on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The connection lease batches are written through. Always the same
    /// one, so its page cache stays warm between batches (a pooled
    /// connection that another just wrote through must re-read its pages).
    writer: Arc<tokio::sync::Mutex<SqliteConnection>>,
    path: PathBuf,
    /// (st_dev, st_ino) of the file when it was opened.
    identity: (u64, u64),
}

impl SqliteStore {
    /// Open (creating if needed) and migrate the database at `path`.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            // WAL lets readers (dnsd, tftpd, labnetctl) run beside dhcpd's writes.
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed lease survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            // Several processes write; wait for the lock rather than fail.
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./src/sqlite/migrations").run(&pool).await?;
        let writer = opts.connect().await?;
        let identity = file_identity(path).map_err(|reason| StoreError::Replaced {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            path: path.to_owned(),
            identity,
        })
    }

    /// A transaction that will write, holding the write lock from its start.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.check_identity()?;
        Ok(self.pool.begin_with(BEGIN_WRITE).await?)
    }

    /// Is the file at our path still the one we opened?
    fn check_identity(&self) -> Result<()> {
        let replaced = |reason: String| StoreError::Replaced {
            path: self.path.display().to_string(),
            reason,
        };
        match file_identity(&self.path) {
            Ok(id) if id == self.identity => Ok(()),
            Ok(_) => Err(replaced("another file now has its name".into())),
            Err(reason) => Err(replaced(reason)),
        }
    }
}

fn file_identity(path: &Path) -> std::result::Result<(u64, u64), String> {
    match std::fs::metadata(path) {
        Ok(m) => Ok((m.dev(), m.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("it was deleted".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Bump `topic`'s counter inside the writer's transaction.
async fn bump(tx: &mut Transaction<'_, Sqlite>, topic: Topic) -> Result<()> {
    sqlx::query("UPDATE generations SET gen = gen + 1 WHERE topic = ?")
        .bind(topic.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn generation(&self, topic: Topic) -> Result<i64> {
        self.check_identity()?;
        let gen: Option<i64> = sqlx::query_scalar("SELECT gen FROM generations WHERE topic = ?")
            .bind(topic.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(gen.unwrap_or(0))
    }
}
