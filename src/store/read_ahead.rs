//! Reading ahead: what a group of intents (a batch of submissions, a claimed
//! round, a lease) would read one by one — the intents, their debtors'
//! histories and preferences — or a group of acks — the dispatches and their
//! intents — read in a few `IN (…)` queries per tenant.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::error::unless_undecodable;
use super::rows::{DispatchRow, EventRow, IntentRow, PreferencesRow};
use super::{StoreResult, TxDb};

/// Keys per `IN (…)` list.
const KEYS_PER_READ: usize = 500;

// PostgreSQL reads each key with its own index probe (a LATERAL subquery
// per key of an array). The `IN (…)` form lets the planner of a prepared
// statement, whose table statistics may be stale (a table filled since it
// was last analysed), scan all of a tenant's rows and filter the keys: in a
// 100,000-contact surge that read grew with the table, to 70 ms for 64
// debtors with no history at all.

/// `$1` tenant, `$2` intent ids.
const PG_INTENTS_BY_ID: &str = concat!(
    "SELECT i.* FROM unnest($2::text[]) AS k(intent_id) CROSS JOIN LATERAL (SELECT ",
    intent_columns!(),
    " FROM intents WHERE tenant = $1 AND intent_id = k.intent_id LIMIT 1) AS i"
);

/// `$1` tenant, `$2` debtor ids, `$3` since: each debtor's newest contact
/// events since then (`history_read_limit!()` at most), oldest first.
const PG_HISTORIES: &str = concat!(
    "SELECT k.debtor_id, e.* FROM unnest($2::text[]) AS k(debtor_id) CROSS JOIN LATERAL (SELECT ",
    event_columns!(),
    " FROM contact_events WHERE tenant = $1 AND debtor_id = k.debtor_id AND at >= $3 ORDER BY at DESC LIMIT ",
    history_read_limit!(),
    ") AS e ORDER BY e.at"
);

/// `$1` tenant, `$2` debtor ids.
const PG_PREFERENCES: &str = "SELECT p.* FROM unnest($2::text[]) AS k(debtor_id) CROSS JOIN LATERAL (SELECT debtor_id, \
     prefs, source, updated_at FROM preferences WHERE tenant = $1 AND debtor_id = k.debtor_id LIMIT 1) AS p";

/// Writes the keys as bound values and closes the `IN (` list before them.
fn push_keys<DB: sqlx::Database>(query: &mut QueryBuilder<DB>, keys: &[&str])
where
    for<'k> &'k str: sqlx::Encode<'k, DB> + sqlx::Type<DB>,
{
    let mut list = query.separated(", ");
    for key in keys {
        list.push_bind(*key);
    }
    list.push_unseparated(")");
}

/// What was read ahead: absent rows are `None`. The transaction keeps it
/// current: it remembers the intents and dispatches it writes, and forgets
/// what a statement changed behind it (histories, preferences, or all).
pub(super) struct ReadAhead {
    since: i64,
    intents: HashMap<(String, String), Option<IntentRow>>,
    histories: HashMap<(String, String), Vec<EventRow>>,
    preferences: HashMap<(String, String), Option<PreferencesRow>>,
    dispatches: HashMap<String, Option<DispatchRow>>,
}

/// A contact event with its debtor.
#[derive(sqlx::FromRow)]
struct DebtorEventRow {
    debtor_id: String,
    #[sqlx(flatten)]
    event: EventRow,
}

/// Preferences with their debtor.
#[derive(sqlx::FromRow)]
struct DebtorPreferencesRow {
    debtor_id: String,
    #[sqlx(flatten)]
    preferences: PreferencesRow,
}

impl ReadAhead {
    fn new(since: i64) -> ReadAhead {
        ReadAhead {
            since,
            intents: HashMap::new(),
            histories: HashMap::new(),
            preferences: HashMap::new(),
            dispatches: HashMap::new(),
        }
    }

    /// Reads these (tenant, intent id, debtor id): the intents, and the
    /// debtors' histories since `since` and preferences.
    pub(super) async fn read(db: &mut TxDb, intents: &[(&str, &str, &str)], since: i64) -> StoreResult<ReadAhead> {
        let mut read = ReadAhead::new(since);
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
            read.read_intents(db, tenant, &ids).await?;
            read.read_debtors(db, tenant, &debtors).await?;
        }
        Ok(read)
    }

    /// Reads these dispatches and their intents (no histories, no preferences).
    pub(super) async fn read_dispatches(db: &mut TxDb, dispatch_ids: &[&str]) -> StoreResult<ReadAhead> {
        // Nothing read from any instant: `history` always falls through.
        let mut read = ReadAhead::new(i64::MAX);
        let mut ids = dispatch_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(KEYS_PER_READ) {
            let rows: Option<Vec<DispatchRow>> = either!(&mut *db, TxDb, |tx| {
                let mut query = QueryBuilder::new(concat!(
                    "SELECT ",
                    dispatch_columns!(),
                    " FROM dispatches WHERE dispatch_id IN ("
                ));
                push_keys(&mut query, chunk);
                unless_undecodable(query.build_query_as().fetch_all(&mut **tx).await)?
            });
            let Some(rows) = rows else { continue };
            for id in chunk {
                read.dispatches.insert(id.to_string(), None);
            }
            for row in rows {
                read.dispatches.insert(row.dispatch_id.clone(), Some(row));
            }
        }
        let mut intents: Vec<(String, String)> =
            read.dispatches.values().flatten().map(|d| (d.tenant.clone(), d.intent_id.clone())).collect();
        intents.sort_unstable();
        intents.dedup();
        for tenant in intents.chunk_by(|a, b| a.0 == b.0) {
            let ids: Vec<&str> = tenant.iter().map(|(_, id)| id.as_str()).collect();
            read.read_intents(db, &tenant[0].0, &ids).await?;
        }
        Ok(read)
    }

    /// Reads a tenant's intents by id (sorted, without duplicates).
    async fn read_intents(&mut self, db: &mut TxDb, tenant: &str, ids: &[&str]) -> StoreResult<()> {
        for chunk in ids.chunks(KEYS_PER_READ) {
            let rows: Option<Vec<IntentRow>> = match &mut *db {
                TxDb::Sqlite(tx) => {
                    let mut query =
                        QueryBuilder::new(concat!("SELECT ", intent_columns!(), " FROM intents WHERE tenant = "));
                    query.push_bind(tenant).push(" AND intent_id IN (");
                    push_keys(&mut query, chunk);
                    unless_undecodable(query.build_query_as().fetch_all(&mut **tx).await)?
                }
                TxDb::Postgres(tx, _) => unless_undecodable(
                    sqlx::query_as(PG_INTENTS_BY_ID).bind(tenant).bind(chunk).fetch_all(&mut **tx).await,
                )?,
            };
            let Some(rows) = rows else { continue };
            for id in chunk {
                self.intents.insert((tenant.to_string(), id.to_string()), None);
            }
            for row in rows {
                self.intents.insert((row.tenant.clone(), row.intent_id.clone()), Some(row));
            }
        }
        Ok(())
    }

    /// Reads a tenant's debtors' histories since `self.since` and their
    /// preferences (debtor ids sorted, without duplicates).
    async fn read_debtors(&mut self, db: &mut TxDb, tenant: &str, debtors: &[&str]) -> StoreResult<()> {
        let since = self.since;
        for chunk in debtors.chunks(KEYS_PER_READ) {
            let events: Option<Vec<DebtorEventRow>> = match &mut *db {
                TxDb::Sqlite(tx) => {
                    let mut query = QueryBuilder::new(concat!(
                        "SELECT debtor_id, ",
                        event_columns!(),
                        " FROM (SELECT debtor_id, ",
                        event_columns!(),
                        ", ROW_NUMBER() OVER (PARTITION BY debtor_id ORDER BY at DESC) AS newness FROM contact_events \
                         WHERE tenant = ",
                    ));
                    query.push_bind(tenant).push(" AND at >= ").push_bind(since).push(" AND debtor_id IN (");
                    push_keys(&mut query, chunk);
                    query.push(concat!(") AS recent WHERE newness <= ", history_read_limit!(), " ORDER BY at"));
                    unless_undecodable(query.build_query_as().fetch_all(&mut **tx).await)?
                }
                TxDb::Postgres(tx, _) => unless_undecodable(
                    sqlx::query_as(PG_HISTORIES).bind(tenant).bind(chunk).bind(since).fetch_all(&mut **tx).await,
                )?,
            };
            let preferences: Option<Vec<DebtorPreferencesRow>> = match &mut *db {
                TxDb::Sqlite(tx) => {
                    let mut query = QueryBuilder::new(
                        "SELECT debtor_id, prefs, source, updated_at FROM preferences WHERE tenant = ",
                    );
                    query.push_bind(tenant).push(" AND debtor_id IN (");
                    push_keys(&mut query, chunk);
                    unless_undecodable(query.build_query_as().fetch_all(&mut **tx).await)?
                }
                TxDb::Postgres(tx, _) => unless_undecodable(
                    sqlx::query_as(PG_PREFERENCES).bind(tenant).bind(chunk).fetch_all(&mut **tx).await,
                )?,
            };
            for debtor in chunk {
                let key = (tenant.to_string(), debtor.to_string());
                if events.is_some() {
                    self.histories.insert(key.clone(), Vec::new());
                }
                if preferences.is_some() {
                    self.preferences.insert(key, None);
                }
            }
            for e in events.into_iter().flatten() {
                if let Some(history) = self.histories.get_mut(&(tenant.to_string(), e.debtor_id)) {
                    history.push(e.event);
                }
            }
            for p in preferences.into_iter().flatten() {
                self.preferences.insert((tenant.to_string(), p.debtor_id), Some(p.preferences));
            }
        }
        Ok(())
    }

    /// The intent as read (`Some(None)`: read, absent), or `None` if it was not read.
    pub(super) fn intent(&self, tenant: &str, intent_id: &str) -> Option<&Option<IntentRow>> {
        self.intents.get(&(tenant.to_string(), intent_id.to_string()))
    }

    /// Keeps an intent this transaction changed current.
    pub(super) fn remember_intent(&mut self, row: &IntentRow) {
        self.intents.insert((row.tenant.clone(), row.intent_id.clone()), Some(row.clone()));
    }

    /// A debtor's events since `since`, oldest first, if they were read (from `since` or earlier).
    pub(super) fn history(&self, tenant: &str, debtor_id: &str, since: i64) -> Option<Vec<EventRow>> {
        if self.since > since {
            return None;
        }
        let events = self.histories.get(&(tenant.to_string(), debtor_id.to_string()))?;
        Some(events.iter().filter(|e| e.at >= since).cloned().collect())
    }

    /// A debtor's preferences as read (`Some(None)`: read, none stored), or `None` if not read.
    pub(super) fn preferences(&self, tenant: &str, debtor_id: &str) -> Option<&Option<PreferencesRow>> {
        self.preferences.get(&(tenant.to_string(), debtor_id.to_string()))
    }

    /// The dispatch as read (`Some(None)`: read, absent), or `None` if it was not read.
    pub(super) fn dispatch(&self, dispatch_id: &str) -> Option<&Option<DispatchRow>> {
        self.dispatches.get(dispatch_id)
    }

    /// Keeps a dispatch this transaction changed current.
    pub(super) fn remember_dispatch(&mut self, row: &DispatchRow) {
        self.dispatches.insert(row.dispatch_id.clone(), Some(row.clone()));
    }

    /// Drops the histories read (a contact event changed).
    pub(super) fn forget_histories(&mut self) {
        self.histories.clear();
    }

    /// Drops the preferences read (a debtor's preferences changed).
    pub(super) fn forget_preferences(&mut self) {
        self.preferences.clear();
    }
}
