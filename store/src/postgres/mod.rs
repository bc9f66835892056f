//! The PostgreSQL backend: one database that labnet processes on several
//! machines share. Its schema is `migrations/` beside this file.
//!
//! Writers run in READ COMMITTED transactions; the rows that must not race
//! are locked explicitly (a zone's row `FOR UPDATE` before its serial moves,
//! the generation row by the `UPDATE` that bumps it). Every bump also sends
//! `NOTIFY labnet, '<topic>'`, delivered at commit, so a watcher on another
//! machine wakes at once instead of at its next poll.

mod gslb;
mod leases;
mod profiles;
mod reservations;
mod zones;

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::{Result, Store, Topic};

/// The NOTIFY channel every write announces its topic on.
const CHANNEL: &str = "labnet";
/// SQLSTATE invalid_catalog_name: the database does not exist.
const NO_SUCH_DATABASE: &str = "3D000";

/// The store on a PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Topics other processes announced, fed by one LISTEN connection that
    /// starts on the first [`Store::subscribe`].
    notes: OnceLock<broadcast::Sender<Topic>>,
    listener: OnceLock<Arc<AbortOnDrop>>,
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgStore {
    /// Connect to the database `url` names (creating it if the server has
    /// none of that name) and migrate it.
    pub async fn open(url: &str) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool_opts = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10));
        let pool = match pool_opts.clone().connect_with(opts.clone()).await {
            Ok(p) => p,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(NO_SUCH_DATABASE) => {
                info!(
                    database = opts.get_database().unwrap_or(""),
                    "creating the store database"
                );
                Postgres::create_database(url).await?;
                pool_opts.connect_with(opts).await?
            }
            Err(e) => return Err(e.into()),
        };
        // sqlx holds an advisory lock while migrating, so nodes starting
        // together migrate once.
        sqlx::migrate!("./src/postgres/migrations")
            .run(&pool)
            .await?;
        Ok(PgStore {
            pool,
            notes: OnceLock::new(),
            listener: OnceLock::new(),
        })
    }

    /// A transaction that will write.
    async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// Bump `topic`'s counter and announce it, inside the writer's transaction
/// (PostgreSQL delivers the NOTIFY only if the transaction commits).
async fn bump(tx: &mut Transaction<'_, Postgres>, topic: Topic) -> Result<()> {
    sqlx::query("UPDATE generations SET gen = gen + 1 WHERE topic = $1")
        .bind(topic.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(topic.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Follow `NOTIFY labnet` and pass each topic on. When the connection
/// drops, notifications sent meanwhile are lost: watchers poll the counters
/// as well, so they notice at their next poll.
async fn listen(pool: PgPool, tx: broadcast::Sender<Topic>) {
    let mut warned = false;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                if !warned {
                    warn!(error = %e, "cannot LISTEN for store changes; polling until it works");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            if !warned {
                warn!(error = %e, "cannot LISTEN for store changes; polling until it works");
                warned = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // `Ok(None)` or an error: the connection dropped; reconnect.
        while let Ok(Some(n)) = listener.try_recv().await {
            warned = false;
            if let Some(t) = Topic::ALL.iter().find(|t| t.as_str() == n.payload()) {
                // No receiver is fine: nobody watches that topic.
                let _ = tx.send(*t);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn generation(&self, topic: Topic) -> Result<i64> {
        let gen: Option<i64> = sqlx::query_scalar("SELECT gen FROM generations WHERE topic = $1")
            .bind(topic.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(gen.unwrap_or(0))
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Topic>> {
        let tx = self.notes.get_or_init(|| broadcast::channel(256).0);
        self.listener.get_or_init(|| {
            Arc::new(AbortOnDrop(tokio::spawn(listen(
                self.pool.clone(),
                tx.clone(),
            ))))
        });
        Some(tx.subscribe())
    }

    fn shared(&self) -> bool {
        true
    }
}
