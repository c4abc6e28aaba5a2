//! The audit chain's storage. `crate::audit` computes (canonical bytes,
//! hashes, the links of a chain); this file stores: it appends at commit the
//! rows `ChainHead::link` made, keeps each tenant's head, reads pages, heads
//! and checkpoints back, and purges behind a signed checkpoint.

use std::collections::BTreeMap;

use sqlx::QueryBuilder;

use crate::audit::{AuditEvent, AuditRow, ChainHead};

use super::write_behind::{column, in_chunks};
use super::{Pool, ROWS_PER_INSERT, Store, StoreError, StoreResult, TxDb};

/// The columns of `audit_log`, in `AuditRow` order.
macro_rules! audit_columns {
    () => {
        "tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, time_zone, local_time, \
         decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, prev_hash, hash"
    };
}

/// Appends events to their tenants' chains. Called last in a transaction, so
/// chain heads are locked last, all in one statement and in tenant order:
/// appends never deadlock. However many tenants a group names, the append
/// is four statements (and one more per `ROWS_PER_INSERT` rows).
pub(super) async fn append(db: &mut TxDb, events: Vec<AuditEvent>) -> StoreResult<()> {
    let mut by_tenant: BTreeMap<String, Vec<AuditEvent>> = BTreeMap::new();
    for event in events {
        by_tenant.entry(event.tenant.clone()).or_default().push(event);
    }
    if by_tenant.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = by_tenant.keys().map(String::as_str).collect();
    let mut heads = lock_heads(db, &tenants).await?;
    let mut rows = Vec::new();
    for (tenant, events) in by_tenant {
        let head = heads.get_mut(&tenant).ok_or_else(|| StoreError::Unreadable {
            table: "audit_heads",
            key: tenant.clone(),
            why: "the chain head is missing right after it was created".into(),
        })?;
        rows.extend(head.link(events));
    }
    for chunk in in_chunks(rows) {
        insert_rows(db, chunk).await?;
    }
    let heads: Vec<(String, ChainHead)> = heads.into_iter().collect();
    for chunk in heads.chunks(ROWS_PER_INSERT) {
        match &mut *db {
            TxDb::Sqlite(tx) => {
                let mut update = QueryBuilder::new("UPDATE audit_heads SET seq = v.column2, hash = v.column3 FROM (");
                update.push_values(chunk, |mut values, (tenant, head)| {
                    values.push_bind(tenant).push_bind(head.seq).push_bind(&head.hash);
                });
                update.push(") AS v WHERE audit_heads.tenant = v.column1");
                update.build().execute(&mut **tx).await?;
            }
            TxDb::Postgres(tx, ..) => {
                sqlx::query(
                    "UPDATE audit_heads SET seq = v.seq, hash = v.hash FROM unnest($1::text[], $2::bigint[], \
                     $3::text[]) AS v(tenant, seq, hash) WHERE audit_heads.tenant = v.tenant",
                )
                .bind(column(chunk, |(tenant, _)| tenant.as_str()))
                .bind(column(chunk, |(_, head)| head.seq))
                .bind(column(chunk, |(_, head)| head.hash.as_str()))
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// The chain heads of `tenants` (sorted), created at genesis for those
/// without one. Read in tenant order, byte by byte (the order `tenants` is
/// sorted and chunked in): on PostgreSQL they stay locked until the
/// transaction ends, and every append takes them in that one order.
async fn lock_heads(db: &mut TxDb, tenants: &[&str]) -> StoreResult<BTreeMap<String, ChainHead>> {
    let genesis = ChainHead::genesis();
    let mut heads = BTreeMap::new();
    for chunk in tenants.chunks(ROWS_PER_INSERT) {
        let found: Vec<(String, i64, String)> = match &mut *db {
            TxDb::Sqlite(tx) => {
                let mut insert = QueryBuilder::new("INSERT INTO audit_heads (tenant, seq, hash) ");
                insert.push_values(chunk, |mut values, tenant| {
                    values.push_bind(*tenant).push_bind(genesis.seq).push_bind(&genesis.hash);
                });
                insert.push(" ON CONFLICT (tenant) DO NOTHING");
                insert.build().execute(&mut **tx).await?;
                let mut select = QueryBuilder::new("SELECT tenant, seq, hash FROM audit_heads WHERE tenant IN (");
                let mut list = select.separated(", ");
                chunk.iter().for_each(|tenant| {
                    list.push_bind(*tenant);
                });
                list.push_unseparated(") ORDER BY tenant");
                select.build_query_as().fetch_all(&mut **tx).await?
            }
            TxDb::Postgres(tx, ..) => {
                sqlx::query(
                    "INSERT INTO audit_heads (tenant, seq, hash) SELECT t, $2, $3 FROM unnest($1::text[]) AS t \
                     ON CONFLICT (tenant) DO NOTHING",
                )
                .bind(chunk)
                .bind(genesis.seq)
                .bind(&genesis.hash)
                .execute(&mut **tx)
                .await?;
                sqlx::query_as(
                    "SELECT tenant, seq, hash FROM audit_heads WHERE tenant = ANY($1::text[]) \
                     ORDER BY tenant COLLATE \"C\" FOR UPDATE",
                )
                .bind(chunk)
                .fetch_all(&mut **tx)
                .await?
            }
        };
        heads.extend(found.into_iter().map(|(tenant, seq, hash)| (tenant, ChainHead { seq, hash })));
    }
    Ok(heads)
}

const PG_INSERT_ROWS: &str = concat!(
    "INSERT INTO audit_log (",
    audit_columns!(),
    ") SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], \
     $16::text[], $17::text[], $18::text[], $19::text[], $20::text[])"
);

/// Inserts chained rows in one statement (on PostgreSQL one array per
/// column, as `write_behind` explains).
async fn insert_rows(db: &mut TxDb, rows: Vec<AuditRow>) -> StoreResult<()> {
    match db {
        TxDb::Sqlite(tx) => {
            let mut insert = QueryBuilder::new(concat!("INSERT INTO audit_log (", audit_columns!(), ") "));
            insert.push_values(rows, |mut values, row| {
                let e = row.event;
                values
                    .push_bind(e.tenant)
                    .push_bind(row.seq)
                    .push_bind(e.at)
                    .push_bind(e.kind)
                    .push_bind(e.intent_id)
                    .push_bind(e.debtor_id)
                    .push_bind(e.debt_id)
                    .push_bind(e.channel)
                    .push_bind(e.jurisdiction)
                    .push_bind(e.time_zone)
                    .push_bind(e.local_time)
                    .push_bind(e.decision)
                    .push_bind(e.reason_codes)
                    .push_bind(e.rule_ids)
                    .push_bind(e.citations)
                    .push_bind(e.rules_version)
                    .push_bind(e.outcome)
                    .push_bind(e.detail)
                    .push_bind(row.prev_hash)
                    .push_bind(row.hash);
            });
            insert.build().execute(&mut **tx).await?;
        }
        TxDb::Postgres(tx, ..) => {
            sqlx::query(PG_INSERT_ROWS)
                .bind(column(&rows, |r| r.event.tenant.as_str()))
                .bind(column(&rows, |r| r.seq))
                .bind(column(&rows, |r| r.event.at))
                .bind(column(&rows, |r| r.event.kind.as_str()))
                .bind(column(&rows, |r| r.event.intent_id.as_deref()))
                .bind(column(&rows, |r| r.event.debtor_id.as_deref()))
                .bind(column(&rows, |r| r.event.debt_id.as_deref()))
                .bind(column(&rows, |r| r.event.channel.map(|c| c.as_str())))
                .bind(column(&rows, |r| r.event.jurisdiction.as_deref()))
                .bind(column(&rows, |r| r.event.time_zone.as_deref()))
                .bind(column(&rows, |r| r.event.local_time.as_deref()))
                .bind(column(&rows, |r| r.event.decision.as_deref()))
                .bind(column(&rows, |r| r.event.reason_codes.as_deref()))
                .bind(column(&rows, |r| r.event.rule_ids.as_deref()))
                .bind(column(&rows, |r| r.event.citations.as_deref()))
                .bind(column(&rows, |r| r.event.rules_version.as_deref()))
                .bind(column(&rows, |r| r.event.outcome.map(|o| o.as_str())))
                .bind(column(&rows, |r| r.event.detail.as_str()))
                .bind(column(&rows, |r| r.prev_hash.as_str()))
                .bind(column(&rows, |r| r.hash.as_str()))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Tenants that have an audit chain.
    pub async fn audit_tenants(&self) -> StoreResult<Vec<String>> {
        let sql = "SELECT tenant FROM audit_heads ORDER BY tenant";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    /// The head (last sequence and hash) of a tenant's chain.
    pub async fn audit_head(&self, tenant: &str) -> StoreResult<Option<(i64, String)>> {
        let sql = "SELECT seq, hash FROM audit_heads WHERE tenant = $1";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).bind(tenant).fetch_optional(pool).await?))
    }

    /// Where a purged chain starts: (last purged seq, its hash, purged at, signature).
    pub async fn audit_checkpoint(&self, tenant: &str) -> StoreResult<Option<(i64, String, i64, String)>> {
        let sql = "SELECT seq, hash, purged_at, signature FROM audit_checkpoints WHERE tenant = $1";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql).bind(tenant).fetch_optional(pool).await?))
    }

    /// Up to `limit` events of a tenant with `seq > after` and `seq <= last`, in order.
    pub async fn audit_page(&self, tenant: &str, after: i64, last: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        );
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(after)
            .bind(last)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(super::in_row("audit_log", || format!("({tenant}, after {after})")))?))
    }

    /// The first `limit` events of a tenant that name `debtor_id`, in chain
    /// order (the console's timeline; the chain itself is verified by `audit verify`).
    pub async fn audit_of_debtor(&self, tenant: &str, debtor_id: &str, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE tenant = $1 AND debtor_id = $2 ORDER BY seq LIMIT $3"
        );
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(debtor_id)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(super::in_row("audit_log", || format!("({tenant}, debtor {debtor_id})")))?))
    }

    /// The sequence range of a tenant's events with `from <= at < to`.
    pub async fn audit_seq_range(&self, tenant: &str, from: i64, to: i64) -> StoreResult<(Option<i64>, Option<i64>)> {
        let sql = "SELECT MIN(seq), MAX(seq) FROM audit_log WHERE tenant = $1 AND at >= $2 AND at < $3";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_as(sql)
            .bind(tenant)
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await?))
    }

    /// The hash of one event.
    pub async fn audit_hash(&self, tenant: &str, seq: i64) -> StoreResult<Option<String>> {
        let sql = "SELECT hash FROM audit_log WHERE tenant = $1 AND seq = $2";
        Ok(either!(&self.pool, Pool, |pool| sqlx::query_scalar(sql)
            .bind(tenant)
            .bind(seq)
            .fetch_optional(pool)
            .await?))
    }

    /// Deletes a tenant's events up to `seq` and records the signed checkpoint, in one transaction.
    pub async fn purge_audit(&self, tenant: &str, seq: i64, hash: &str, now: i64, signature: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let delete = "DELETE FROM audit_log WHERE tenant = $1 AND seq <= $2";
        let deleted = either!(&mut tx.db, TxDb, |db| sqlx::query(delete)
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
}
