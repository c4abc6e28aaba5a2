//! The rows of intents, dispatches, contact events and preferences, and the
//! column lists their statements spell (in field order, as `FromRow` reads them).

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

/// A debtor's stored preferences.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PreferencesRow {
    pub prefs: String,
    pub source: String,
    pub updated_at: i64,
}

/// The columns of `intents`, in `IntentRow` order.
macro_rules! intent_columns {
    () => {
        "tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, body_hash, status, \
         next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at"
    };
}

/// The columns of `dispatches`, in `DispatchRow` order.
macro_rules! dispatch_columns {
    () => {
        "dispatch_id, tenant, intent_id, debtor_id, channel, priority, released_at, not_after, state, \
         lease_expires_at, attempt"
    };
}
