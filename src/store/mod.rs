//! Durable storage with sqlx: SQLite (embedded default, WAL) or PostgreSQL,
//! behind one façade: [`Store`] (a connection pool) and [`Tx`] (a write
//! transaction). Most SQL serves both backends (instants are Unix
//! milliseconds in BIGINT columns, placeholders are `$n`; where a form is
//! faster on one backend, each has its own); callers never see
//! which backend runs, they ask for what it can do
//! ([`Store::single_writer`], [`Store::claims_commit_separately`]).
//! Migrations live in `migrations/{sqlite,postgres}`.
//!
//! Behind the façade, one job per file: `error` (what a database error means),
//! `rows` (the rows and their column lists), `read_ahead` and `write_behind`
//! (a `Tx` reads a group's rows in a few queries and sends its new and changed
//! rows in multi-row statements), `audit` (the chain's storage), `keys` (API
//! keys), and `sqlite` / `postgres` for what differs: connecting, locking,
//! the claim and lease statements, wake-ups between replicas. (`read_ahead`,
//! `write_behind` and `audit` hold a form per backend of the statements where
//! one is faster: arrays on PostgreSQL, lists of values on SQLite.)

#[macro_use]
mod rows;

/// Runs the same code against whichever backend `$value` holds.
macro_rules! either {
    ($value:expr, $enum:ident, |$c:ident| $body:expr) => {
        match $value {
            $enum::Sqlite($c, ..) => $body,
            $enum::Postgres($c, ..) => $body,
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
            $enum::Postgres($c, ..) => {
                $body;
            }
        }
    };
}

/// The claim of `Tx::claim_due` (`$1` now, `$2` claimed until, `$3` limit);
/// `$lock` locks the rows it picks.
macro_rules! claim_due_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE intents SET next_eval_at = $2 WHERE (tenant, intent_id) IN (SELECT tenant, intent_id FROM intents \
             WHERE status = 'deferred' AND next_eval_at <= $1 ORDER BY next_eval_at, priority DESC LIMIT $3",
            $lock,
            ") RETURNING tenant, intent_id, debtor_id"
        )
    };
}

/// Dispatches in one state for `Tx::open_dispatches`: `$1` tenant (NULL: any),
/// `$2`…`$8` channels, `$9` now, `$10` limit; `$lock` locks the rows it picks.
macro_rules! open_dispatches_sql {
    (expired, $lock:literal) => {
        open_dispatches_sql!("state = 'leased' AND lease_expires_at <= $9", "lease_expires_at", $lock)
    };
    // `$9 = $9` keeps one parameter list for both statements.
    (ready, $lock:literal) => {
        open_dispatches_sql!("state = 'ready' AND $9 = $9", "priority DESC, released_at", $lock)
    };
    ($state:literal, $order:literal, $lock:literal) => {
        concat!(
            "SELECT ",
            dispatch_columns!(),
            " FROM dispatches WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1) \
             AND channel IN ($2, $3, $4, $5, $6, $7, $8) AND ",
            $state,
            " ORDER BY ",
            $order,
            " LIMIT $10",
            $lock
        )
    };
}

/// How many of a debtor's newest contact events a history read returns, as
/// SQL text: `HISTORY_LIMIT` + 2 (one for the dispatch a re-check leaves
/// out, one to tell a history longer than the limit).
macro_rules! history_read_limit {
    () => {
        "10002"
    };
}

mod audit;
mod error;
mod keys;
mod postgres;
mod read_ahead;
mod sqlite;
#[cfg(test)]
mod tests;
mod write_behind;

use std::str::FromStr;
use std::sync::Arc;

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use tokio::sync::{Notify, watch};

use crate::audit::AuditEvent;
use crate::domain::{Channel, IntentStatus, Outcome};

use error::in_row;
pub use error::{StoreError, StoreResult};
pub use keys::{KeyInfo, KeyRow, NewKeyRow};
pub use rows::{DispatchRow, EventRow, IntentRow, PreferencesRow, QueueCounts, UndecodableDispatch, Wakeup};

use read_ahead::ReadAhead;
use write_behind::Pending;

/// Every table, in the order a backup reports their rows.
const BACKED_UP_TABLES: [&str; 9] = [
    "intents",
    "dispatches",
    "contact_events",
    "preferences",
    "audit_log",
    "audit_heads",
    "audit_checkpoints",
    "rules_snapshots",
    "api_keys",
];

/// Copies the SQLite database at `url` into `out` while the service runs
/// (`VACUUM INTO`: one read transaction, so the copy is one consistent
/// state), then counts the copy's rows per table, read from the copy
/// itself. The source is opened read-only: never created, never migrated.
/// `out` must not exist; it is created readable by its owner only and
/// synced to disk (with its directory) before this returns.
pub async fn backup_sqlite(url: &str, out: &std::path::Path) -> StoreResult<Vec<(&'static str, i64)>> {
    use sqlx::{ConnectOptions, Connection};
    use std::os::unix::fs::OpenOptionsExt;
    let source = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.read_only(true);
    let mut conn = source.connect().await?;
    let target = out.to_str().ok_or_else(|| StoreError::BadUrl(format!("{}: the path is not UTF-8", out.display())))?;
    // SQLite writes into an empty file, and refuses a file that has content.
    let not_written = |e: std::io::Error| StoreError::NotWritable { path: out.display().to_string(), cause: e };
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out).map_err(not_written)?;
    if let Err(e) = sqlx::query("VACUUM INTO ?1").bind(target).execute(&mut conn).await {
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    let _ = conn.close().await;
    std::fs::File::open(out).and_then(|f| f.sync_all()).map_err(not_written)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(not_written)?;
    }
    count_rows(&format!("sqlite://{target}")).await
}

/// Rows per table of the database at `url` (SQLite or PostgreSQL), read
/// without creating or migrating it: to compare a restore with its backup.
pub async fn count_rows(url: &str) -> StoreResult<Vec<(&'static str, i64)>> {
    use sqlx::{ConnectOptions, Connection};
    let mut counts = Vec::new();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.read_only(true).connect().await?;
        for table in BACKED_UP_TABLES {
            let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
            counts.push((table, sqlx::query_scalar(sql).fetch_one(&mut conn).await?));
        }
        let _ = conn.close().await;
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let mut conn = postgres::connect_any(url).await?;
        for table in BACKED_UP_TABLES {
            let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
            counts.push((table, sqlx::query_scalar(sql).fetch_one(&mut conn).await?));
        }
        let _ = conn.close().await;
    } else {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    Ok(counts)
}

/// A database URL with its password hidden, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// A connection pool to the database, SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Follows the primary of a multi-host PostgreSQL URL while any clone lives.
    _primary: Option<Arc<postgres::PrimaryFollower>>,
}

/// The backend's pool.
#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool, sqlite::WriteQueue),
    Postgres(PgPool),
}

/// An open transaction, with the audit events to append when it commits.
pub struct Tx {
    db: TxDb,
    audit: Vec<AuditEvent>,
    /// New and changed rows not sent yet (see `write_behind`).
    pending: Pending,
    /// Rows read ahead for a group (see `prefetch`, `prefetch_dispatches`).
    read_ahead: Option<ReadAhead>,
    /// SQLite: this transaction's turn in the write queue, until it ends
    /// (dropped after `db`).
    _turn: Option<sqlite::Turn>,
}

/// The backend's transaction.
enum TxDb {
    Sqlite(Transaction<'static, Sqlite>),
    /// With the debtors it holds locked.
    Postgres(Transaction<'static, Postgres>, postgres::DebtorLocks),
}

/// The claim and lease statements, whose text differs between the backends:
/// PostgreSQL locks the rows it picks; SQLite, one writer at a time, needs no
/// row locks. (Writes have a form per backend in `write_behind` and `audit`.)
struct Dialect {
    /// Claims due intents (`Tx::claim_due`).
    claim_due: &'static str,
    /// Leased dispatches whose lease expired, oldest expiry first (`Tx::open_dispatches`).
    expired_leases: &'static str,
    /// Ready dispatches, highest priority and oldest first (`Tx::open_dispatches`).
    ready_dispatches: &'static str,
}

impl TxDb {
    fn dialect(&self) -> &'static Dialect {
        match self {
            TxDb::Sqlite(..) => &sqlite::DIALECT,
            TxDb::Postgres(..) => &postgres::DIALECT,
        }
    }
}

/// Rows per write statement: a bound on the statement and its parameters
/// (SQLite allows 32,766; on PostgreSQL each column is one array parameter).
const ROWS_PER_INSERT: usize = 500;

/// One intent by tenant and id.
const SELECT_INTENT: &str = concat!("SELECT ", intent_columns!(), " FROM intents WHERE tenant = $1 AND intent_id = $2");
/// Most contact events of a debtor a decision reads. A longer history is
/// not cut to its newest events: caps count only some events (a channel, an
/// outcome, who started the contact), so the events cut could be the ones a
/// cap counts. A decision that would need more is refused as unreadable (the
/// intent is held). Reads return `history_read_limit!()` events at most.
const HISTORY_LIMIT: usize = 10_000;
/// A debtor's newest events from `$3` to `$4` (at most `history_read_limit!()`), oldest first.
const SELECT_HISTORY: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM (SELECT ",
    event_columns!(),
    " FROM contact_events WHERE tenant = $1 AND debtor_id = $2 AND at >= $3 AND at <= $4 ORDER BY at DESC LIMIT ",
    history_read_limit!(),
    ") AS recent ORDER BY at"
);
/// A debtor's preferences.
const SELECT_PREFERENCES: &str =
    "SELECT prefs, source, updated_at FROM preferences WHERE tenant = $1 AND debtor_id = $2";

/// `history` if it is whole, or `Unreadable` if it holds more than
/// `HISTORY_LIMIT` events besides the contact of `leaving_out` (the dispatch
/// a lease checks again, whose own contact the decision does not count).
fn whole(
    history: Vec<EventRow>,
    leaving_out: Option<&str>,
    tenant: &str,
    debtor_id: &str,
    since: i64,
) -> StoreResult<Vec<EventRow>> {
    let counted = match leaving_out {
        Some(dispatch) => history.iter().filter(|e| e.dispatch_id.as_deref() != Some(dispatch)).count(),
        None => history.len(),
    };
    if counted <= HISTORY_LIMIT {
        return Ok(history);
    }
    let since = chrono::DateTime::from_timestamp_millis(since).map_or_else(|| since.to_string(), |t| t.to_rfc3339());
    Err(StoreError::Unreadable {
        table: "contact_events",
        key: format!("({tenant}, {debtor_id})"),
        why: format!(
            "the debtor has more than {HISTORY_LIMIT} contact events since {since}; Ventana decides only on a whole \
             history, and reads at most that many"
        ),
    })
}

impl Store {
    /// Connects to `url` (`sqlite://FILE` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        let (pool, primary) = if url.starts_with("sqlite:") {
            (Pool::Sqlite(sqlite::connect(url).await?, sqlite::WriteQueue::default()), None)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let (pool, follower) = postgres::connect(url).await?;
            (Pool::Postgres(pool), follower.map(Arc::new))
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let store = Store { pool, _primary: primary };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(pool, _) => sqlite::migrate(pool).await,
            Pool::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Which backend this is, for logs.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(..) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Whether the database runs one write transaction at a time (SQLite):
    /// more concurrent writers would only wait for each other.
    pub fn single_writer(&self) -> bool {
        matches!(self.pool, Pool::Sqlite(..))
    }

    /// Whether a claim (`Tx::claim_due`) should commit before its intents are
    /// re-evaluated. PostgreSQL: yes, then smaller transactions follow, so
    /// replicas and submissions for the same debtors wait less. SQLite has one
    /// writer anyway: the claim and every re-evaluation share one transaction
    /// (one fsync).
    pub fn claims_commit_separately(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Starts a write transaction. On SQLite it waits for its turn in the
    /// write queue and takes the write lock at once (`BEGIN IMMEDIATE`),
    /// which serializes every cap check.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let (db, turn) = match &self.pool {
            Pool::Sqlite(pool, queue) => {
                let (tx, turn) = sqlite::begin(pool, queue).await?;
                (TxDb::Sqlite(tx), Some(turn))
            }
            Pool::Postgres(pool) => (TxDb::Postgres(pool.begin().await?, postgres::DebtorLocks::default()), None),
        };
        Ok(Tx { db, audit: Vec::new(), pending: Pending::default(), read_ahead: None, _turn: turn })
    }

    /// Runs `sql` (one or more statements, no parameters) as written, outside
    /// any `Tx`: no write queue, no audit event, no check of any kind. For
    /// operators' repair scripts and for tests and tools that damage, fill or
    /// inspect the database behind the service's back; the service itself
    /// never calls it. Returns how many rows the statements changed.
    pub async fn execute_unchecked(&self, sql: &str) -> StoreResult<u64> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        Ok(either!(&self.pool, Pool, |pool| sqlx::raw_sql(sql).execute(pool).await?.rows_affected()))
    }

    /// Refreshes the query planner's statistics, as autovacuum would in time:
    /// for tools that load many rows at once and measure right after.
    /// PostgreSQL: `ANALYZE` of every table. SQLite: nothing; it gathers no
    /// statistics here and plans from the schema's indexes alone.
    pub async fn analyze(&self) -> StoreResult<()> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::raw_sql("ANALYZE").execute(pool).await?;
        }
        Ok(())
    }

    /// Closes the pool: waits for the connections in use to come back, then
    /// closes every one. Later calls fail as `StoreError::Unavailable`.
    pub async fn close(&self) {
        if let Some(follower) = &self._primary {
            follower.stop();
        }
        either_run!(&self.pool, Pool, |pool| pool.close().await);
    }

    /// The earliest `next_eval_at` of a deferred intent.
    pub async fn next_due(&self) -> StoreResult<Option<i64>> {
        let sql = "SELECT MIN(next_eval_at) FROM intents WHERE status = 'deferred'";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_scalar(sql).fetch_one(pool).await?))
    }

    /// (due now, deferred in all, held) intents, for the queue gauges.
    pub async fn queue_depth(&self, now: i64) -> StoreResult<(i64, i64, i64)> {
        let sql = "SELECT COALESCE(SUM(CASE WHEN next_eval_at <= $1 THEN 1 ELSE 0 END), 0), COUNT(*), \
                   (SELECT COUNT(*) FROM intents WHERE status = 'held') FROM intents WHERE status = 'deferred'";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).bind(now).fetch_one(pool).await?))
    }

    /// `tenant`'s contacts in the queue per (jurisdiction, channel): deferred
    /// until later, deferred and due by `now`, released, leased; for the console.
    pub async fn queue_counts(&self, tenant: &str, now: i64) -> StoreResult<Vec<QueueCounts>> {
        let sql = "SELECT jurisdiction, channel, \
                   COALESCE(SUM(CASE WHEN status = 'deferred' AND next_eval_at > $2 THEN 1 ELSE 0 END), 0) AS deferred, \
                   COALESCE(SUM(CASE WHEN status = 'deferred' AND next_eval_at <= $2 THEN 1 ELSE 0 END), 0) AS due, \
                   COALESCE(SUM(CASE WHEN status = 'released' THEN 1 ELSE 0 END), 0) AS released, \
                   COALESCE(SUM(CASE WHEN status = 'leased' THEN 1 ELSE 0 END), 0) AS leased \
                   FROM intents WHERE tenant = $1 AND status IN ('deferred', 'released', 'leased') \
                   GROUP BY jurisdiction, channel ORDER BY jurisdiction, channel";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(in_row("intents", || format!("{tenant}'s queue counts")))?))
    }

    /// The next `limit` instants after `now` at which `tenant`'s deferred
    /// contacts wake, each with its jurisdiction, channel and how many wake then.
    pub async fn next_wakeups(&self, tenant: &str, now: i64, limit: i64) -> StoreResult<Vec<Wakeup>> {
        let sql = "SELECT next_eval_at AS at, jurisdiction, channel, COUNT(*) AS intents FROM intents \
                   WHERE tenant = $1 AND status = 'deferred' AND next_eval_at > $2 \
                   GROUP BY next_eval_at, jurisdiction, channel ORDER BY next_eval_at, jurisdiction, channel LIMIT $3";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(in_row("intents", || format!("{tenant}'s next wake-ups")))?))
    }

    /// Tells the other replicas that something may be due sooner (PostgreSQL
    /// NOTIFY; nothing to do for the single SQLite process).
    pub async fn notify_wakeup(&self) -> StoreResult<()> {
        if let Pool::Postgres(pool) = &self.pool {
            postgres::notify_wakeup(pool).await?;
        }
        Ok(())
    }

    /// Until `shutdown` turns true, wakes `wakeup` whenever a replica (this
    /// one included) calls `notify_wakeup`. PostgreSQL: LISTENs on a
    /// connection of its own and reconnects after errors. SQLite: one process,
    /// nothing to listen to; returns at once.
    pub async fn listen_for_wakeups(&self, wakeup: &Notify, shutdown: watch::Receiver<bool>) {
        if let Pool::Postgres(pool) = &self.pool {
            postgres::listen_for_wakeups(pool, wakeup, shutdown).await;
        }
    }

    pub async fn get_intent(&self, tenant: &str, intent_id: &str) -> StoreResult<Option<IntentRow>> {
        let sql = SELECT_INTENT;
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(intent_id)
            .fetch_optional(pool)
            .await
            .map_err(in_row("intents", || format!("({tenant}, {intent_id})")))?))
    }

    /// A page of `tenant`'s intents in creation order, after the (created
    /// at, intent id) `after`, optionally of one debtor and in one status.
    pub async fn list_intents(
        &self,
        tenant: &str,
        debtor_id: Option<&str>,
        status: Option<IntentStatus>,
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
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(status)
            .bind(after.0)
            .bind(after.1)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(in_row("intents", || format!("a page of {tenant}'s")))?))
    }

    /// A debtor's contact events from `since` to `until`, oldest first;
    /// `Unreadable` beyond `HISTORY_LIMIT` of them besides the contact of
    /// `leaving_out`.
    pub async fn history(
        &self,
        tenant: &str,
        debtor_id: &str,
        since: i64,
        until: i64,
        leaving_out: Option<&str>,
    ) -> StoreResult<Vec<EventRow>> {
        let sql = SELECT_HISTORY;
        let history = either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(since)
            .bind(until)
            .fetch_all(pool)
            .await
            .map_err(in_row("contact_events", || format!("({tenant}, {debtor_id})")))?);
        whole(history, leaving_out, tenant, debtor_id, since)
    }

    pub async fn preferences(&self, tenant: &str, debtor_id: &str) -> StoreResult<Option<PreferencesRow>> {
        let sql = SELECT_PREFERENCES;
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .fetch_optional(pool)
            .await
            .map_err(in_row("preferences", || format!("({tenant}, {debtor_id})")))?))
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
        either_run!(&self.pool, Pool, |pool| sqlx::query(sql)
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
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).fetch_all(pool).await?))
    }
}

impl Tx {
    /// Queues an audit event; it is appended to its tenant's chain at commit.
    pub fn audit(&mut self, event: AuditEvent) {
        self.audit.push(event);
    }

    /// Sends what is pending, appends the queued audit events, then commits.
    pub async fn commit(mut self) -> StoreResult<()> {
        // Nothing reads after the commit: the read-ahead need not learn what the last flush sends.
        self.read_ahead = None;
        self.flush().await?;
        let events = std::mem::take(&mut self.audit);
        audit::append(&mut self.db, events).await?;
        either_run!(self.db, TxDb, |tx| tx.commit().await?);
        Ok(())
    }

    /// Sends the pending inserts and updates. Rows read ahead learn what is
    /// sent first: once sent, it is no longer answered from the queue, and a
    /// row read ahead as absent (or a history read before its new events)
    /// would otherwise hide the transaction's own writes.
    async fn flush(&mut self) -> StoreResult<()> {
        let pending = std::mem::take(&mut self.pending);
        if let Some(read) = self.read_ahead.as_mut() {
            pending.intent_rows().for_each(|row| read.remember_intent(row));
            pending.dispatch_rows().for_each(|row| read.remember_dispatch(row));
            if pending.has_events() {
                read.forget_histories();
            }
        }
        pending.flush(&mut self.db).await
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
        let sql = self.db.dialect().claim_due;
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(now)
            .bind(claim_until)
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?))
    }

    /// Serializes work on one debtor until the transaction ends. SQLite's
    /// `BEGIN IMMEDIATE` already serializes all writers; PostgreSQL takes a
    /// transaction-scoped advisory lock keyed by tenant and debtor.
    pub async fn lock_debtor(&mut self, tenant: &str, debtor_id: &str) -> StoreResult<()> {
        self.lock_debtors(&[(tenant, debtor_id)]).await
    }

    /// Locks these debtors in the order given, in one statement; debtors this
    /// transaction holds already are skipped.
    pub async fn lock_debtors(&mut self, debtors: &[(&str, &str)]) -> StoreResult<()> {
        match &mut self.db {
            TxDb::Sqlite(..) => Ok(()),
            TxDb::Postgres(tx, locks) => locks.lock(tx, debtors).await,
        }
    }

    /// Like `lock_debtors` but never waits: for each debtor, whether this
    /// transaction now holds it (`false`: another transaction does). Used
    /// where rows are already locked, so that lock order can never form a cycle.
    pub async fn try_lock_debtors(&mut self, debtors: &[(&str, &str)]) -> StoreResult<Vec<bool>> {
        match &mut self.db {
            TxDb::Sqlite(..) => Ok(vec![true; debtors.len()]),
            TxDb::Postgres(tx, locks) => locks.try_lock(tx, debtors).await,
        }
    }

    /// Reads at once what `get_intent`, `history` (since `since`) and
    /// `preferences` would read one by one for these (tenant, intent id,
    /// debtor id), so a group of N submissions costs three reads per tenant, not 3N.
    pub async fn prefetch(&mut self, intents: &[(&str, &str, &str)], since: i64) -> StoreResult<()> {
        self.read_ahead = Some(ReadAhead::read(&mut self.db, intents, since).await?);
        Ok(())
    }

    /// Reads at once what `get_dispatch` and `get_intent` would read one by
    /// one for these dispatches and their intents, so a group of N acks
    /// costs two reads per tenant, not 2N.
    pub async fn prefetch_dispatches(&mut self, dispatch_ids: &[&str]) -> StoreResult<()> {
        self.read_ahead = Some(ReadAhead::read_dispatches(&mut self.db, dispatch_ids).await?);
        Ok(())
    }

    /// One intent, including one inserted earlier in this transaction.
    pub async fn get_intent(&mut self, tenant: &str, intent_id: &str) -> StoreResult<Option<IntentRow>> {
        if let Some(row) = self.pending.intent(tenant, intent_id) {
            return Ok(Some(row.clone()));
        }
        if let Some(known) = self.read_ahead.as_ref().and_then(|r| r.intent(tenant, intent_id)) {
            return Ok(known.clone());
        }
        let sql = SELECT_INTENT;
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(tenant)
            .bind(intent_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(in_row("intents", || format!("({tenant}, {intent_id})")))?))
    }

    /// Inserts an intent (sent with the next flush).
    pub fn insert_intent(&mut self, row: &IntentRow) {
        self.pending.insert_intent(row);
    }

    /// Writes the mutable fields of an intent (sent with the next flush).
    pub async fn update_intent(&mut self, row: &IntentRow) -> StoreResult<()> {
        if let Some(read) = self.read_ahead.as_mut() {
            read.remember_intent(row);
        }
        self.pending.update_intent(row);
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
    /// contacts recorded earlier in this transaction; `Unreadable` beyond
    /// `HISTORY_LIMIT` events besides the contact of `leaving_out`.
    pub async fn history(
        &mut self,
        tenant: &str,
        debtor_id: &str,
        since: i64,
        leaving_out: Option<&str>,
    ) -> StoreResult<Vec<EventRow>> {
        let mut history = match self.read_ahead.as_ref().and_then(|r| r.history(tenant, debtor_id, since)) {
            Some(events) => events,
            None => {
                let sql = SELECT_HISTORY;
                either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
                    .bind(tenant)
                    .bind(debtor_id)
                    .bind(since)
                    .bind(i64::MAX)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(in_row("contact_events", || format!("({tenant}, {debtor_id})")))?)
            }
        };
        let mut recorded_here = self.pending.events(tenant, debtor_id, since).cloned().peekable();
        if recorded_here.peek().is_some() {
            history.extend(recorded_here);
            history.sort_by_key(|e| e.at);
        }
        whole(history, leaving_out, tenant, debtor_id, since)
    }

    /// Records a contact (sent with the next flush).
    pub fn insert_event(&mut self, tenant: &str, debtor_id: &str, event: EventRow) {
        self.pending.insert_event(tenant, debtor_id, event);
    }

    pub async fn set_event_outcome(&mut self, dispatch_id: &str, outcome: Outcome) -> StoreResult<()> {
        if let Some(read) = self.read_ahead.as_mut() {
            read.forget_histories();
        }
        if self.pending.has_events() {
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
        if let Some(read) = self.read_ahead.as_mut() {
            read.forget_histories();
        }
        if self.pending.has_events() {
            self.flush().await?;
        }
        let sql = "DELETE FROM contact_events WHERE dispatch_id = $1";
        either_run!(&mut self.db, TxDb, |tx| sqlx::query(sql).bind(dispatch_id).execute(&mut **tx).await?);
        Ok(())
    }

    pub async fn preferences(&mut self, tenant: &str, debtor_id: &str) -> StoreResult<Option<PreferencesRow>> {
        if let Some(known) = self.read_ahead.as_ref().and_then(|r| r.preferences(tenant, debtor_id)) {
            return Ok(known.clone());
        }
        let sql = SELECT_PREFERENCES;
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(in_row("preferences", || format!("({tenant}, {debtor_id})")))?))
    }

    pub async fn upsert_preferences(
        &mut self,
        tenant: &str,
        debtor_id: &str,
        prefs: &str,
        source: &str,
        now: i64,
    ) -> StoreResult<()> {
        if let Some(read) = self.read_ahead.as_mut() {
            read.forget_preferences();
        }
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
        self.pending.insert_dispatch(row);
    }

    /// Writes the mutable fields of a dispatch (sent with the next flush).
    pub async fn update_dispatch(&mut self, row: &DispatchRow) -> StoreResult<()> {
        if let Some(read) = self.read_ahead.as_mut() {
            read.remember_dispatch(row);
        }
        self.pending.update_dispatch(row);
        Ok(())
    }

    /// One dispatch, as this transaction last wrote or read it ahead.
    pub async fn get_dispatch(&mut self, dispatch_id: &str) -> StoreResult<Option<DispatchRow>> {
        if let Some(row) = self.pending.dispatch(dispatch_id) {
            return Ok(Some(row.clone()));
        }
        if let Some(known) = self.read_ahead.as_ref().and_then(|r| r.dispatch(dispatch_id)) {
            return Ok(known.clone());
        }
        if self.pending.touches_dispatches() {
            self.flush().await?;
        }
        let sql = concat!("SELECT ", dispatch_columns!(), " FROM dispatches WHERE dispatch_id = $1");
        Ok(either!(&mut self.db, TxDb, |tx| sqlx::query_as(sql)
            .bind(dispatch_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(in_row("dispatches", || dispatch_id.to_string()))?))
    }

    /// Dispatches an adapter may lease now on `channels`: leases that expired
    /// first (oldest expiry first; they were offered before), then ready ones,
    /// highest priority and oldest first. `tenant = None` looks across tenants
    /// (built-in adapters). PostgreSQL skips rows other replicas hold. A row
    /// that cannot be decoded is returned apart, with what could be read of
    /// it, so that the caller can take it out of the queue.
    pub async fn open_dispatches(
        &mut self,
        tenant: Option<&str>,
        channels: &[Channel],
        now: i64,
        limit: i64,
    ) -> StoreResult<(Vec<DispatchRow>, Vec<UndecodableDispatch>)> {
        let Some(&first) = channels.first() else { return Ok((Vec::new(), Vec::new())) };
        if self.pending.touches_dispatches() {
            self.flush().await?;
        }
        // Seven slots, one per channel; unused ones repeat the first channel.
        let slot = |i: usize| channels.get(i).copied().unwrap_or(first);
        // Each row decoded on its own: one that does not decode must not fail
        // every lease of these channels (built-in adapters lease for all tenants).
        macro_rules! run {
            ($tx:expr, $sql:expr, $limit:expr) => {{
                use sqlx::Row;
                let rows = sqlx::query($sql)
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
                    .await?;
                rows.iter()
                    .map(|row| {
                        <DispatchRow as sqlx::FromRow<_>>::from_row(row).map_err(|e| UndecodableDispatch {
                            dispatch_id: row.try_get("dispatch_id").unwrap_or_default(),
                            tenant: row.try_get("tenant").ok(),
                            intent_id: row.try_get("intent_id").ok(),
                            debtor_id: row.try_get("debtor_id").ok(),
                            why: format!("a stored dispatches row cannot be read: {e}"),
                        })
                    })
                    .collect::<Vec<_>>()
            }};
        }
        let dialect = self.db.dialect();
        let mut open = either!(&mut self.db, TxDb, |tx| run!(tx, dialect.expired_leases, limit));
        let left = limit - open.len() as i64;
        if left > 0 {
            open.extend(either!(&mut self.db, TxDb, |tx| run!(tx, dialect.ready_dispatches, left)));
        }
        let (rows, undecodable): (Vec<_>, Vec<_>) = open.into_iter().partition(Result::is_ok);
        Ok((rows.into_iter().flatten().collect(), undecodable.into_iter().filter_map(Result::err).collect()))
    }

    /// Holds an intent by its key, without reading its row (which, or whose
    /// contact's, cannot be read), if `dispatch_id` (when given) is still its
    /// contact: status `held`, no contact, no wake-up, `decision` stored as
    /// the hold's. Whether it was held.
    pub async fn hold_intent_by_key(
        &mut self,
        tenant: &str,
        intent_id: &str,
        dispatch_id: Option<&str>,
        decision: &str,
        now: i64,
    ) -> StoreResult<bool> {
        if self.pending.touches_intents() {
            self.flush().await?;
        }
        self.read_ahead = None;
        let sql = "UPDATE intents SET status = 'held', dispatch_id = NULL, next_eval_at = NULL, decision = $4, \
                   updated_at = $5 WHERE tenant = $1 AND intent_id = $2 AND (CAST($3 AS TEXT) IS NULL OR dispatch_id = $3)";
        let changed = either!(&mut self.db, TxDb, |tx| sqlx::query(sql)
            .bind(tenant)
            .bind(intent_id)
            .bind(dispatch_id)
            .bind(decision)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected());
        Ok(changed == 1)
    }

    /// Takes a dispatch whose row cannot be decoded out of the queue
    /// (`withdrawn`); its contact event stays (whether it left is unknown).
    /// Whether a row was changed (not when even its id cannot be read).
    pub async fn withdraw_undecodable_dispatch(&mut self, dispatch_id: &str) -> StoreResult<bool> {
        let sql = "UPDATE dispatches SET state = 'withdrawn' WHERE dispatch_id = $1";
        let changed = either!(&mut self.db, TxDb, |tx| sqlx::query(sql)
            .bind(dispatch_id)
            .execute(&mut **tx)
            .await?
            .rows_affected());
        Ok(changed == 1)
    }
}
