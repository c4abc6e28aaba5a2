//! Durable storage with sqlx: SQLite (embedded default, WAL) or PostgreSQL.
//! One set of SQL serves both (instants are Unix milliseconds in BIGINT
//! columns, placeholders are `$n`); the few backend-specific statements
//! (locking) are explicit. Migrations live in `migrations/{sqlite,postgres}`.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Notify, watch};

use crate::audit::{AuditEvent, AuditRow, GENESIS, canonical, chain_hash};

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

/// A stored intent.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct IntentRow {
    pub tenant: String,
    pub intent_id: String,
    pub debtor_id: String,
    pub debt_id: Option<String>,
    pub channel: String,
    pub jurisdiction: String,
    pub priority: i64,
    pub body: String,
    pub body_hash: String,
    pub status: String,
    pub next_eval_at: Option<i64>,
    pub decision: String,
    pub dispatch_id: Option<String>,
    pub attempt: i64,
    pub outcome: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A released contact handed (or to be handed) to an adapter.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DispatchRow {
    pub dispatch_id: String,
    pub tenant: String,
    pub intent_id: String,
    pub debtor_id: String,
    pub channel: String,
    pub priority: i64,
    pub released_at: i64,
    pub not_after: i64,
    pub state: String,
    pub lease_expires_at: Option<i64>,
    pub attempt: i64,
}

/// One past contact of a debtor.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub debt_id: Option<String>,
    pub channel: String,
    pub at: i64,
    pub outcome: String,
    pub dispatch_id: Option<String>,
}

/// A contact event with its debtor (read ahead for many debtors).
#[derive(sqlx::FromRow)]
struct DebtorEventRow {
    debtor_id: String,
    #[sqlx(flatten)]
    event: EventRow,
}

/// Preferences with their debtor (read ahead for many debtors).
#[derive(sqlx::FromRow)]
struct DebtorPreferencesRow {
    debtor_id: String,
    #[sqlx(flatten)]
    preferences: PreferencesRow,
}

/// A debtor's stored preferences.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PreferencesRow {
    pub prefs: String,
    pub source: String,
    pub updated_at: i64,
}

/// A key not revoked, as authentication needs it (and caches it).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub tenant: String,
    pub roles: String,
    pub key_prefix: String,
    /// Unix ms at and after which the key is refused; checked on every call,
    /// cached or not.
    pub expires_at: Option<i64>,
}

/// What `keys list` shows of a key: never the key or its hash.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyInfo {
    pub key_prefix: String,
    pub tenant: String,
    pub roles: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A key to store.
#[derive(Clone, Debug)]
pub struct NewKeyRow<'a> {
    pub key_hash: &'a str,
    pub key_prefix: &'a str,
    pub tenant: &'a str,
    /// Comma-separated role names.
    pub roles: &'a str,
    pub name: Option<&'a str>,
    pub expires_at: Option<i64>,
}

/// A connection pool to one of the two backends.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool, WriteQueue),
    Postgres(PgPool),
}

/// SQLite has one writer at a time. Its busy handler retries blindly, so a
/// writer that commits and begins again at once (the scheduler in a surge)
/// could starve everyone else; this first-come-first-served queue in front
/// of `BEGIN IMMEDIATE` hands the write lock out in arrival order instead.
#[derive(Clone, Debug, Default)]
pub struct WriteQueue(std::sync::Arc<tokio::sync::Mutex<()>>);

/// An open transaction, with the audit events to append when it commits.
pub struct Tx {
    db: TxDb,
    audit: Vec<AuditEvent>,
    /// New rows not sent yet: written in multi-row statements before anything
    /// that could see them runs, and at commit (one statement per 500 rows
    /// instead of one per row).
    pending: Pending,
    /// Rows read ahead for a group of submissions (see `prefetch`).
    read_ahead: Option<ReadAhead>,
    /// SQLite: this transaction's turn in the write queue, until it ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// PostgreSQL: the debtors (tenant, debtor id) this transaction holds locked.
    locked: std::collections::HashSet<(String, String)>,
}

/// Inserts waiting in a `Tx`.
#[derive(Default)]
struct Pending {
    intents: Vec<IntentRow>,
    /// Updates of stored intents, last write per (tenant, intent id) wins.
    intent_updates: HashMap<(String, String), IntentRow>,
    dispatches: Vec<DispatchRow>,
    /// Updates of stored dispatches, by dispatch id.
    dispatch_updates: HashMap<String, DispatchRow>,
    events: Vec<(String, String, EventRow)>,
}

impl Pending {
    fn touches_intents(&self) -> bool {
        !self.intents.is_empty() || !self.intent_updates.is_empty()
    }

    fn touches_dispatches(&self) -> bool {
        !self.dispatches.is_empty() || !self.dispatch_updates.is_empty()
    }
}

/// What `prefetch` read: absent rows are `None`. Valid until this
/// transaction changes an existing row.
struct ReadAhead {
    since: i64,
    intents: HashMap<(String, String), Option<IntentRow>>,
    histories: HashMap<(String, String), Vec<EventRow>>,
    preferences: HashMap<(String, String), Option<PreferencesRow>>,
}

/// Keys per `IN (…)` list.
const KEYS_PER_READ: usize = 500;

/// `$first, …` (PostgreSQL) or `?, …` (SQLite): `count` placeholders.
fn placeholders(db: &TxDb, first: usize, count: usize) -> String {
    let numbered = matches!(db, TxDb::Postgres(_));
    let list: Vec<String> =
        (first..first + count).map(|n| if numbered { format!("${n}") } else { "?".into() }).collect();
    list.join(", ")
}

/// Rows per multi-row INSERT (SQLite allows 32,766 parameters, PostgreSQL 65,535).
const ROWS_PER_INSERT: usize = 500;

/// `(…), (…), …`: `rows` rows of `casts.len()` placeholders, `$n::cast`
/// on PostgreSQL (an empty cast adds none), `?` on SQLite, whose lookup of
/// numbered parameters is linear per parameter (quadratic over a statement
/// of thousands).
fn values(db: &TxDb, casts: &[&str], rows: usize) -> String {
    let numbered = matches!(db, TxDb::Postgres(_));
    let columns = casts.len();
    let mut sql = String::with_capacity(rows * columns * 8);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for (column, cast) in casts.iter().enumerate() {
            if column > 0 {
                sql.push_str(", ");
            }
            if !numbered {
                sql.push('?');
            } else if cast.is_empty() {
                sql.push_str(&format!("${}", row * columns + column + 1));
            } else {
                sql.push_str(&format!("${}::{cast}", row * columns + column + 1));
            }
        }
        sql.push(')');
    }
    sql
}

/// The backend's transaction.
enum TxDb {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs the same code against whichever backend `$value` holds.
macro_rules! either {
    ($value:expr, $enum:ident, |$c:ident| $body:expr) => {
        match $value {
            $enum::Sqlite($c, ..) => $body,
            $enum::Postgres($c) => $body,
        }
    };
}

/// Like `either!` for statements whose result is not needed.
macro_rules! either_run {
    ($value:expr, $enum:ident, |$c:ident| $body:expr) => {
        match $value {
            $enum::Sqlite($c, ..) => {
                $body;
            }
            $enum::Postgres($c) => {
                $body;
            }
        }
    };
}

/// The columns of `intents`, in `IntentRow` order.
macro_rules! intent_columns {
    () => {
        "tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, body_hash, status, \
         next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at"
    };
}

/// The columns of `audit_log`, in `AuditRow` order.
macro_rules! audit_columns {
    () => {
        "tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, time_zone, local_time, \
         decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, prev_hash, hash"
    };
}

/// The columns of `dispatches`, in `DispatchRow` order.
macro_rules! dispatch_columns {
    () => {
        "dispatch_id, tenant, intent_id, debtor_id, channel, priority, released_at, not_after, state, \
         lease_expires_at, attempt"
    };
}

/// One intent by tenant and id.
const SELECT_INTENT: &str = concat!("SELECT ", intent_columns!(), " FROM intents WHERE tenant = $1 AND intent_id = $2");
/// Most events a history read returns: the newest ones, which are the ones
/// every cap, gap and cooldown decision depends on (a cap's limit is far below
/// this; see `keep_newest`). The SQL below spells the same number.
const HISTORY_LIMIT: usize = 10_000;
/// A debtor's newest events since an instant (at most `HISTORY_LIMIT`), oldest first.
const SELECT_HISTORY: &str = "SELECT debt_id, channel, at, outcome, dispatch_id FROM \
     (SELECT debt_id, channel, at, outcome, dispatch_id FROM contact_events \
      WHERE tenant = $1 AND debtor_id = $2 AND at >= $3 ORDER BY at DESC LIMIT 10000) AS recent ORDER BY at";
/// A debtor's preferences.
const SELECT_PREFERENCES: &str =
    "SELECT prefs, source, updated_at FROM preferences WHERE tenant = $1 AND debtor_id = $2";

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

/// Drops all but the newest `HISTORY_LIMIT` events of a history sorted oldest
/// first. Decisions stay exact: a gap or cooldown looks at the newest events,
/// and any window that reaches past the oldest kept event holds all
/// `HISTORY_LIMIT` of them, more than any cap allows.
fn keep_newest(history: &mut Vec<EventRow>) {
    let excess = history.len().saturating_sub(HISTORY_LIMIT);
    history.drain(..excess);
}

impl Store {
    /// Connects to `url` (`sqlite://FILE` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
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
            let pool = pool.connect_with(options).await?;
            Store::Sqlite(pool, WriteQueue::default())
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Plans are made per execution: a plan cached while a table was small
            // (a fresh database, autovacuum off or behind a bulk load) would keep
            // scanning it sequentially as it grows.
            let options = PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
            Store::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Store::Sqlite(pool, _) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Which backend this is, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(..) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether the database runs one write transaction at a time (SQLite):
    /// more concurrent writers would only wait for each other.
    pub fn single_writer(&self) -> bool {
        matches!(self, Store::Sqlite(..))
    }

    /// Whether a claim (`Tx::claim_due`) should commit before its intents are
    /// re-evaluated. PostgreSQL: yes, then smaller transactions follow, so
    /// replicas and submissions for the same debtors wait less. SQLite has one
    /// writer anyway: the claim and every re-evaluation share one transaction
    /// (one fsync).
    pub fn claims_commit_separately(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Runs `sql` (one or more statements, no parameters) as written, outside
    /// any `Tx`: no write queue, no audit event, no check of any kind. For
    /// operators' repair scripts and for tests and tools that damage, fill or
    /// inspect the database behind the service's back; the service itself
    /// never calls it. Returns how many rows the statements changed.
    pub async fn execute_unchecked(&self, sql: &str) -> StoreResult<u64> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        Ok(either!(self, Store, |pool| sqlx::raw_sql(sql).execute(pool).await?.rows_affected()))
    }

    /// Closes the pool: waits for the connections in use to come back, then
    /// closes every one. Later calls fail as `StoreError::Unavailable`.
    pub async fn close(&self) {
        either_run!(self, Store, |pool| pool.close().await);
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), which serializes every cap check.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Store::Sqlite(pool, queue) => {
                let turn = queue.0.clone().lock_owned().await;
                let db = TxDb::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?);
                Tx {
                    db,
                    audit: Vec::new(),
                    pending: Pending::default(),
                    read_ahead: None,
                    _turn: Some(turn),
                    locked: Default::default(),
                }
            }
            Store::Postgres(pool) => Tx {
                db: TxDb::Postgres(pool.begin().await?),
                audit: Vec::new(),
                pending: Pending::default(),
                read_ahead: None,
                _turn: None,
                locked: Default::default(),
            },
        })
    }

    /// The earliest `next_eval_at` of a deferred intent.
    pub async fn next_due(&self) -> StoreResult<Option<i64>> {
        let sql = "SELECT MIN(next_eval_at) FROM intents WHERE status = 'deferred'";
        Ok(either!(self, Store, |pool| sqlx::query_scalar(sql).fetch_one(pool).await?))
    }

    /// (due now, deferred in all, held) intents, for the queue gauges.
    pub async fn queue_depth(&self, now: i64) -> StoreResult<(i64, i64, i64)> {
        let sql = "SELECT COALESCE(SUM(CASE WHEN next_eval_at <= $1 THEN 1 ELSE 0 END), 0), COUNT(*), \
                   (SELECT COUNT(*) FROM intents WHERE status = 'held') FROM intents WHERE status = 'deferred'";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(now).fetch_one(pool).await?))
    }

    /// Tells the other replicas that something may be due sooner (PostgreSQL
    /// NOTIFY on `ventana_wakeup`; nothing to do for the single SQLite process).
    pub async fn notify_wakeup(&self) -> StoreResult<()> {
        if let Store::Postgres(pool) = self {
            sqlx::query("SELECT pg_notify('ventana_wakeup', '')").execute(pool).await?;
        }
        Ok(())
    }

    /// Until `shutdown` turns true, wakes `wakeup` whenever a replica (this
    /// one included) calls `notify_wakeup`. PostgreSQL: LISTENs on a
    /// connection of its own and reconnects after errors. SQLite: one process,
    /// nothing to listen to; returns at once.
    pub async fn listen_for_wakeups(&self, wakeup: &Notify, mut shutdown: watch::Receiver<bool>) {
        let Store::Postgres(pool) = self else { return };
        while !*shutdown.borrow() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for wake-ups; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen("ventana_wakeup").await {
                tracing::warn!(error = %e, "cannot LISTEN ventana_wakeup; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            loop {
                tokio::select! {
                    notification = listener.recv() => match notification {
                        Ok(_) => wakeup.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "wake-up listener lost its connection");
                            break;
                        }
                    },
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    pub async fn get_intent(&self, tenant: &str, intent_id: &str) -> StoreResult<Option<IntentRow>> {
        let sql = SELECT_INTENT;
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(tenant).bind(intent_id).fetch_optional(pool).await?))
    }

    /// A page of `tenant`'s intents in creation order, after the (created
    /// at, intent id) `after`, optionally of one debtor and in one status.
    pub async fn list_intents(
        &self,
        tenant: &str,
        debtor_id: Option<&str>,
        status: Option<&str>,
        after: (i64, &str),
        limit: i64,
    ) -> StoreResult<Vec<IntentRow>> {
        let sql = concat!(
            "SELECT ",
            intent_columns!(),
            " FROM intents WHERE tenant = $1 AND (CAST($2 AS TEXT) IS NULL OR debtor_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR status = $3) AND (created_at > $4 OR (created_at = $4 AND intent_id > $5)) \
             ORDER BY created_at, intent_id LIMIT $6"
        );
        Ok(either!(self, Store, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(status)
            .bind(after.0)
            .bind(after.1)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// A debtor's newest contact events since `since` (at most 10,000), oldest first.
    pub async fn history(&self, tenant: &str, debtor_id: &str, since: i64) -> StoreResult<Vec<EventRow>> {
        let sql = SELECT_HISTORY;
        Ok(either!(self, Store, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(since)
            .fetch_all(pool)
            .await?))
    }

    pub async fn preferences(&self, tenant: &str, debtor_id: &str) -> StoreResult<Option<PreferencesRow>> {
        let sql = SELECT_PREFERENCES;
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(tenant).bind(debtor_id).fetch_optional(pool).await?))
    }

    /// The tenant, roles and expiry of a key not revoked, by its hash.
    pub async fn find_key(&self, key_hash: &str) -> StoreResult<Option<KeyRow>> {
        let sql =
            "SELECT tenant, roles, key_prefix, expires_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(key_hash).fetch_optional(pool).await?))
    }

    /// Every key (of `tenant`, if given), by tenant then age.
    pub async fn list_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<KeyInfo>> {
        let sql = "SELECT key_prefix, tenant, roles, name, created_at, expires_at, revoked_at FROM api_keys \
                   WHERE $1 IS NULL OR tenant = $1 ORDER BY tenant, created_at, key_prefix";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(tenant).fetch_all(pool).await?))
    }

    /// The keys (revoked or not) whose prefix is `prefix`.
    pub async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<KeyInfo>> {
        let sql = "SELECT key_prefix, tenant, roles, name, created_at, expires_at, revoked_at FROM api_keys \
                   WHERE key_prefix = $1 ORDER BY created_at";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(prefix).fetch_all(pool).await?))
    }

    /// Revokes the key with `prefix` if it is not revoked yet; returns how many were.
    pub async fn revoke_key(&self, prefix: &str, now: i64) -> StoreResult<u64> {
        let sql = "UPDATE api_keys SET revoked_at = $2 WHERE key_prefix = $1 AND revoked_at IS NULL";
        Ok(either!(self, Store, |pool| sqlx::query(sql).bind(prefix).bind(now).execute(pool).await?.rows_affected()))
    }

    /// Revokes every key of `tenant` named `name` not revoked yet; returns their prefixes.
    pub async fn revoke_named_keys(&self, tenant: &str, name: &str, now: i64) -> StoreResult<Vec<String>> {
        let sql = "UPDATE api_keys SET revoked_at = $3 WHERE tenant = $1 AND name = $2 AND revoked_at IS NULL \
                   RETURNING key_prefix";
        Ok(either!(self, Store, |pool| sqlx::query_scalar(sql)
            .bind(tenant)
            .bind(name)
            .bind(now)
            .fetch_all(pool)
            .await?))
    }

    /// Tenants that have a key not revoked.
    pub async fn key_tenants(&self) -> StoreResult<Vec<String>> {
        let sql = "SELECT DISTINCT tenant FROM api_keys WHERE revoked_at IS NULL ORDER BY tenant";
        Ok(either!(self, Store, |pool| sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    /// Tenants that have an audit chain.
    pub async fn audit_tenants(&self) -> StoreResult<Vec<String>> {
        let sql = "SELECT tenant FROM audit_heads ORDER BY tenant";
        Ok(either!(self, Store, |pool| sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    /// The head (last sequence and hash) of a tenant's chain.
    pub async fn audit_head(&self, tenant: &str) -> StoreResult<Option<(i64, String)>> {
        let sql = "SELECT seq, hash FROM audit_heads WHERE tenant = $1";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(tenant).fetch_optional(pool).await?))
    }

    /// Where a purged chain starts: (last purged seq, its hash, purged at, signature).
    pub async fn audit_checkpoint(&self, tenant: &str) -> StoreResult<Option<(i64, String, i64, String)>> {
        let sql = "SELECT seq, hash, purged_at, signature FROM audit_checkpoints WHERE tenant = $1";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(tenant).fetch_optional(pool).await?))
    }

    /// Up to `limit` events of a tenant with `seq > after` and `seq <= last`, in order.
    pub async fn audit_page(&self, tenant: &str, after: i64, last: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        );
        Ok(either!(self, Store, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(after)
            .bind(last)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// The sequence range of a tenant's events with `from <= at < to`.
    pub async fn audit_seq_range(&self, tenant: &str, from: i64, to: i64) -> StoreResult<(Option<i64>, Option<i64>)> {
        let sql = "SELECT MIN(seq), MAX(seq) FROM audit_log WHERE tenant = $1 AND at >= $2 AND at < $3";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).bind(tenant).bind(from).bind(to).fetch_one(pool).await?))
    }

    /// The hash of one event.
    pub async fn audit_hash(&self, tenant: &str, seq: i64) -> StoreResult<Option<String>> {
        let sql = "SELECT hash FROM audit_log WHERE tenant = $1 AND seq = $2";
        Ok(either!(self, Store, |pool| sqlx::query_scalar(sql).bind(tenant).bind(seq).fetch_optional(pool).await?))
    }

    /// Deletes a tenant's events up to `seq` and records the signed checkpoint, in one transaction.
    pub async fn purge_audit(&self, tenant: &str, seq: i64, hash: &str, now: i64, signature: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let deleted =
            either!(&mut tx.db, TxDb, |db| sqlx::query("DELETE FROM audit_log WHERE tenant = $1 AND seq <= $2")
                .bind(tenant)
                .bind(seq)
                .execute(&mut **db)
                .await?
                .rows_affected());
        let upsert = "INSERT INTO audit_checkpoints (tenant, seq, hash, purged_at, signature) VALUES ($1, $2, $3, $4, $5) \
                      ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
                      purged_at = excluded.purged_at, signature = excluded.signature";
        either_run!(&mut tx.db, TxDb, |db| sqlx::query(upsert)
            .bind(tenant)
            .bind(seq)
            .bind(hash)
            .bind(now)
            .bind(signature)
            .execute(&mut **db)
            .await?);
        tx.commit().await?;
        Ok(deleted)
    }

    /// Records the content of a loaded rules file (once per version hash).
    pub async fn save_rules_snapshot(
        &self,
        version_hash: &str,
        file: &str,
        content: &str,
        now: i64,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO rules_snapshots (version_hash, file, content, loaded_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (version_hash, file) DO NOTHING";
        either_run!(self, Store, |pool| sqlx::query(sql)
            .bind(version_hash)
            .bind(file)
            .bind(content)
            .bind(now)
            .execute(pool)
            .await?);
        Ok(())
    }

    /// Every stored rules file, newest first: (version hash, file, content).
    pub async fn rules_snapshots(&self) -> StoreResult<Vec<(String, String, String)>> {
        let sql = "SELECT version_hash, file, content FROM rules_snapshots ORDER BY loaded_at DESC";
        Ok(either!(self, Store, |pool| sqlx::query_as(sql).fetch_all(pool).await?))
    }

    pub async fn insert_key(&self, key: &NewKeyRow<'_>, now: i64) -> StoreResult<()> {
        let sql = "INSERT INTO api_keys (key_hash, key_prefix, tenant, roles, name, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        either_run!(self, Store, |pool| sqlx::query(sql)
            .bind(key.key_hash)
            .bind(key.key_prefix)
            .bind(key.tenant)
            .bind(key.roles)
            .bind(key.name)
            .bind(now)
            .bind(key.expires_at)
            .execute(pool)
            .await?);
        Ok(())
    }
}

impl Tx {
    /// Queues an audit event; it is appended to its tenant's chain at commit.
    pub fn audit(&mut self, event: AuditEvent) {
        self.audit.push(event);
    }

    /// Appends the queued audit events, then commits. Chain heads are
    /// locked last and in tenant order, so appends never deadlock.
    pub async fn commit(mut self) -> StoreResult<()> {
        self.flush().await?;
        let events = std::mem::take(&mut self.audit);
        let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
        tenants.sort();
        tenants.dedup();
        for tenant in tenants {
            let (mut seq, mut prev) = self.lock_head(tenant).await?;
            let mut chained = Vec::new();
            for event in events.iter().filter(|e| e.tenant == tenant) {
                seq += 1;
                let hash = chain_hash(&prev, &canonical(event, seq));
                chained.push((event, seq, std::mem::replace(&mut prev, hash.clone()), hash));
            }
            for chunk in chained.chunks(ROWS_PER_INSERT) {
                self.insert_audit(chunk).await?;
            }
            let sql = "UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant = $1";
            either_run!(&mut self.db, TxDb, |tx| sqlx::query(sql)
                .bind(tenant)
                .bind(seq)
                .bind(&prev)
                .execute(&mut **tx)
                .await?);
        }
        either_run!(self.db, TxDb, |tx| tx.commit().await?);
        Ok(())
    }

    /// Sends the pending inserts.
    async fn flush(&mut self) -> StoreResult<()> {
        let pending = std::mem::take(&mut self.pending);
        for chunk in pending.intents.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO intents ({}) VALUES {}",
                intent_columns!(),
                values(&self.db, &[""; 17], chunk.len())
            );
            either_run!(&mut self.db, TxDb, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    query = query
                        .bind(&row.tenant)
                        .bind(&row.intent_id)
                        .bind(&row.debtor_id)
                        .bind(&row.debt_id)
                        .bind(&row.channel)
                        .bind(&row.jurisdiction)
                        .bind(row.priority)
                        .bind(&row.body)
                        .bind(&row.body_hash)
                        .bind(&row.status)
                        .bind(row.next_eval_at)
                        .bind(&row.decision)
                        .bind(&row.dispatch_id)
                        .bind(row.attempt)
                        .bind(&row.outcome)
                        .bind(row.created_at)
                        .bind(row.updated_at);
                }
                query.execute(&mut **tx).await?
            });
        }
        for chunk in pending.dispatches.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO dispatches ({}) VALUES {}",
                dispatch_columns!(),
                values(&self.db, &[""; 11], chunk.len())
            );
            either_run!(&mut self.db, TxDb, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    query = query
                        .bind(&row.dispatch_id)
                        .bind(&row.tenant)
                        .bind(&row.intent_id)
                        .bind(&row.debtor_id)
                        .bind(&row.channel)
                        .bind(row.priority)
                        .bind(row.released_at)
                        .bind(row.not_after)
                        .bind(&row.state)
                        .bind(row.lease_expires_at)
                        .bind(row.attempt);
                }
                query.execute(&mut **tx).await?
            });
        }
        let intent_updates: Vec<IntentRow> = pending.intent_updates.into_values().collect();
        for chunk in intent_updates.chunks(ROWS_PER_INSERT) {
            let casts = ["text", "text", "text", "bigint", "text", "text", "bigint", "text", "bigint"];
            let sql = format!(
                "UPDATE intents SET status = v.column3, next_eval_at = v.column4, decision = v.column5, \
                 dispatch_id = v.column6, attempt = v.column7, outcome = v.column8, updated_at = v.column9 \
                 FROM (VALUES {}) AS v WHERE intents.tenant = v.column1 AND intents.intent_id = v.column2",
                values(&self.db, &casts, chunk.len())
            );
            either_run!(&mut self.db, TxDb, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    query = query
                        .bind(&row.tenant)
                        .bind(&row.intent_id)
                        .bind(&row.status)
                        .bind(row.next_eval_at)
                        .bind(&row.decision)
                        .bind(&row.dispatch_id)
                        .bind(row.attempt)
                        .bind(&row.outcome)
                        .bind(row.updated_at);
                }
                query.execute(&mut **tx).await?
            });
        }
        let dispatch_updates: Vec<DispatchRow> = pending.dispatch_updates.into_values().collect();
        for chunk in dispatch_updates.chunks(ROWS_PER_INSERT) {
            let casts = ["text", "bigint", "text", "bigint", "bigint"];
            let sql = format!(
                "UPDATE dispatches SET not_after = v.column2, state = v.column3, lease_expires_at = v.column4, \
                 attempt = v.column5 FROM (VALUES {}) AS v WHERE dispatches.dispatch_id = v.column1",
                values(&self.db, &casts, chunk.len())
            );
            either_run!(&mut self.db, TxDb, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    query = query
                        .bind(&row.dispatch_id)
                        .bind(row.not_after)
                        .bind(&row.state)
                        .bind(row.lease_expires_at)
                        .bind(row.attempt);
                }
                query.execute(&mut **tx).await?
            });
        }
        for chunk in pending.events.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO contact_events (tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id) VALUES {}",
                values(&self.db, &[""; 7], chunk.len())
            );
            either_run!(&mut self.db, TxDb, |tx| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (tenant, debtor_id, event) in chunk {
                    query = query
                        .bind(tenant)
                        .bind(debtor_id)
                        .bind(&event.debt_id)
                        .bind(&event.channel)
                        .bind(event.at)
                        .bind(&event.outcome)
                        .bind(&event.dispatch_id);
                }
                query.execute(&mut **tx).await?
            });
        }
        Ok(())
    }

    /// The head of `tenant`'s chain, locked until the transaction ends.
    async fn lock_head(&mut self, tenant: &str) -> StoreResult<(i64, String)> {
        let insert = "INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (tenant) DO NOTHING";
        either_run!(&mut self.db, TxDb, |tx| sqlx::query(insert).bind(tenant).bind(GENESIS).execute(&mut **tx).await?);
        Ok(match &mut self.db {
            TxDb::Sqlite(tx) => {
                sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_one(&mut **tx)
                    .await?
            }
            TxDb::Postgres(tx) => {
                sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE")
                    .bind(tenant)
                    .fetch_one(&mut **tx)
                    .await?
            }
        })
    }

    /// Appends chained events: (event, seq, previous hash, hash).
    async fn insert_audit(&mut self, chunk: &[(&AuditEvent, i64, String, String)]) -> StoreResult<()> {
        let sql =
            format!("INSERT INTO audit_log ({}) VALUES {}", audit_columns!(), values(&self.db, &[""; 20], chunk.len()));
        either_run!(&mut self.db, TxDb, |tx| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (e, seq, prev_hash, hash) in chunk {
                query = query
                    .bind(&e.tenant)
                    .bind(*seq)
                    .bind(e.at)
                    .bind(&e.kind)
                    .bind(&e.intent_id)
                    .bind(&e.debtor_id)
                    .bind(&e.debt_id)
                    .bind(&e.channel)
                    .bind(&e.jurisdiction)
                    .bind(&e.time_zone)
                    .bind(&e.local_time)
                    .bind(&e.decision)
                    .bind(&e.reason_codes)
                    .bind(&e.rule_ids)
                    .bind(&e.citations)
                    .bind(&e.rules_version)
                    .bind(&e.outcome)
                    .bind(&e.detail)
                    .bind(prev_hash)
                    .bind(hash);
            }
            query.execute(&mut **tx).await?
        });
        Ok(())
    }

    /// Claims up to `limit` deferred intents due at `now`, earliest and
    /// highest priority first, by moving their `next_eval_at` to
    /// `claim_until`: other replicas no longer see them as due, and if this
    /// one dies they become due again then. PostgreSQL skips rows another
    /// replica is claiming at the same moment. Returns (tenant, intent id, debtor id).
    pub async fn claim_due(
        &mut self,
        now: i64,
        claim_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<(String, String, String)>> {
        macro_rules! claim {
            ($lock:literal) => {
                concat!(
                    "UPDATE intents SET next_eval_at = $2 WHERE (tenant, intent_id) IN (SELECT tenant, intent_id FROM intents \
                     WHERE status = 'deferred' AND next_eval_at <= $1 ORDER BY next_eval_at, priority DESC LIMIT $3",
                    $lock,
                    ") RETURNING tenant, intent_id, debtor_id"
                )
            };
        }
        Ok(match &mut self.db {
            TxDb::Sqlite(tx) => {
                sqlx::query_as(claim!("")).bind(now).bind(claim_until).bind(limit).fetch_all(&mut **tx).await?
            }
            TxDb::Postgres(tx) => {
                sqlx::query_as(claim!(" FOR UPDATE SKIP LOCKED"))
                    .bind(now)
                    .bind(claim_until)
                    .bind(limit)
                    .fetch_all(&mut **tx)
                    .await?
            }
        })
    }

    /// Serializes work on one debtor until the transaction ends. SQLite's
    /// `BEGIN IMMEDIATE` already serializes all writers; PostgreSQL takes a
    /// transaction-scoped advisory lock keyed by tenant and debtor.
    pub async fn lock_debtor(&mut self, tenant: &str, debtor_id: &str) -> StoreResult<()> {
        self.lock_debtors(&[(tenant, debtor_id)]).await
    }

    /// Locks these debtors in the order given, in one statement (PostgreSQL
    /// evaluates a volatile select list after ORDER BY); debtors this
    /// transaction holds already are skipped.
    pub async fn lock_debtors(&mut self, debtors: &[(&str, &str)]) -> StoreResult<()> {
        let TxDb::Postgres(tx) = &mut self.db else { return Ok(()) };
        let (tenants, ids): (Vec<&str>, Vec<&str>) = debtors
            .iter()
            .filter(|(tenant, debtor)| !self.locked.contains(&(tenant.to_string(), debtor.to_string())))
            .copied()
            .unzip();
        if tenants.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended(k.tenant || chr(31) || k.debtor, 0)) \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(tenant, debtor, n) ORDER BY k.n",
        )
        .bind(&tenants)
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
        self.locked.extend(tenants.into_iter().zip(ids).map(|(t, d)| (t.to_string(), d.to_string())));
        Ok(())
    }

    /// Like `lock_debtors` but never waits: for each debtor, whether this
    /// transaction now holds it (`false`: another transaction does). Used
    /// where rows are already locked, so that lock order can never form a cycle.
    pub async fn try_lock_debtors(&mut self, debtors: &[(&str, &str)]) -> StoreResult<Vec<bool>> {
        let TxDb::Postgres(tx) = &mut self.db else { return Ok(vec![true; debtors.len()]) };
        let (tenants, ids): (Vec<&str>, Vec<&str>) = debtors.iter().copied().unzip();
        let held: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(k.tenant || chr(31) || k.debtor, 0)) \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(tenant, debtor, n) ORDER BY k.n",
        )
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        for ((tenant, debtor), held) in debtors.iter().zip(&held) {
            if *held {
                self.locked.insert((tenant.to_string(), debtor.to_string()));
            }
        }
        Ok(held)
    }

    /// Reads at once what `get_intent`, `history` (since `since`) and
    /// `preferences` would read one by one for these intents and debtors, so
    /// a group of N submissions costs three reads per tenant, not 3N.
    pub async fn prefetch(&mut self, intents: &[(&str, &str, &str)], since: i64) -> StoreResult<()> {
        let mut read =
            ReadAhead { since, intents: HashMap::new(), histories: HashMap::new(), preferences: HashMap::new() };
        let mut tenants: Vec<&str> = intents.iter().map(|(tenant, _, _)| *tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        for tenant in tenants {
            let mut ids: Vec<&str> = intents.iter().filter(|i| i.0 == tenant).map(|i| i.1).collect();
            let mut debtors: Vec<&str> = intents.iter().filter(|i| i.0 == tenant).map(|i| i.2).collect();
            for list in [&mut ids, &mut debtors] {
                list.sort_unstable();
                list.dedup();
            }
            for chunk in ids.chunks(KEYS_PER_READ) {
                let sql = format!(
                    "SELECT {} FROM intents WHERE tenant = {} AND intent_id IN ({})",
                    intent_columns!(),
                    placeholders(&self.db, 1, 1),
                    placeholders(&self.db, 2, chunk.len())
                );
                let rows: Vec<IntentRow> = either!(&mut self.db, TxDb, |tx| {
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    query.fetch_all(&mut **tx).await?
                });
                for id in chunk {
                    read.intents.insert((tenant.to_string(), id.to_string()), None);
                }
                for row in rows {
                    read.intents.insert((row.tenant.clone(), row.intent_id.clone()), Some(row));
                }
            }
            for chunk in debtors.chunks(KEYS_PER_READ) {
                let sql = format!(
                    "SELECT debtor_id, debt_id, channel, at, outcome, dispatch_id FROM \
                     (SELECT debtor_id, debt_id, channel, at, outcome, dispatch_id, \
                      ROW_NUMBER() OVER (PARTITION BY debtor_id ORDER BY at DESC) AS newness FROM contact_events \
                      WHERE tenant = {} AND at >= {} AND debtor_id IN ({})) AS recent \
                     WHERE newness <= 10000 ORDER BY at",
                    placeholders(&self.db, 1, 1),
                    placeholders(&self.db, 2, 1),
                    placeholders(&self.db, 3, chunk.len())
                );
                let events: Vec<DebtorEventRow> = either!(&mut self.db, TxDb, |tx| {
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(since);
                    for debtor in chunk {
                        query = query.bind(*debtor);
                    }
                    query.fetch_all(&mut **tx).await?
                });
                let sql = format!(
                    "SELECT debtor_id, prefs, source, updated_at FROM preferences WHERE tenant = {} AND debtor_id IN ({})",
                    placeholders(&self.db, 1, 1),
                    placeholders(&self.db, 2, chunk.len())
                );
                let preferences: Vec<DebtorPreferencesRow> = either!(&mut self.db, TxDb, |tx| {
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant);
                    for debtor in chunk {
                        query = query.bind(*debtor);
                    }
                    query.fetch_all(&mut **tx).await?
                });
                for debtor in chunk {
                    let key = (tenant.to_string(), debtor.to_string());
                    read.histories.insert(key.clone(), Vec::new());
                    read.preferences.insert(key, None);
                }
                for e in events {
                    if let Some(history) = read.histories.get_mut(&(tenant.to_string(), e.debtor_id)) {
                        history.push(e.event);
                    }
                }
                for p in preferences {
                    read.preferences.insert((tenant.to_string(), p.debtor_id), Some(p.preferences));
                }
            }
        }
        self.read_ahead = Some(read);
        Ok(())
    }

    /// One intent, including one inserted earlier in this transaction.
    pub async fn get_intent(&mut self, tenant: &str, intent_id: &str) -> StoreResult<Option<IntentRow>> {
        if let Some(row) = self.pending.intents.iter().find(|r| r.tenant == tenant && r.intent_id == intent_id) {
            return Ok(Some(row.clone()));
        }
        let key = (tenant.to_string(), intent_id.to_string());
        if let Some(row) = self.pending.intent_updates.get(&key) {
            return Ok(Some(row.clone()));
        }
        if let Some(known) = self.read_ahead.as_ref().and_then(|r| r.intents.get(&key)) {
            return Ok(known.clone());
        }
        let sql = SELECT_INTENT;
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(tenant)
            .bind(intent_id)
            .fetch_optional(&mut **tx)
            .await?))
    }

    /// Inserts an intent (sent with the next flush).
    pub fn insert_intent(&mut self, row: &IntentRow) {
        self.pending.intents.push(row.clone());
    }

    /// Writes the mutable fields of an intent (sent with the next flush).
    pub async fn update_intent(&mut self, row: &IntentRow) -> StoreResult<()> {
        if let Some(read) = self.read_ahead.as_mut() {
            read.intents.insert((row.tenant.clone(), row.intent_id.clone()), Some(row.clone()));
        }
        match self.pending.intents.iter_mut().find(|r| r.tenant == row.tenant && r.intent_id == row.intent_id) {
            Some(inserted) => *inserted = row.clone(),
            None => {
                self.pending.intent_updates.insert((row.tenant.clone(), row.intent_id.clone()), row.clone());
            }
        }
        Ok(())
    }

    /// Pending (deferred or released) intents of a debtor, optionally of one debt.
    pub async fn pending_intents(
        &mut self,
        tenant: &str,
        debtor_id: &str,
        debt_id: Option<&str>,
    ) -> StoreResult<Vec<IntentRow>> {
        if self.pending.touches_intents() {
            self.flush().await?;
        }
        let sql = concat!(
            "SELECT ",
            intent_columns!(),
            " FROM intents WHERE tenant = $1 AND debtor_id = $2 AND (CAST($3 AS TEXT) IS NULL OR debt_id = $3) \
             AND status IN ('deferred', 'released', 'held', 'leased') ORDER BY created_at, intent_id"
        );
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(debt_id)
            .fetch_all(&mut **tx)
            .await?))
    }

    /// Makes a debtor's deferred intents due now (their rules or preferences changed).
    pub async fn wake_debtor(&mut self, tenant: &str, debtor_id: &str, now: i64) -> StoreResult<()> {
        self.read_ahead = None;
        if self.pending.touches_intents() {
            self.flush().await?;
        }
        let sql = "UPDATE intents SET next_eval_at = $3 WHERE tenant = $1 AND debtor_id = $2 AND status = 'deferred'";
        either_run!(&mut self.db, TxDb, |tx| sqlx::query(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(now)
            .execute(&mut **tx)
            .await?);
        Ok(())
    }

    /// A debtor's contact history since `since`, oldest first, including
    /// contacts recorded earlier in this transaction.
    pub async fn history(&mut self, tenant: &str, debtor_id: &str, since: i64) -> StoreResult<Vec<EventRow>> {
        let key = (tenant.to_string(), debtor_id.to_string());
        let read = self.read_ahead.as_ref().filter(|r| r.since <= since).and_then(|r| r.histories.get(&key));
        let mut history: Vec<EventRow> = match read {
            Some(events) => events.iter().filter(|e| e.at >= since).cloned().collect(),
            None => {
                let sql = SELECT_HISTORY;
                either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
                    .bind(tenant)
                    .bind(debtor_id)
                    .bind(since)
                    .fetch_all(&mut **tx)
                    .await?)
            }
        };
        let mut recorded_here = self
            .pending
            .events
            .iter()
            .filter(|(t, d, e)| t == tenant && d == debtor_id && e.at >= since)
            .map(|(_, _, e)| e.clone())
            .peekable();
        if recorded_here.peek().is_some() {
            history.extend(recorded_here);
            history.sort_by_key(|e| e.at);
        }
        keep_newest(&mut history);
        Ok(history)
    }

    /// Records a contact (sent with the next flush).
    #[allow(clippy::too_many_arguments)]
    pub fn insert_event(
        &mut self,
        tenant: &str,
        debtor_id: &str,
        debt_id: Option<&str>,
        channel: &str,
        at: i64,
        outcome: &str,
        dispatch_id: &str,
    ) {
        let event = EventRow {
            debt_id: debt_id.map(str::to_string),
            channel: channel.to_string(),
            at,
            outcome: outcome.to_string(),
            dispatch_id: Some(dispatch_id.to_string()),
        };
        self.pending.events.push((tenant.to_string(), debtor_id.to_string(), event));
    }

    pub async fn set_event_outcome(&mut self, dispatch_id: &str, outcome: &str) -> StoreResult<()> {
        self.read_ahead = None;
        if !self.pending.events.is_empty() {
            self.flush().await?;
        }
        let sql = "UPDATE contact_events SET outcome = $2 WHERE dispatch_id = $1";
        either_run!(&mut self.db, TxDb, |tx| sqlx::query(sql)
            .bind(dispatch_id)
            .bind(outcome)
            .execute(&mut **tx)
            .await?);
        Ok(())
    }

    /// Forgets the contact of a dispatch that never went out.
    pub async fn delete_event(&mut self, dispatch_id: &str) -> StoreResult<()> {
        self.read_ahead = None;
        if !self.pending.events.is_empty() {
            self.flush().await?;
        }
        let sql = "DELETE FROM contact_events WHERE dispatch_id = $1";
        either_run!(&mut self.db, TxDb, |tx| sqlx::query(sql).bind(dispatch_id).execute(&mut **tx).await?);
        Ok(())
    }

    pub async fn preferences(&mut self, tenant: &str, debtor_id: &str) -> StoreResult<Option<PreferencesRow>> {
        let key = (tenant.to_string(), debtor_id.to_string());
        if let Some(known) = self.read_ahead.as_ref().and_then(|r| r.preferences.get(&key)) {
            return Ok(known.clone());
        }
        let sql = SELECT_PREFERENCES;
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .fetch_optional(&mut **tx)
            .await?))
    }

    pub async fn upsert_preferences(
        &mut self,
        tenant: &str,
        debtor_id: &str,
        prefs: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<()> {
        self.read_ahead = None;
        let sql = "INSERT INTO preferences (tenant, debtor_id, prefs, source, updated_at) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (tenant, debtor_id) DO UPDATE SET prefs = excluded.prefs, source = excluded.source, \
                   updated_at = excluded.updated_at";
        either_run!(&mut self.db, TxDb, |tx| sqlx::query(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(prefs)
            .bind(source)
            .bind(now)
            .execute(&mut **tx)
            .await?);
        Ok(())
    }

    /// Inserts a dispatch (sent with the next flush).
    pub fn insert_dispatch(&mut self, row: &DispatchRow) {
        self.pending.dispatches.push(row.clone());
    }

    /// Writes the mutable fields of a dispatch (sent with the next flush).
    pub async fn update_dispatch(&mut self, row: &DispatchRow) -> StoreResult<()> {
        match self.pending.dispatches.iter_mut().find(|d| d.dispatch_id == row.dispatch_id) {
            Some(inserted) => *inserted = row.clone(),
            None => {
                self.pending.dispatch_updates.insert(row.dispatch_id.clone(), row.clone());
            }
        }
        Ok(())
    }

    pub async fn get_dispatch(&mut self, dispatch_id: &str) -> StoreResult<Option<DispatchRow>> {
        if self.pending.touches_dispatches() {
            self.flush().await?;
        }
        let sql = concat!("SELECT ", dispatch_columns!(), " FROM dispatches WHERE dispatch_id = $1");
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql).bind(dispatch_id).fetch_optional(&mut **tx).await?))
    }

    /// Dispatches an adapter may lease now on `channels`: leases that expired
    /// first (oldest expiry first; they were offered before), then ready ones,
    /// highest priority and oldest first. `tenant = None` looks across tenants
    /// (built-in adapters). PostgreSQL skips rows other replicas hold.
    pub async fn open_dispatches(
        &mut self,
        tenant: Option<&str>,
        channels: &[String],
        now: i64,
        limit: i64,
    ) -> StoreResult<Vec<DispatchRow>> {
        if self.pending.touches_dispatches() {
            self.flush().await?;
        }
        macro_rules! select {
            ($state:literal, $order:literal) => {
                concat!(
                    "SELECT ",
                    dispatch_columns!(),
                    " FROM dispatches WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1) \
                     AND channel IN ($2, $3, $4, $5, $6, $7, $8) AND ",
                    $state,
                    " ORDER BY ",
                    $order,
                    " LIMIT $10"
                )
            };
        }
        let expired = select!("state = 'leased' AND lease_expires_at <= $9", "lease_expires_at");
        // `$9 = $9` keeps one parameter list for both queries.
        let ready = select!("state = 'ready' AND $9 = $9", "priority DESC, released_at");
        // Seven slots, one per channel; unused ones repeat the first channel.
        let first = channels.first().cloned().unwrap_or_default();
        let slot = |i: usize| channels.get(i).cloned().unwrap_or_else(|| first.clone());
        macro_rules! run {
            ($tx:expr, $sql:expr, $limit:expr) => {
                sqlx::query_as(sqlx::AssertSqlSafe($sql))
                    .bind(tenant)
                    .bind(slot(0))
                    .bind(slot(1))
                    .bind(slot(2))
                    .bind(slot(3))
                    .bind(slot(4))
                    .bind(slot(5))
                    .bind(slot(6))
                    .bind(now)
                    .bind($limit)
                    .fetch_all(&mut **$tx)
                    .await?
            };
        }
        let lock = match self.db {
            TxDb::Sqlite(_) => "",
            TxDb::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let mut open: Vec<DispatchRow> = either!(&mut self.db, TxDb, |tx| run!(tx, format!("{expired}{lock}"), limit));
        let left = limit - open.len() as i64;
        if left > 0 {
            let more: Vec<DispatchRow> = either!(&mut self.db, TxDb, |tx| run!(tx, format!("{ready}{lock}"), left));
            open.extend(more);
        }
        Ok(open)
    }
}
