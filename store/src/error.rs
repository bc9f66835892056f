/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store URL `{0}` is not supported; use sqlite:///path/to/labnet.db")]
    UnsupportedUrl(String),
    #[error("cannot create the store's directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
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
