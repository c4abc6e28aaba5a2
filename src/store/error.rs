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
    /// A database URL that cannot be used as written (the reason says why).
    #[error("invalid database url {0}")]
    BadUrl(String),
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
    /// A stored value that does not decode (say, a word outside its closed
    /// set): never read as a default. Names the table and the row's key.
    #[error("a stored value cannot be read: {why} (table {table}, row {key})")]
    Unreadable { table: &'static str, key: String, why: String },
}

/// Rows read ahead, or `None` if one of them does not decode: a read-ahead
/// then caches nothing for those keys, so they are read one at a time and
/// only the damaged row fails (with its name), not the whole group.
pub(super) fn unless_undecodable<T>(read: Result<T, sqlx::Error>) -> StoreResult<Option<T>> {
    match read {
        Ok(rows) => Ok(Some(rows)),
        Err(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Names the row a decode failure came from; other errors pass through.
pub(super) fn in_row(table: &'static str, key: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Unreadable { table, key: key(), why: format!("a stored {table} row cannot be read: {e}") }
        }
        other => other.into(),
    }
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
