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

/// Rows another replica is claiming or leasing are skipped, not waited for.
pub(super) const DIALECT: Dialect = Dialect {
    claim_due: claim_due_sql!(" FOR UPDATE SKIP LOCKED"),
    expired_leases: open_dispatches_sql!(expired, " FOR UPDATE SKIP LOCKED"),
    ready_dispatches: open_dispatches_sql!(ready, " FOR UPDATE SKIP LOCKED"),
};

/// Opens the pool (16 connections, 5 s to get one). A URL naming several
/// hosts, as libpq writes it (`postgres://u@h1:5432,h2:5433/db`, optionally
/// `?target_session_attrs=read-write`), connects to whichever is the
/// writable primary, refuses connections to a standby, and follows the
/// primary when it moves (see [`PrimaryFollower`]); a single host with
/// `target_session_attrs=read-write` (or `primary`) refuses a standby too.
pub(super) async fn connect(url: &str) -> StoreResult<(PgPool, Option<PrimaryFollower>)> {
    let Servers { hosts, require_primary } = servers(url)?;
    let mut pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5));
    if require_primary {
        pool = pool.after_connect(|conn, _| {
            Box::pin(async move {
                match in_recovery(conn).await? {
                    false => Ok(()),
                    true => Err(sqlx::Error::Protocol("this server is a standby, not the primary".into())),
                }
            })
        });
    }
    let [only] = hosts.as_slice() else {
        let primary = find_primary(&hosts).await?;
        let pool = pool.connect_with(primary.clone()).await?;
        let follower = PrimaryFollower::start(pool.clone(), hosts, primary);
        return Ok((pool, Some(follower)));
    };
    Ok((pool.connect_with(only.clone()).await?, None))
}

/// The servers a URL names, and whether only a writable primary will do.
struct Servers {
    hosts: Vec<PgConnectOptions>,
    require_primary: bool,
}

/// The connect options of each host a URL names (one URL per host, the rest
/// of the URL unchanged; a URL without a host list is passed to sqlx as it
/// is, so `?host=/run/postgresql` and `PGHOST` keep working). Every
/// statement is planned for its parameters: a plan cached while a table was
/// small (a fresh database, autovacuum off or behind a bulk load) would
/// keep scanning it sequentially as it grows.
fn servers(url: &str) -> StoreResult<Servers> {
    let bad = |why: &str| StoreError::BadUrl(format!("{}: {why}", super::redact_url(url)));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut params = Vec::new();
    let mut asks_primary = false;
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("target_session_attrs", "read-write" | "primary")) => asks_primary = true,
            Some(("target_session_attrs", "any")) => {}
            Some(("target_session_attrs", other)) => {
                return Err(bad(&format!(
                    "target_session_attrs={other}: Ventana writes, so it needs read-write, primary or any"
                )));
            }
            _ => params.push(param),
        }
    }
    let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
    let planned = |options: PgConnectOptions| options.options([("plan_cache_mode", "force_custom_plan")]);
    if !authority.contains(',') {
        let options = PgConnectOptions::from_str(&format!("{scheme}://{authority}{path}{query}"))?;
        return Ok(Servers { hosts: vec![planned(options)], require_primary: asks_primary });
    }
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let hosts = hosts
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            Ok(planned(PgConnectOptions::from_str(&format!("{scheme}://{user}{host}{path}{query}"))?))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // Ventana writes on every connection: among several hosts only the primary will do.
    Ok(Servers { hosts, require_primary: true })
}

/// One connection to the first host of `url` that answers (a standby will
/// do: for reading only).
pub(super) async fn connect_any(url: &str) -> StoreResult<sqlx::PgConnection> {
    use sqlx::ConnectOptions;
    let mut last = None;
    for server in servers(url)?.hosts {
        match server.connect().await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| StoreError::BadUrl(super::redact_url(url)), StoreError::from))
}

async fn in_recovery(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(conn).await
}

fn host_of(server: &PgConnectOptions) -> String {
    format!("{}:{}", server.get_host(), server.get_port())
}

/// Whether `server` answers within 2 s as a writable primary, on a
/// connection of its own (`Err` says why not).
async fn probe(server: &PgConnectOptions) -> Result<(), String> {
    use sqlx::{ConnectOptions, Connection};
    let check = async {
        let mut conn = server.connect().await?;
        let standby = in_recovery(&mut conn).await;
        let _ = conn.close().await;
        standby
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => Err(format!("{} is a standby", host_of(server))),
        Ok(Err(e)) => Err(format!("{}: {e}", host_of(server))),
        Err(_) => Err(format!("{}: no answer in 2 s", host_of(server))),
    }
}

/// The one writable primary among `servers`. Two writable hosts at once (a
/// former primary back after a failover) is refused, not guessed: writing
/// to both would break caps and leases.
async fn find_primary(servers: &[PgConnectOptions]) -> StoreResult<PgConnectOptions> {
    let mut writable = Vec::new();
    let mut seen = Vec::new();
    for server in servers {
        match probe(server).await {
            Ok(()) => writable.push(server),
            Err(why) => seen.push(why),
        }
    }
    let unavailable = |why: String| StoreError::Unavailable(sqlx::Error::Protocol(why));
    match writable.as_slice() {
        [primary] => Ok((*primary).clone()),
        [] => Err(unavailable(format!("no writable primary among the hosts ({})", seen.join("; ")))),
        several => Err(unavailable(format!(
            "several hosts are writable ({}): refusing to choose between two primaries",
            several.iter().map(|s| host_of(s)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Follows the primary of a multi-host URL: twice a second it asks the
/// current primary, on a connection of its own (a busy pool is no sign of
/// a failover), whether it is still writable; when it is not, it looks for
/// the one primary among the hosts and points the pool's new connections at
/// it (connections to the old one fail their next use and are dropped).
/// While no primary is found it looks again, backing off to every 5 s.
/// Stops when the store is closed or its last clone dropped.
#[derive(Debug)]
pub(super) struct PrimaryFollower(tokio::task::JoinHandle<()>);

impl PrimaryFollower {
    fn start(pool: PgPool, servers: Vec<PgConnectOptions>, mut current: PgConnectOptions) -> PrimaryFollower {
        PrimaryFollower(tokio::spawn(async move {
            let mut pause = Duration::from_millis(500);
            loop {
                tokio::time::sleep(pause).await;
                if pool.is_closed() {
                    return;
                }
                if probe(&current).await.is_ok() {
                    pause = Duration::from_millis(500);
                    continue;
                }
                match find_primary(&servers).await {
                    Ok(primary) => {
                        if host_of(&primary) != host_of(&current) {
                            tracing::warn!(from = %host_of(&current), to = %host_of(&primary), "following the PostgreSQL primary");
                            pool.set_connect_options(primary.clone());
                            current = primary;
                        }
                        pause = Duration::from_millis(500);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no PostgreSQL primary to follow; looking again");
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }))
    }

    /// Stops following (the store is being closed).
    pub(super) fn stop(&self) {
        self.0.abort();
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
                .expect("a valid host list")
                .hosts;
        let hosts: Vec<(String, u16)> = servers.iter().map(|s| (s.get_host().to_string(), s.get_port())).collect();
        assert_eq!(hosts, [("db1".to_string(), 5432), ("db2".to_string(), 5433)]);
        assert!(servers.iter().all(|s| s.get_database() == Some("ventana") && s.get_username() == "app"));
        let one = super::servers("postgres://db1/ventana").expect("one host");
        assert_eq!((one.hosts.len(), one.require_primary), (1, false));
        assert!(super::servers("postgres://db1/v?target_session_attrs=read-write").expect("one").require_primary);
        // No host in the URL: sqlx takes it from ?host= (a socket directory) or PGHOST.
        let socket = super::servers("postgres:///ventana?host=/run/postgresql").expect("a socket URL");
        assert_eq!(socket.hosts[0].get_socket(), Some(&std::path::PathBuf::from("/run/postgresql")));
    }

    #[test]
    fn a_host_list_that_cannot_reach_a_primary_is_refused_with_its_reason() {
        let refused = servers("postgres://u:pw@db1,db2/v?target_session_attrs=read-only").err().expect("read-only");
        let message = refused.to_string();
        assert!(message.contains("read-write") && message.contains("u:***@"), "{message}");
        let empty = servers("postgres://u@db1,,db2/v").err().expect("empty host");
        assert!(empty.to_string().contains("empty host"), "{empty}");
    }
}
