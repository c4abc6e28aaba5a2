//! Ventana's use cases, one file each: submit, wake (re-evaluate what is
//! due), dispatch (lease and ack), cancel, preferences, explain, rules; and
//! group commit. Each step is one database transaction that holds the
//! debtor's lock, so checks that count history (caps, cooldowns) never race.
//! `App` holds what they share; `decision` records what the engine decided.

pub mod audit;
mod cancel;
mod contacts;
mod decision;
mod dispatch;
mod explain;
pub mod group_commit;
mod preferences;
mod rules;
mod stream;
mod submission;
mod submit;
mod wake;

pub use cancel::CancelTarget;
pub use dispatch::Ack;
pub use stream::{AdapterStream, Credit, Leased, MAX_UNSPENT_CREDIT};
pub use submission::Submission;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::domain::{ContactEvent, Intent};
use crate::engine::Decision;
use crate::rate_limit::{RateLimitConfig, RateLimits};
use crate::rules::RuleBook;
use crate::store::{EventRow, Store, StoreError, Tx};

/// How far back the history that caps and cooldowns count is loaded.
pub const HISTORY_LOOKBACK_DAYS: i64 = 400;

/// Why a lifecycle step was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Stored data is not what it was (an audit chain altered).
    #[error("{0}")]
    DataLoss(String),
    /// A stored value that cannot be decoded: the decision that needs it is
    /// not taken (fail closed). Names the table and the row's key.
    #[error("{why} (table {table}, row {key})")]
    Unreadable { table: &'static str, key: String, why: String },
    #[error(transparent)]
    Store(StoreError),
    /// A fault of Ventana's own (a panic caught at a task's edge): nothing
    /// was committed, the caller may retry.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    /// A row the store could not decode is an unreadable row like any other
    /// (counted and logged); the rest are storage failures.
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::Unreadable { table, key, why } => AppError::unreadable(table, key, why),
            other => AppError::Store(other),
        }
    }
}

impl AppError {
    /// An unreadable stored row: counted in `ventana_unreadable_rows_total{table}` and logged.
    pub fn unreadable(table: &'static str, key: String, why: String) -> AppError {
        metrics::counter!(crate::telemetry::UNREADABLE_ROWS, "table" => table).increment(1);
        tracing::error!(table, key = %key, why = %why, "stored row cannot be read: nothing is decided on it");
        AppError::Unreadable { table, key, why }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Everything the lifecycle steps share.
pub struct App {
    pub store: Store,
    pub clock: Clock,
    rules: RwLock<Arc<RuleBook>>,
    /// Woken when a deferred intent may have become due sooner.
    pub wakeup: Notify,
    /// Woken when other replicas should look too (`scheduler::notify_replicas`
    /// tells them, one NOTIFY for all the wake-ups that came while one was sent).
    pub replicas: Notify,
    /// Set when `scheduler::notify_replicas` stops: a wake-up after that (a
    /// commit still finishing at shutdown) sends a NOTIFY of its own.
    pub replicas_unattended: AtomicBool,
    /// Woken when contacts were released (built-in adapters wait on it).
    pub released: Notify,
    /// Throughput limits on leases (per replica).
    pub limits: RateLimits,
    /// Adapters' open streams (`Dispatch`) on this replica.
    pub waiters: stream::Waiters,
    /// How long a claim on due intents lasts.
    claim: Duration,
}

/// Locks the debtors of `keys` (tenant, intent id, debtor id) in the one
/// order every batch uses (so batches never deadlock), then reads their
/// intents, histories and preferences in a few queries.
pub(super) async fn lock_and_read_ahead(tx: &mut Tx, keys: &[(&str, &str, &str)], now: DateTime<Utc>) -> AppResult<()> {
    let mut debtors: Vec<(&str, &str)> = keys.iter().map(|(tenant, _, debtor)| (*tenant, *debtor)).collect();
    debtors.sort_unstable();
    debtors.dedup();
    tx.lock_debtors(&debtors).await?;
    tx.prefetch(keys, millis(now - Duration::days(HISTORY_LOOKBACK_DAYS))).await?;
    Ok(())
}

/// Sends other replicas a wake-up (`Store::notify_wakeup`); whether it went.
pub async fn tell_replicas(store: &Store) -> bool {
    match store.notify_wakeup().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot notify other replicas");
            false
        }
    }
}

pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An instant from stored milliseconds: one out of chrono's range is
/// unreadable, never a default.
pub fn instant(ms: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("instant {ms} ms is out of range"))
}

pub(super) fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The files behind a resolution, as `CODE@hash` (tenant policies
/// `CODE+tenant@hash`), separated by `;`: what a replay needs to rebuild them.
pub fn layer_versions(resolved: &crate::rules::Resolved<'_>) -> String {
    let names: Vec<String> = resolved
        .layers
        .iter()
        .map(|l| match &l.tenant {
            Some(tenant) => format!("{}+{tenant}@{}", l.code, l.hash),
            None => format!("{}@{}", l.code, l.hash),
        })
        .collect();
    names.join(";")
}

/// How an instant reads in the recipient's first zone.
pub(super) fn local_reading(t: DateTime<Utc>, zones: &[chrono_tz::Tz]) -> (Option<String>, Option<String>) {
    match zones.first() {
        Some(zone) => (
            Some(t.with_timezone(zone).format("%Y-%m-%d %H:%M:%S").to_string()),
            Some(zones.iter().map(|z| z.name()).collect::<Vec<_>>().join(" ")),
        ),
        None => (None, None),
    }
}

impl App {
    /// `claim_seconds`: how long a claim on due intents lasts before another replica may take them.
    pub fn new(store: Store, rules: RuleBook, clock: Clock, limits: &RateLimitConfig, claim_seconds: u32) -> App {
        App {
            claim: Duration::seconds(i64::from(claim_seconds)),
            store,
            clock,
            rules: RwLock::new(Arc::new(rules)),
            wakeup: Notify::new(),
            replicas: Notify::new(),
            replicas_unattended: AtomicBool::new(false),
            released: Notify::new(),
            limits: RateLimits::new(limits),
            waiters: stream::Waiters::default(),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleBook> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Wakes the scheduler here and, on PostgreSQL, in every other replica.
    /// Returns at once: the caller (a group-commit writer, say) never waits
    /// for the NOTIFY.
    pub(crate) fn wake(&self) {
        self.wakeup.notify_one();
        if self.replicas_unattended.load(Ordering::Acquire) {
            let store = self.store.clone();
            tokio::spawn(async move { tell_replicas(&store).await });
        } else {
            self.replicas.notify_one();
        }
    }

    /// Checks that an intent's jurisdiction resolves for its tenant.
    pub fn check_jurisdiction(&self, intent: &Intent) -> AppResult<()> {
        self.rules()
            .resolve(&intent.tenant, &intent.jurisdiction)
            .map(|_| ())
            .map_err(|e| AppError::InvalidArgument(format!("intent.jurisdiction: {e}")))
    }
}

/// Until when a released contact may be made: the end of the allowed window
/// it falls in (`fallback` if the rules name none), and never after the
/// intent expires.
pub(super) fn not_after(decision: &Decision, intent: &Intent, fallback: DateTime<Utc>) -> DateTime<Utc> {
    let window_end = decision.window_end.unwrap_or(fallback);
    intent.expires_at.map_or(window_end, |expires| window_end.min(expires))
}

/// A stored contact event as the engine reads it.
pub fn contact_event(e: &EventRow) -> Result<ContactEvent, String> {
    Ok(ContactEvent {
        channel: e.channel,
        at: instant(e.at)?,
        outcome: e.outcome,
        debt_id: e.debt_id.clone(),
        contact_point: e.contact_point(),
        initiator: e.initiator,
    })
}
