//! The SQLite backend: one file in WAL mode shared by every labnet process.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::{Result, Store, StoreError, Topic};

/// The store on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// The connection lease batches are written through. Always the same
    /// one, so its page cache stays warm between batches (a pooled
    /// connection that another just wrote through must re-read its pages).
    pub(crate) writer: Arc<tokio::sync::Mutex<SqliteConnection>>,
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
        sqlx::migrate!("./migrations").run(&pool).await?;
        let writer = opts.connect().await?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
        })
    }
}

/// A write's outcome, with a UNIQUE violation turned into a
/// [`StoreError::Conflict`] that says `what` already exists.
pub(crate) fn unique<T>(
    res: std::result::Result<T, sqlx::Error>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    match res {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("{} exists already", what())))
        }
        other => Ok(other?),
    }
}

/// Bump `topic`'s counter inside the writer's transaction.
pub(crate) async fn bump(tx: &mut Transaction<'_, Sqlite>, topic: Topic) -> Result<()> {
    sqlx::query("UPDATE generations SET gen = gen + 1 WHERE topic = ?")
        .bind(topic.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn generation(&self, topic: Topic) -> Result<i64> {
        let gen: Option<i64> = sqlx::query_scalar("SELECT gen FROM generations WHERE topic = ?")
            .bind(topic.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(gen.unwrap_or(0))
    }
}
