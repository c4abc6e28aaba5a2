//! What is PostgreSQL's own: connecting (every statement planned for its
//! parameters), advisory locks per debtor, claims and leases that skip rows
//! other replicas hold, and wake-ups between replicas over LISTEN/NOTIFY.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{Notify, watch};

use super::{Dialect, StoreResult};

/// Rows another replica is claiming or leasing are skipped, not waited for;
/// a chain head is locked until the transaction ends.
pub(super) const DIALECT: Dialect = Dialect {
    claim_due: claim_due_sql!(" FOR UPDATE SKIP LOCKED"),
    expired_leases: open_dispatches_sql!(expired, " FOR UPDATE SKIP LOCKED"),
    ready_dispatches: open_dispatches_sql!(ready, " FOR UPDATE SKIP LOCKED"),
    chain_head: "SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE",
};

/// Opens the pool (16 connections, 5 s to get one).
pub(super) async fn connect(url: &str) -> StoreResult<PgPool> {
    // Plans are made per execution: a plan cached while a table was small
    // (a fresh database, autovacuum off or behind a bulk load) would keep
    // scanning it sequentially as it grows.
    let options = PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
    Ok(PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5)).connect_with(options).await?)
}

/// Applies pending migrations.
pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::migrate!("migrations/postgres").run(pool).await?;
    Ok(())
}

/// The debtors (tenant, debtor id) a transaction holds locked: transaction-
/// scoped advisory locks keyed by tenant and debtor.
#[derive(Default)]
pub(super) struct DebtorLocks(HashSet<(String, String)>);

impl DebtorLocks {
    /// Locks these debtors in the order given, in one statement (PostgreSQL
    /// evaluates a volatile select list after ORDER BY); debtors held already
    /// are skipped.
    pub(super) async fn lock(
        &mut self,
        tx: &mut Transaction<'static, Postgres>,
        debtors: &[(&str, &str)],
    ) -> StoreResult<()> {
        let (tenants, ids): (Vec<&str>, Vec<&str>) = debtors
            .iter()
            .filter(|(tenant, debtor)| !self.0.contains(&(tenant.to_string(), debtor.to_string())))
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
        self.0.extend(tenants.into_iter().zip(ids).map(|(t, d)| (t.to_string(), d.to_string())));
        Ok(())
    }

    /// Like `lock` but never waits: for each debtor, whether the transaction
    /// now holds it.
    pub(super) async fn try_lock(
        &mut self,
        tx: &mut Transaction<'static, Postgres>,
        debtors: &[(&str, &str)],
    ) -> StoreResult<Vec<bool>> {
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
                self.0.insert((tenant.to_string(), debtor.to_string()));
            }
        }
        Ok(held)
    }
}

/// NOTIFY on `ventana_wakeup`: every replica's listener wakes its scheduler.
pub(super) async fn notify_wakeup(pool: &PgPool) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify('ventana_wakeup', '')").execute(pool).await?;
    Ok(())
}

/// Wakes `wakeup` on every NOTIFY until `shutdown` turns true; reconnects
/// (after a second) whenever the listening connection fails.
pub(super) async fn listen_for_wakeups(pool: &PgPool, wakeup: &Notify, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let mut listener = match PgListener::connect_with(pool).await {
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
