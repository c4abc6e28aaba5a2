//! A fresh, empty database per test on either backend, gone when the test
//! ends, and the macro that runs a test once on each backend.

use std::time::Duration;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on: the one
/// `VENTANA_TEST_POSTGRES_URL` names, or this run's own throwaway cluster.
pub fn postgres_admin_url() -> String {
    crate::support::postgres::shared_admin_url().to_string()
}

/// `host:port` of that server (for a test that stands between it and Ventana).
pub fn postgres_address() -> String {
    let url = postgres_admin_url();
    let after_at = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    after_at.split(['/', '?']).next().unwrap_or(after_at).to_string()
}

/// PostgreSQL: polls (bounded, 20 ms apart, about 20 s) until `count_sql`, a
/// `SELECT COUNT(*)` over the server's views, reads at least `count` in the
/// database of `url`; whether it did.
pub async fn reaches_count(url: &str, count_sql: &'static str, count: i64) -> bool {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    for _ in 0..1000 {
        let counted: i64 = sqlx::query_scalar(count_sql).fetch_one(&mut conn).await.expect(count_sql);
        if counted >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// PostgreSQL: waits (bounded) until `count` advisory lock requests in the
/// database of `url` wait ungranted, i.e. until that many lockers are blocked.
pub async fn wait_for_blocked_lockers(url: &str, count: i64) {
    let blocked = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    assert!(
        reaches_count(url, blocked, count).await,
        "{count} locker(s) never waited for the debtor lock: the lock did not make them wait"
    );
}

/// A fresh, empty database: a SQLite file in a temporary directory, or a
/// PostgreSQL database `ventana_test_<uuid>`. Dropping it removes it (the
/// PostgreSQL one with `DROP DATABASE … WITH (FORCE)`, so sessions a failed
/// test left open do not keep it), so runs leave nothing behind.
/// PostgreSQL must be reachable: a missing server fails the test, never skips it.
pub struct TestDatabase {
    url: String,
    owner: Owner,
}

enum Owner {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres().await,
        }
    }

    /// A SQLite file (not created yet) in a new temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("ventana.db").display());
        TestDatabase { url, owner: Owner::Sqlite(dir) }
    }

    /// A new PostgreSQL database.
    pub async fn postgres() -> TestDatabase {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required for these tests ({admin}): {e}"));
        let name = format!("ventana_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        TestDatabase { url: format!("{base}/{name}"), owner: Owner::Postgres { admin, name } }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> Option<&str> {
        match &self.owner {
            Owner::Sqlite(_) => None,
            Owner::Postgres { name, .. } => Some(name),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.owner {
            Owner::Sqlite(_) => Backend::Sqlite,
            Owner::Postgres { .. } => Backend::Postgres,
        }
    }
}

impl Drop for TestDatabase {
    /// Drops the PostgreSQL database on a thread of its own (a `Drop` may run
    /// inside a runtime, which must not block on itself), bounded so that a
    /// server gone away meanwhile cannot hang the test; a failure is reported,
    /// not raised (this may run while a failed test unwinds).
    fn drop(&mut self) {
        let Owner::Postgres { admin, name } = &self.owner else { return };
        let (admin, name) = (admin.clone(), name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                use sqlx::Connection;
                let drop = async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                };
                match tokio::time::timeout(Duration::from_secs(30), drop).await {
                    Ok(result) => result.map_err(|e| format!("{name}: {e}")),
                    Err(_) => Err(format!("{name}: no answer in 30 s")),
                }
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database not dropped: {e}"),
            Err(_) => eprintln!("warning: test database not dropped: the dropping thread panicked"),
        }
    }
}

/// Declares an async test that runs once on SQLite and once on PostgreSQL:
/// `on_both_backends!(name)` for `async fn name(backend: Backend)` gives the
/// tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::database::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::database::Backend::Postgres).await
            }
        }
    };
}
