//! What is PostgreSQL's own: connecting (every statement planned for its
//! parameters), advisory locks per debtor, claims and leases that skip rows
//! other replicas hold, and wake-ups between replicas over LISTEN/NOTIFY.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{Notify, watch};

use super::{Dialect, StoreError, StoreResult};

/// Rows another replica is claiming or leasing are skipped, not waited for;
/// a chain head is locked until the transaction ends.
pub(super) const DIALECT: Dialect = Dialect {
    claim_due: claim_due_sql!(" FOR UPDATE SKIP LOCKED"),
    expired_leases: open_dispatches_sql!(expired, " FOR UPDATE SKIP LOCKED"),
    ready_dispatches: open_dispatches_sql!(ready, " FOR UPDATE SKIP LOCKED"),
    chain_head: "SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE",
};

/// Opens the pool (16 connections, 5 s to get one). A URL naming several
/// hosts, as libpq writes it (`postgres://u@h1:5432,h2:5433/db`, optionally
/// `?target_session_attrs=read-write`), connects to whichever is the
/// writable primary, refuses connections to a standby, and follows the
/// primary when it moves (see [`PrimaryFollower`]).
pub(super) async fn connect(url: &str) -> StoreResult<(PgPool, Option<PrimaryFollower>)> {
    let servers = servers(url)?;
    let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5));
    let [only] = servers.as_slice() else {
        let primary = find_primary(&servers).await?;
        let pool = pool
            .after_connect(|conn, _| {
                Box::pin(async move {
                    match in_recovery(conn).await? {
                        false => Ok(()),
                        true => Err(sqlx::Error::Protocol("this server is a standby, not the primary".into())),
                    }
                })
            })
            .connect_with(primary)
            .await?;
        let follower = PrimaryFollower::start(pool.clone(), servers);
        return Ok((pool, Some(follower)));
    };
    Ok((pool.connect_with(only.clone()).await?, None))
}

/// The connect options of each host a URL names. Every statement is planned
/// for its parameters: a plan cached while a table was small (a fresh
/// database, autovacuum off or behind a bulk load) would keep scanning it
/// sequentially as it grows.
fn servers(url: &str) -> StoreResult<Vec<PgConnectOptions>> {
    let bad = |why: &str| StoreError::BadUrl(format!("{}: {why}", super::redact_url(url)));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    // Every host must be the writable primary: Ventana writes on every connection.
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut params = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("target_session_attrs", "read-write" | "primary")) => {}
            Some(("target_session_attrs", other)) => {
                return Err(bad(&format!(
                    "target_session_attrs={other}: Ventana writes, so it needs read-write (or primary)"
                )));
            }
            _ => params.push(param),
        }
    }
    let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
    hosts
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            let options = PgConnectOptions::from_str(&format!("{scheme}://{user}{host}{path}{query}"))?;
            Ok(options.options([("plan_cache_mode", "force_custom_plan")]))
        })
        .collect()
}

async fn in_recovery(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(conn).await
}

/// The first of `servers` that answers within 2 s and is not in recovery.
async fn find_primary(servers: &[PgConnectOptions]) -> StoreResult<PgConnectOptions> {
    use sqlx::{ConnectOptions, Connection};
    let mut seen = Vec::new();
    for server in servers {
        let probe = async {
            let mut conn = server.connect().await?;
            let standby = in_recovery(&mut conn).await?;
            let _ = conn.close().await;
            Ok::<bool, sqlx::Error>(standby)
        };
        let host = format!("{}:{}", server.get_host(), server.get_port());
        match tokio::time::timeout(Duration::from_secs(2), probe).await {
            Ok(Ok(false)) => return Ok(server.clone()),
            Ok(Ok(true)) => seen.push(format!("{host} is a standby")),
            Ok(Err(e)) => seen.push(format!("{host}: {e}")),
            Err(_) => seen.push(format!("{host}: no answer in 2 s")),
        }
    }
    Err(StoreError::Unavailable(sqlx::Error::Protocol(format!(
        "no writable primary among the hosts ({})",
        seen.join("; ")
    ))))
}

/// Follows the primary of a multi-host URL: twice a second it asks the
/// pool's server whether it is still the writable primary; when it is not
/// (or does not answer), it looks for the one that is among the hosts and
/// points the pool's new connections at it. Connections to the old one fail
/// their next use and are dropped. Stops when dropped (with its store).
#[derive(Debug)]
pub(super) struct PrimaryFollower(tokio::task::JoinHandle<()>);

impl PrimaryFollower {
    fn start(pool: PgPool, servers: Vec<PgConnectOptions>) -> PrimaryFollower {
        PrimaryFollower(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let check = sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&pool);
                if let Ok(Ok(false)) = tokio::time::timeout(Duration::from_secs(2), check).await {
                    continue;
                }
                match find_primary(&servers).await {
                    Ok(primary) => {
                        tracing::warn!(
                            host = primary.get_host(),
                            port = primary.get_port(),
                            "following the PostgreSQL primary"
                        );
                        pool.set_connect_options(primary);
                    }
                    Err(e) => tracing::warn!(error = %e, "no PostgreSQL primary found; looking again in 0.5 s"),
                }
            }
        }))
    }
}

impl Drop for PrimaryFollower {
    fn drop(&mut self) {
        self.0.abort();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_list_gives_one_server_per_host_with_the_rest_of_the_url() {
        let servers =
            servers("postgres://app:secret@db1:5432,db2:5433/ventana?target_session_attrs=read-write&sslmode=disable")
                .expect("a valid host list");
        let hosts: Vec<(String, u16)> = servers.iter().map(|s| (s.get_host().to_string(), s.get_port())).collect();
        assert_eq!(hosts, [("db1".to_string(), 5432), ("db2".to_string(), 5433)]);
        assert!(servers.iter().all(|s| s.get_database() == Some("ventana") && s.get_username() == "app"));
        assert_eq!(super::servers("postgres://db1/ventana").expect("one host").len(), 1);
    }

    #[test]
    fn a_host_list_that_cannot_reach_a_primary_is_refused_with_its_reason() {
        let refused = servers("postgres://u:pw@db1,db2/v?target_session_attrs=read-only").expect_err("read-only");
        let message = refused.to_string();
        assert!(message.contains("read-write") && message.contains("u:***@"), "{message}");
        assert!(servers("postgres://u@db1,,db2/v").expect_err("empty host").to_string().contains("empty host"));
    }
}
