//! Several `ventana serve` processes on one PostgreSQL database, on the
//! system clock: 10,000 intents for 500 debtors under a cap, submitted
//! through three replicas while one is killed with SIGKILL. Nothing is lost,
//! no cap is exceeded, nothing is released twice, and leases held by the
//! dead replica are re-offered by the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;
use tonic::metadata::{Ascii, MetadataValue};
use ventana::api::pb;

const RULES: &str = r#"
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

const DEBTORS: usize = 500;
const INTENTS: usize = 10_000;

struct Replica {
    child: Child,
    addr: SocketAddr,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn ventana(args: &[&str], database_url: &str, rules: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ventana"));
    command.args(args).env("DATABASE_URL", database_url).env("VENTANA_JURISDICTIONS", rules).env("RUST_LOG", "warn");
    command
}

async fn start_replica(database_url: &str, rules: &std::path::Path) -> Replica {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut child =
        ventana(&["serve", "--listen", &addr.to_string(), "--metrics-listen", "127.0.0.1:0"], database_url, rules)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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

async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy()
}

fn with_key<T>(message: T, key: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", key.clone());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_killed_nothing_lost_or_doubled() {
    let admin =
        std::env::var("VENTANA_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn =
        sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL is required ({admin}): {e}"));
    let name = format!("ventana_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let database_url = format!("{}/{name}", admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base));
    let rules = tempfile::tempdir().expect("dir");
    std::fs::write(rules.path().join("ZZ.toml"), RULES).expect("rules");

    let output = ventana(
        &["keys", "create", "--tenant", "acme", "--role", "submitter", "--role", "adapter"],
        &database_url,
        rules.path(),
    )
    .output()
    .expect("keys create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key: MetadataValue<Ascii> =
        format!("Bearer {}", String::from_utf8_lossy(&output.stdout).trim()).parse().expect("ascii");

    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(start_replica(&database_url, rules.path()).await);
    }
    let channels: Vec<_> = futures_channels(&replicas).await;

    // Submit through all three; kill the third halfway. A failed call is retried on
    // another replica with the same intent_id (Submit is idempotent).
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut victim = replicas.pop().expect("third replica");
    let mut workers = Vec::new();
    for worker in 0..24 {
        let (next, killed, key, channels) = (next.clone(), killed.clone(), key.clone(), channels.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= INTENTS {
                    return;
                }
                let intent = pb::Intent {
                    intent_id: format!("i-{n}"),
                    debtor_id: format!("d-{}", n % DEBTORS),
                    channel: pb::Channel::Sms as i32,
                    party: pb::Party::Debtor as i32,
                    stage: pb::Stage::Extrajudicial as i32,
                    jurisdiction: "ZZ".into(),
                    ..Default::default()
                };
                let mut attempt = worker + n;
                loop {
                    let alive = if killed.load(std::sync::atomic::Ordering::Relaxed) { 2 } else { 3 };
                    let mut client =
                        pb::contact_scheduler_client::ContactSchedulerClient::new(channels[attempt % alive].clone());
                    match client.submit(with_key(pb::SubmitRequest { intent: Some(intent.clone()) }, &key)).await {
                        Ok(_) => break,
                        Err(_) => attempt += 1,
                    }
                }
            }
        }));
    }
    while next.load(std::sync::atomic::Ordering::Relaxed) < INTENTS / 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    victim.child.kill().expect("SIGKILL");
    killed.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let _ = victim.child.wait();

    // Lease everything that was released, through the two survivors, and ack it.
    let mut leased: HashMap<String, u32> = HashMap::new();
    for round in 0.. {
        let mut adapter = pb::dispatch_client::DispatchClient::new(channels[round % 2].clone());
        let items = adapter
            .lease(with_key(
                pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 500, lease_duration: None },
                &key,
            ))
            .await
            .expect("lease")
            .into_inner()
            .items;
        if items.is_empty() {
            break;
        }
        let mut acks = Vec::new();
        for item in items {
            *leased.entry(item.dispatch_id.clone()).or_default() += 1;
            let (mut adapter, key) = (adapter.clone(), key.clone());
            acks.push(tokio::spawn(async move {
                let ack = pb::AckRequest {
                    dispatch_id: item.dispatch_id,
                    outcome: pb::Outcome::Delivered as i32,
                    at: None,
                    detail: String::new(),
                };
                adapter.ack(with_key(ack, &key)).await.map(|_| ())
            }));
        }
        for ack in acks {
            ack.await.expect("ack task").expect("ack");
        }
    }

    let mut db = sqlx::PgConnection::connect(&database_url).await.expect("connect");
    let intents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM intents").fetch_one(&mut db).await.expect("count");
    assert_eq!(intents, INTENTS as i64, "every acknowledged submit is stored exactly once");
    let per_debtor: Vec<(String, i64)> =
        sqlx::query_as("SELECT debtor_id, COUNT(*) FROM contact_events GROUP BY debtor_id")
            .fetch_all(&mut db)
            .await
            .expect("events");
    assert_eq!(per_debtor.len(), DEBTORS);
    assert!(
        per_debtor.iter().all(|(_, n)| *n == 10),
        "each debtor got exactly its cap of 10: {:?}",
        per_debtor.iter().find(|(_, n)| *n != 10)
    );
    let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM intents WHERE status = 'done'")
        .fetch_one(&mut db)
        .await
        .expect("done");
    let deferred: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM intents WHERE status = 'deferred'")
        .fetch_one(&mut db)
        .await
        .expect("deferred");
    assert_eq!((done, deferred), ((DEBTORS * 10) as i64, (INTENTS - DEBTORS * 10) as i64));
    assert_eq!(leased.len(), DEBTORS * 10);
    assert!(leased.values().all(|n| *n == 1), "no contact leased twice");

    // A replica that dies holding leases: its items come back, same dispatch_id, through another.
    let mut dying = start_replica(&database_url, rules.path()).await;
    let mut client = pb::contact_scheduler_client::ContactSchedulerClient::new(channel(dying.addr).await);
    for n in 0..5 {
        let intent = pb::Intent {
            intent_id: format!("late-{n}"),
            debtor_id: format!("late-debtor-{n}"),
            channel: pb::Channel::Sms as i32,
            party: pb::Party::Debtor as i32,
            stage: pb::Stage::Extrajudicial as i32,
            jurisdiction: "ZZ".into(),
            ..Default::default()
        };
        client.submit(with_key(pb::SubmitRequest { intent: Some(intent) }, &key)).await.expect("submit");
    }
    let mut adapter = pb::dispatch_client::DispatchClient::new(channel(dying.addr).await);
    let short = Some(prost_types::Duration { seconds: 1, nanos: 0 });
    let held = adapter
        .lease(with_key(
            pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 10, lease_duration: short },
            &key,
        ))
        .await
        .expect("lease")
        .into_inner()
        .items;
    assert_eq!(held.len(), 5);
    dying.child.kill().expect("SIGKILL");
    let _ = dying.child.wait();
    tokio::time::sleep(Duration::from_millis(1200)).await; // let the 1 s leases expire
    let mut survivor = pb::dispatch_client::DispatchClient::new(channels[0].clone());
    let again = survivor
        .lease(with_key(
            pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 10, lease_duration: None },
            &key,
        ))
        .await
        .expect("lease")
        .into_inner()
        .items;
    let mut before: Vec<_> = held.iter().map(|i| i.dispatch_id.clone()).collect();
    let mut after: Vec<_> = again.iter().map(|i| i.dispatch_id.clone()).collect();
    before.sort();
    after.sort();
    assert_eq!(before, after, "the dead replica's leases are re-offered with the same dispatch ids");
    assert!(again.iter().all(|i| i.attempt == 2));

    for mut replica in replicas {
        let _ = replica.child.kill();
        let _ = replica.child.wait();
    }
}

async fn futures_channels(replicas: &[Replica]) -> Vec<tonic::transport::Channel> {
    let mut channels = Vec::new();
    for replica in replicas {
        channels.push(channel(replica.addr).await);
    }
    channels
}
