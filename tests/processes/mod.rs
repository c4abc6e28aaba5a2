//! What the multi-process tests share: `ventana serve` as a child process on
//! a loopback port, over a test rule set, and a fresh PostgreSQL database.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;
use tonic::metadata::{Ascii, MetadataValue};

/// Any hour, any day; at most ten contacts per debtor in any 24 hours.
pub const RULES: &str = r#"
jurisdiction = "ZZ"
name = "Replica test land: any hour, ten contacts a day"
time_zones = ["UTC"]

[[versions]]
effective_from = 2020-01-01

[[versions.windows]]
id = "zz-any-hour"
citation = "test"
description = "any hour, any day"
basis = "recommended"
channels = ["all"]
mon_fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]
holiday = ["00:00-24:00"]

[[versions.caps]]
id = "zz-ten-a-day"
citation = "test"
description = "at most ten contacts per debtor in any 24 hours"
basis = "recommended"
channels = ["all"]
scope = "debtor"
limit = 10
rolling = "24h"
"#;

/// Writes `rules/ZZ.toml` and `ventana.toml` (with `config`) into `dir`.
pub fn write_setup(dir: &std::path::Path, config: &str) {
    std::fs::create_dir_all(dir.join("rules")).expect("rules dir");
    std::fs::write(dir.join("rules/ZZ.toml"), RULES).expect("rules");
    std::fs::write(dir.join("ventana.toml"), config).expect("config");
}

pub struct Replica {
    pub child: Child,
    pub addr: SocketAddr,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `ventana` with the test's database, and the rules and config file in `dir`.
pub fn ventana(args: &[&str], database_url: &str, dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ventana"));
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("VENTANA_JURISDICTIONS", dir.join("rules"))
        .env("VENTANA_CONFIG", dir.join("ventana.toml"))
        .env("RUST_LOG", "warn");
    command
}

pub async fn start_replica(database_url: &str, dir: &std::path::Path) -> Replica {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut child =
        ventana(&["serve", "--listen", &addr.to_string(), "--metrics-listen", "127.0.0.1:0"], database_url, dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("replica starts");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Replica { child, addr };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("replica on {addr} never listened");
}

pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy()
}

pub fn with_key<T>(message: T, key: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", key.clone());
    request
}

/// A new, empty PostgreSQL database (the server must be up: a missing server fails the test).
pub async fn fresh_database() -> String {
    let admin =
        std::env::var("VENTANA_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn =
        sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL is required ({admin}): {e}"));
    let name = format!("ventana_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    format!("{}/{name}", admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base))
}

/// An API key for tenant `acme` with `roles`, made with `ventana keys create`.
pub fn create_key(database_url: &str, dir: &std::path::Path, roles: &[&str]) -> MetadataValue<Ascii> {
    let mut args = vec!["keys", "create", "--tenant", "acme"];
    for role in roles {
        args.extend(["--role", role]);
    }
    let output = ventana(&args, database_url, dir).output().expect("keys create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    format!("Bearer {}", String::from_utf8_lossy(&output.stdout).trim()).parse().expect("ascii")
}
