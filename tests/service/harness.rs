//! What the shared harness promises that needs a database: a test's
//! PostgreSQL database is gone when its guard is dropped.

use sqlx::Connection;
use ventana::store::Store;

use crate::support::database::{TestDatabase, postgres_admin_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_is_dropped_with_its_guard_even_with_sessions_open() {
    let database = TestDatabase::postgres().await;
    let name = database.name().expect("a PostgreSQL database").to_string();
    let store = Store::connect(database.url()).await.expect("store opens");
    store.get_intent("acme", "i-1").await.expect("a session is open");
    let exists = |name: String| async move {
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("pg_database");
        count == 1
    };
    assert!(exists(name.clone()).await, "created");
    drop(database);
    assert!(!exists(name).await, "dropped, though the store still had a session on it");
}
