//! Storage failures, and what a database error means for the caller: its
//! SQLite result code or PostgreSQL SQLSTATE says whether to retry, whether
//! the disk is full or the database takes no writes.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url {0:?}: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// The process is stopping and takes no more writes.
    #[error("shutting down")]
    ShuttingDown,
    /// The database's disk is full: the transaction was rolled back.
    #[error("database disk full: {0}")]
    DiskFull(sqlx::Error),
    /// The database takes no writes (read-only file system, file or server).
    #[error("database is read-only: {0}")]
    ReadOnly(sqlx::Error),
    /// The SQLite file (or its directory, where the WAL lives) cannot be written.
    #[error("cannot write the SQLite database {path}: {cause}")]
    NotWritable { path: String, cause: std::io::Error },
}

/// What a database error means for the caller.
enum Fault {
    Unavailable,
    DiskFull,
    ReadOnly,
    Other,
}

/// Classifies a server-reported error by its SQLite result code or PostgreSQL SQLSTATE.
fn fault(error: &dyn sqlx::error::DatabaseError) -> Fault {
    if error.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes keep the primary code in the low byte.
        let primary = error.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
        return match primary {
            Some(13) => Fault::DiskFull,       // SQLITE_FULL
            Some(8) => Fault::ReadOnly,        // SQLITE_READONLY
            Some(5 | 6) => Fault::Unavailable, // SQLITE_BUSY, SQLITE_LOCKED past the busy timeout
            _ => Fault::Other,
        };
    }
    match error.code().as_deref() {
        Some("53100") => Fault::DiskFull,
        Some("25006") => Fault::ReadOnly,
        // Connection exceptions, too many connections / out of resources, and a
        // server shutting down, restarting or not yet accepting connections.
        Some(code) if code.starts_with("08") || code.starts_with("57P") || code == "53300" || code == "53000" => {
            Fault::Unavailable
        }
        _ => Fault::Other,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref db) => match fault(db.as_ref()) {
                Fault::Unavailable => StoreError::Unavailable(e),
                Fault::DiskFull => StoreError::DiskFull(e),
                Fault::ReadOnly => StoreError::ReadOnly(e),
                Fault::Other => StoreError::Database(e),
            },
            other => StoreError::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
