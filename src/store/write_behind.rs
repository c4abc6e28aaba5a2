//! Writing behind: a `Tx` keeps its new and changed rows and sends them in
//! multi-row statements before any statement that could see them runs, and
//! at commit: one statement per `ROWS_PER_INSERT` rows instead of one per row.
//!
//! Each statement has two forms. SQLite: `INSERT … VALUES (…), (…)` and
//! `UPDATE … FROM (VALUES …)`, built with `QueryBuilder` (anonymous `?`: its
//! lookup of numbered parameters is linear per parameter, quadratic over a
//! statement of thousands). PostgreSQL: one parameter per column, an array,
//! read by `unnest` (`INSERT … SELECT * FROM unnest($1::text[], …)`): one
//! statement text for any number of rows, so it is parsed once per
//! connection and cheap to plan, where a `VALUES` list is a new statement
//! for each group size and is planned row by row.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::rows::{DispatchRow, EventRow, IntentRow};
use super::{ROWS_PER_INSERT, StoreResult, TxDb};

/// Rows waiting in a `Tx`. New rows keep their order, and indexes find them
/// (a batch of 1,000 looks each of its rows up several times).
#[derive(Default)]
pub(super) struct Pending {
    intents: Vec<IntentRow>,
    /// Where each new intent is in `intents`: tenant, then intent id.
    intent_at: HashMap<String, HashMap<String, usize>>,
    /// Updates of stored intents, last write per (tenant, intent id) wins.
    intent_updates: HashMap<(String, String), IntentRow>,
    dispatches: Vec<DispatchRow>,
    /// Where each new dispatch is in `dispatches`.
    dispatch_at: HashMap<String, usize>,
    /// Updates of stored dispatches, by dispatch id.
    dispatch_updates: HashMap<String, DispatchRow>,
    /// Contact events with their (tenant, debtor id).
    events: Vec<(String, String, EventRow)>,
    /// Where each debtor's events are in `events`, in order: tenant, then debtor id.
    events_at: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl Pending {
    pub(super) fn touches_intents(&self) -> bool {
        !self.intents.is_empty() || !self.intent_updates.is_empty()
    }

    pub(super) fn touches_dispatches(&self) -> bool {
        !self.dispatches.is_empty() || !self.dispatch_updates.is_empty()
    }

    pub(super) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Every intent inserted or changed here, as last written.
    pub(super) fn intent_rows(&self) -> impl Iterator<Item = &IntentRow> {
        self.intents.iter().chain(self.intent_updates.values())
    }

    /// Every dispatch inserted or changed here, as last written.
    pub(super) fn dispatch_rows(&self) -> impl Iterator<Item = &DispatchRow> {
        self.dispatches.iter().chain(self.dispatch_updates.values())
    }

    pub(super) fn insert_intent(&mut self, row: &IntentRow) {
        let at = self.intents.len();
        self.intents.push(row.clone());
        self.intent_at.entry(row.tenant.clone()).or_default().insert(row.intent_id.clone(), at);
    }

    /// Where a new intent is in `intents`.
    fn new_intent(&self, tenant: &str, intent_id: &str) -> Option<usize> {
        self.intent_at.get(tenant).and_then(|ids| ids.get(intent_id)).copied()
    }

    /// A new row changes in place; a stored one is updated at the next flush.
    pub(super) fn update_intent(&mut self, row: &IntentRow) {
        match self.new_intent(&row.tenant, &row.intent_id) {
            Some(at) => self.intents[at] = row.clone(),
            None => {
                self.intent_updates.insert((row.tenant.clone(), row.intent_id.clone()), row.clone());
            }
        }
    }

    /// The intent as this transaction last wrote it, if it did.
    pub(super) fn intent(&self, tenant: &str, intent_id: &str) -> Option<&IntentRow> {
        match self.new_intent(tenant, intent_id) {
            Some(at) => Some(&self.intents[at]),
            None => self.intent_updates.get(&(tenant.to_string(), intent_id.to_string())),
        }
    }

    /// The dispatch as this transaction last wrote it, if it did.
    pub(super) fn dispatch(&self, dispatch_id: &str) -> Option<&DispatchRow> {
        match self.dispatch_at.get(dispatch_id) {
            Some(&at) => Some(&self.dispatches[at]),
            None => self.dispatch_updates.get(dispatch_id),
        }
    }

    pub(super) fn insert_dispatch(&mut self, row: &DispatchRow) {
        self.dispatch_at.insert(row.dispatch_id.clone(), self.dispatches.len());
        self.dispatches.push(row.clone());
    }

    /// A new row changes in place; a stored one is updated at the next flush.
    pub(super) fn update_dispatch(&mut self, row: &DispatchRow) {
        match self.dispatch_at.get(&row.dispatch_id) {
            Some(&at) => self.dispatches[at] = row.clone(),
            None => {
                self.dispatch_updates.insert(row.dispatch_id.clone(), row.clone());
            }
        }
    }

    pub(super) fn insert_event(&mut self, tenant: &str, debtor_id: &str, event: EventRow) {
        let at = self.events.len();
        self.events.push((tenant.to_string(), debtor_id.to_string(), event));
        self.events_at.entry(tenant.to_string()).or_default().entry(debtor_id.to_string()).or_default().push(at);
    }

    /// A debtor's contacts recorded here since `since`, in the order recorded.
    pub(super) fn events<'a>(
        &'a self,
        tenant: &str,
        debtor_id: &str,
        since: i64,
    ) -> impl Iterator<Item = &'a EventRow> + 'a {
        let positions = self.events_at.get(tenant).and_then(|debtors| debtors.get(debtor_id));
        positions.into_iter().flatten().map(|&at| &self.events[at].2).filter(move |e| e.at >= since)
    }

    /// Sends every pending row: new intents, then new dispatches, changed
    /// intents, changed dispatches and new contact events.
    pub(super) async fn flush(self, db: &mut TxDb) -> StoreResult<()> {
        for chunk in in_chunks(self.intents) {
            insert_intents(db, chunk).await?;
        }
        for chunk in in_chunks(self.dispatches) {
            insert_dispatches(db, chunk).await?;
        }
        for chunk in in_chunks(self.intent_updates.into_values().collect()) {
            update_intents(db, chunk).await?;
        }
        for chunk in in_chunks(self.dispatch_updates.into_values().collect()) {
            update_dispatches(db, chunk).await?;
        }
        for chunk in in_chunks(self.events) {
            insert_events(db, chunk).await?;
        }
        Ok(())
    }
}

/// `rows` in chunks of at most `ROWS_PER_INSERT`, each its own: a SQLite
/// statement takes each value over instead of copying it (its texts are most
/// of a row).
pub(super) fn in_chunks<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || rows.peek().is_some().then(|| rows.by_ref().take(ROWS_PER_INSERT).collect()))
}

/// One field of every row: a PostgreSQL array parameter.
pub(super) fn column<'r, R, T>(rows: &'r [R], field: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(field).collect()
}

const PG_INSERT_INTENTS: &str = concat!(
    "INSERT INTO intents (",
    intent_columns!(),
    ") SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
     $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::bigint[], $15::text[], \
     $16::bigint[], $17::bigint[])"
);

async fn insert_intents(db: &mut TxDb, rows: Vec<IntentRow>) -> StoreResult<()> {
    match db {
        TxDb::Sqlite(tx) => {
            let mut insert = QueryBuilder::new(concat!("INSERT INTO intents (", intent_columns!(), ") "));
            insert.push_values(rows, |mut values, row| {
                values
                    .push_bind(row.tenant)
                    .push_bind(row.intent_id)
                    .push_bind(row.debtor_id)
                    .push_bind(row.debt_id)
                    .push_bind(row.channel)
                    .push_bind(row.jurisdiction)
                    .push_bind(row.priority)
                    .push_bind(row.body)
                    .push_bind(row.body_hash)
                    .push_bind(row.status)
                    .push_bind(row.next_eval_at)
                    .push_bind(row.decision)
                    .push_bind(row.dispatch_id)
                    .push_bind(row.attempt)
                    .push_bind(row.outcome)
                    .push_bind(row.created_at)
                    .push_bind(row.updated_at);
            });
            insert.build().execute(&mut **tx).await?;
        }
        TxDb::Postgres(tx, ..) => {
            sqlx::query(PG_INSERT_INTENTS)
                .bind(column(&rows, |r| r.tenant.as_str()))
                .bind(column(&rows, |r| r.intent_id.as_str()))
                .bind(column(&rows, |r| r.debtor_id.as_str()))
                .bind(column(&rows, |r| r.debt_id.as_deref()))
                .bind(column(&rows, |r| r.channel.as_str()))
                .bind(column(&rows, |r| r.jurisdiction.as_str()))
                .bind(column(&rows, |r| r.priority))
                .bind(column(&rows, |r| r.body.as_str()))
                .bind(column(&rows, |r| r.body_hash.as_str()))
                .bind(column(&rows, |r| r.status.as_str()))
                .bind(column(&rows, |r| r.next_eval_at))
                .bind(column(&rows, |r| r.decision.as_str()))
                .bind(column(&rows, |r| r.dispatch_id.as_deref()))
                .bind(column(&rows, |r| r.attempt))
                .bind(column(&rows, |r| r.outcome.map(|o| o.as_str())))
                .bind(column(&rows, |r| r.created_at))
                .bind(column(&rows, |r| r.updated_at))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

const PG_INSERT_DISPATCHES: &str = concat!(
    "INSERT INTO dispatches (",
    dispatch_columns!(),
    ") SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
     $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[])"
);

async fn insert_dispatches(db: &mut TxDb, rows: Vec<DispatchRow>) -> StoreResult<()> {
    match db {
        TxDb::Sqlite(tx) => {
            let mut insert = QueryBuilder::new(concat!("INSERT INTO dispatches (", dispatch_columns!(), ") "));
            insert.push_values(rows, |mut values, row| {
                values
                    .push_bind(row.dispatch_id)
                    .push_bind(row.tenant)
                    .push_bind(row.intent_id)
                    .push_bind(row.debtor_id)
                    .push_bind(row.channel)
                    .push_bind(row.priority)
                    .push_bind(row.released_at)
                    .push_bind(row.not_after)
                    .push_bind(row.state)
                    .push_bind(row.lease_expires_at)
                    .push_bind(row.attempt);
            });
            insert.build().execute(&mut **tx).await?;
        }
        TxDb::Postgres(tx, ..) => {
            sqlx::query(PG_INSERT_DISPATCHES)
                .bind(column(&rows, |r| r.dispatch_id.as_str()))
                .bind(column(&rows, |r| r.tenant.as_str()))
                .bind(column(&rows, |r| r.intent_id.as_str()))
                .bind(column(&rows, |r| r.debtor_id.as_str()))
                .bind(column(&rows, |r| r.channel.as_str()))
                .bind(column(&rows, |r| r.priority))
                .bind(column(&rows, |r| r.released_at))
                .bind(column(&rows, |r| r.not_after))
                .bind(column(&rows, |r| r.state.as_str()))
                .bind(column(&rows, |r| r.lease_expires_at))
                .bind(column(&rows, |r| r.attempt))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

const PG_UPDATE_INTENTS: &str = "UPDATE intents SET status = v.status, next_eval_at = v.next_eval_at, decision = v.decision, \
     dispatch_id = v.dispatch_id, attempt = v.attempt, outcome = v.outcome, updated_at = v.updated_at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], \
     $8::text[], $9::bigint[]) AS v(tenant, intent_id, status, next_eval_at, decision, dispatch_id, attempt, \
     outcome, updated_at) WHERE intents.tenant = v.tenant AND intents.intent_id = v.intent_id";

async fn update_intents(db: &mut TxDb, rows: Vec<IntentRow>) -> StoreResult<()> {
    match db {
        TxDb::Sqlite(tx) => {
            let mut update = QueryBuilder::new(
                "UPDATE intents SET status = v.column3, next_eval_at = v.column4, decision = v.column5, \
                 dispatch_id = v.column6, attempt = v.column7, outcome = v.column8, updated_at = v.column9 FROM (",
            );
            update.push_values(rows, |mut values, row| {
                values
                    .push_bind(row.tenant)
                    .push_bind(row.intent_id)
                    .push_bind(row.status)
                    .push_bind(row.next_eval_at)
                    .push_bind(row.decision)
                    .push_bind(row.dispatch_id)
                    .push_bind(row.attempt)
                    .push_bind(row.outcome)
                    .push_bind(row.updated_at);
            });
            update.push(") AS v WHERE intents.tenant = v.column1 AND intents.intent_id = v.column2");
            update.build().execute(&mut **tx).await?;
        }
        TxDb::Postgres(tx, ..) => {
            sqlx::query(PG_UPDATE_INTENTS)
                .bind(column(&rows, |r| r.tenant.as_str()))
                .bind(column(&rows, |r| r.intent_id.as_str()))
                .bind(column(&rows, |r| r.status.as_str()))
                .bind(column(&rows, |r| r.next_eval_at))
                .bind(column(&rows, |r| r.decision.as_str()))
                .bind(column(&rows, |r| r.dispatch_id.as_deref()))
                .bind(column(&rows, |r| r.attempt))
                .bind(column(&rows, |r| r.outcome.map(|o| o.as_str())))
                .bind(column(&rows, |r| r.updated_at))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

const PG_UPDATE_DISPATCHES: &str = "UPDATE dispatches SET not_after = v.not_after, state = v.state, \
     lease_expires_at = v.lease_expires_at, attempt = v.attempt FROM unnest($1::text[], $2::bigint[], $3::text[], \
     $4::bigint[], $5::bigint[]) AS v(dispatch_id, not_after, state, lease_expires_at, attempt) \
     WHERE dispatches.dispatch_id = v.dispatch_id";

async fn update_dispatches(db: &mut TxDb, rows: Vec<DispatchRow>) -> StoreResult<()> {
    match db {
        TxDb::Sqlite(tx) => {
            let mut update = QueryBuilder::new(
                "UPDATE dispatches SET not_after = v.column2, state = v.column3, lease_expires_at = v.column4, \
                 attempt = v.column5 FROM (",
            );
            update.push_values(rows, |mut values, row| {
                values
                    .push_bind(row.dispatch_id)
                    .push_bind(row.not_after)
                    .push_bind(row.state)
                    .push_bind(row.lease_expires_at)
                    .push_bind(row.attempt);
            });
            update.push(") AS v WHERE dispatches.dispatch_id = v.column1");
            update.build().execute(&mut **tx).await?;
        }
        TxDb::Postgres(tx, ..) => {
            sqlx::query(PG_UPDATE_DISPATCHES)
                .bind(column(&rows, |r| r.dispatch_id.as_str()))
                .bind(column(&rows, |r| r.not_after))
                .bind(column(&rows, |r| r.state.as_str()))
                .bind(column(&rows, |r| r.lease_expires_at))
                .bind(column(&rows, |r| r.attempt))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

const PG_INSERT_EVENTS: &str = concat!(
    "INSERT INTO contact_events (tenant, debtor_id, ",
    event_columns!(),
    ") SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[])"
);

async fn insert_events(db: &mut TxDb, rows: Vec<(String, String, EventRow)>) -> StoreResult<()> {
    match db {
        TxDb::Sqlite(tx) => {
            let mut insert =
                QueryBuilder::new(concat!("INSERT INTO contact_events (tenant, debtor_id, ", event_columns!(), ") "));
            insert.push_values(rows, |mut values, (tenant, debtor_id, event)| {
                values
                    .push_bind(tenant)
                    .push_bind(debtor_id)
                    .push_bind(event.debt_id)
                    .push_bind(event.channel)
                    .push_bind(event.at)
                    .push_bind(event.outcome)
                    .push_bind(event.dispatch_id)
                    .push_bind(event.contact_kind)
                    .push_bind(event.contact_id)
                    .push_bind(event.initiator);
            });
            insert.build().execute(&mut **tx).await?;
        }
        TxDb::Postgres(tx, ..) => {
            sqlx::query(PG_INSERT_EVENTS)
                .bind(column(&rows, |(tenant, _, _)| tenant.as_str()))
                .bind(column(&rows, |(_, debtor_id, _)| debtor_id.as_str()))
                .bind(column(&rows, |(_, _, e)| e.debt_id.as_deref()))
                .bind(column(&rows, |(_, _, e)| e.channel.as_str()))
                .bind(column(&rows, |(_, _, e)| e.at))
                .bind(column(&rows, |(_, _, e)| e.outcome.as_str()))
                .bind(column(&rows, |(_, _, e)| e.dispatch_id.as_deref()))
                .bind(column(&rows, |(_, _, e)| e.contact_kind.map(|k| k.as_str())))
                .bind(column(&rows, |(_, _, e)| e.contact_id.as_deref()))
                .bind(column(&rows, |(_, _, e)| e.initiator.as_str()))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
