//! What is SQLite's own: connecting (WAL, full fsync, a busy timeout, a
//! writable file checked first), one writer at a time served first come first
//! served, and statements without row locks.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Dialect, StoreError, StoreResult};

/// One writer at a time: no row is ever locked.
pub(super) const DIALECT: Dialect = Dialect {
    claim_due: claim_due_sql!(""),
    expired_leases: open_dispatches_sql!(expired, ""),
    ready_dispatches: open_dispatches_sql!(ready, ""),
};

/// Page cache per connection (negative: KiB). SQLite's default, 2 MiB, holds
/// too little of the due index and the tables a surge writes: the rest is
/// read back from the OS with a system call per page.
const CACHE_KIB: &str = "-16384";

/// Opens the pool: WAL, `synchronous = FULL`, foreign keys, a 10 s busy
/// timeout, a 16 MiB page cache per connection.
pub(super) async fn connect(url: &str) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .pragma("cache_size", CACHE_KIB)
        .foreign_keys(true);
    let path = options.get_filename().to_path_buf();
    let pool = SqlitePoolOptions::new().max_connections(8).before_acquire(|conn, _| {
        Box::pin(async move {
            // After SQLITE_FULL, SQLITE_IOERR and the like SQLite rolls the
            // transaction back by itself; sqlx's own ROLLBACK then fails and
            // the connection still counts as inside a transaction, so the
            // next BEGIN would fail. A ping runs after any pending rollback;
            // a connection still in that state is closed, not reused.
            if !conn.is_in_transaction() {
                return Ok(true);
            }
            conn.ping().await?;
            Ok(!conn.is_in_transaction())
        })
    });
    check_writable(&path)?;
    Ok(pool.connect_with(options).await?)
}

/// Applies pending migrations.
pub(super) async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::migrate!("migrations/sqlite").run(pool).await?;
    Ok(())
}

/// Checks that a SQLite file and its directory can be written (WAL mode
/// writes `-wal` and `-shm` files beside it), so that a read-only file or
/// file system stops the start with the file's name and the operating
/// system's reason, rather than with SQLite's "unable to open" or, when the
/// WAL files happen to be there, at the first write.
fn check_writable(path: &std::path::Path) -> StoreResult<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let probe = if path.exists() { std::fs::OpenOptions::new().append(true).open(path).map(drop) } else { Ok(()) };
    probe
        .and_then(|()| {
            let file = directory.join(format!(".ventana-write-probe-{}", std::process::id()));
            std::fs::write(&file, b"").and_then(|()| std::fs::remove_file(&file))
        })
        .map_err(|cause| StoreError::NotWritable { path: path.display().to_string(), cause })
}

/// SQLite has one writer at a time. Its busy handler retries blindly, so a
/// writer that commits and begins again at once (the scheduler in a surge)
/// could starve everyone else; this first-come-first-served queue in front
/// of `BEGIN IMMEDIATE` hands the write lock out in arrival order instead.
#[derive(Clone, Debug, Default)]
pub(super) struct WriteQueue(Arc<Mutex<()>>);

/// A transaction's turn in the write queue: the next one waits until it is dropped.
pub(super) struct Turn {
    _guard: OwnedMutexGuard<()>,
}

/// Waits for this transaction's turn, then takes the write lock at once.
pub(super) async fn begin(pool: &SqlitePool, queue: &WriteQueue) -> StoreResult<(Transaction<'static, Sqlite>, Turn)> {
    let turn = Turn { _guard: queue.0.clone().lock_owned().await };
    Ok((pool.begin_with("BEGIN IMMEDIATE").await?, turn))
}
