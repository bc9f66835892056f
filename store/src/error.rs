/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "store URL `{0}` is not supported; use sqlite:///path/to/labnet.db or postgres://user@host/db"
    )]
    UnsupportedUrl(String),
    #[error("cannot create the store's directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite file this process opened is no longer the file at its
    /// path. Fatal: the process must stop rather than write on.
    #[error("the store file {path} was replaced or removed under this process ({reason}); stopping so as not to write into a file no other process sees")]
    Replaced { path: String, reason: String },
    #[error("store database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("corrupt row in the store: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// An error after which the process must stop (the store it opened is
    /// gone); every other error may pass.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::Replaced { .. })
    }
}

/// A write's outcome, with a UNIQUE violation turned into a
/// [`StoreError::Conflict`] that says `what` already exists.
pub(crate) fn unique<T>(
    res: std::result::Result<T, sqlx::Error>,
    what: impl FnOnce() -> String,
) -> crate::Result<T> {
    match res {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("{} exists already", what())))
        }
        other => Ok(other?),
    }
}
