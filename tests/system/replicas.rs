//! Several `ventana serve` processes on one PostgreSQL database, on the
//! system clock: 10,000 intents for 500 debtors under a cap, each due two
//! seconds after it is submitted, go through two (or three) replicas while
//! one is stopped halfway, with SIGTERM (graceful) or SIGKILL. Nothing is
//! lost, no cap is exceeded, nothing is released twice, every due intent is
//! released by the survivors (a killed replica's claims come back after
//! `claim_seconds`), and leases held by a dead replica are re-offered.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sqlx::Connection;
use tonic::metadata::{Ascii, MetadataValue};
use ventana::api::pb;

use crate::support::config::TestConfig;
use crate::support::database::TestDatabase;
use crate::support::processes::*;
use crate::support::rules;

const DEBTORS: usize = 500;
const INTENTS: usize = 10_000;

/// How the victim replica is stopped halfway through the submissions.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// SIGTERM: it must finish what it holds and exit cleanly.
    Term,
    /// SIGKILL: what it held must come back to the others.
    Kill,
}

struct Cluster {
    /// `ventana.toml` for the replicas.
    setup: Setup,
    key: MetadataValue<Ascii>,
    survivors: Vec<Replica>,
    channels: Vec<tonic::transport::Channel>,
    /// Dropped after the replicas are stopped (fields drop after `Drop::drop`).
    _database: TestDatabase,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for replica in &mut self.survivors {
            let _ = replica.child.kill();
            let _ = replica.child.wait();
        }
    }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    prost_types::Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
}

/// Runs `count` replicas, submits every intent through them (each due 2 s
/// after its submission), stops the last replica halfway with `stop`, waits
/// until every due intent has been re-evaluated, then leases and acks all
/// released contacts through the survivors and checks the totals.
async fn replicas_share_the_work(count: usize, stop: Stop) -> Cluster {
    let database = TestDatabase::postgres().await;
    let setup = Setup::new(TestConfig::new(database.url()).jurisdictions(rules::fixture("ten-a-day")).claim_seconds(3));
    let key = setup.create_key(&["submitter", "adapter"]);

    let mut survivors = Vec::new();
    for _ in 0..count {
        survivors.push(setup.start_replica().await);
    }
    let channels = futures_channels(&survivors).await;
    let mut victim = survivors.pop().expect("a victim");
    let cluster = Cluster { setup, key, survivors, channels, _database: database };

    // Submit through every replica; stop the last one halfway. A failed call is retried
    // on another replica with the same intent_id (Submit is idempotent).
    let next = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..24 {
        let (next, stopped, key, channels) =
            (next.clone(), stopped.clone(), cluster.key.clone(), cluster.channels.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
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
                    not_before: Some(timestamp(SystemTime::now() + Duration::from_secs(2))),
                    ..Default::default()
                };
                let mut attempt = worker + n;
                loop {
                    let alive = if stopped.load(Ordering::Relaxed) { count - 1 } else { count };
                    let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(
                        channels[attempt % alive].clone(),
                    );
                    match client.submit(with_key(pb::SubmitRequest { intent: Some(intent.clone()) }, &key)).await {
                        Ok(_) => break,
                        Err(_) => attempt += 1,
                    }
                }
            }
        }));
    }
    while next.load(Ordering::Relaxed) < INTENTS / 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stopped.store(true, Ordering::Relaxed);
    match stop {
        Stop::Kill => victim.child.kill().expect("SIGKILL"),
        Stop::Term => {
            let status = Command::new("kill").args(["-TERM", &victim.child.id().to_string()]).status();
            assert!(status.is_ok_and(|s| s.success()), "kill -TERM");
        }
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let exited = Instant::now();
    let status = loop {
        if let Some(status) = victim.child.try_wait().expect("wait") {
            break status;
        }
        assert!(exited.elapsed() < Duration::from_secs(60), "the stopped replica did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if stop == Stop::Term {
        assert!(status.success(), "SIGTERM ends a replica cleanly: {status}");
    }

    // Every intent becomes due 2 s after its submission; wait until the survivors have
    // re-evaluated all of them (a killed replica's claims come back after 3 s).
    let mut db = sqlx::PgConnection::connect(cluster.setup.database_url()).await.expect("connect");
    let waiting = Instant::now();
    loop {
        let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("now").as_millis() as i64;
        let (due, events): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM intents WHERE status = 'deferred' AND next_eval_at <= $1 + 3600000), \
             (SELECT COUNT(*) FROM contact_events)",
        )
        .bind(now_ms)
        .fetch_one(&mut db)
        .await
        .expect("progress");
        if due == 0 && events == (DEBTORS * 10) as i64 {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(180),
            "due intents not re-evaluated: {due} still due, {events} contacts released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Lease everything that was released, through the survivors, and ack it.
    let mut leased: HashMap<String, u32> = HashMap::new();
    for round in 0.. {
        let mut adapter =
            pb::dispatch_service_client::DispatchServiceClient::new(cluster.channels[round % (count - 1)].clone());
        let items = adapter
            .lease(with_key(
                pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 500, lease_duration: None },
                &cluster.key,
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
            let (mut adapter, key) = (adapter.clone(), cluster.key.clone());
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
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM intents GROUP BY status ORDER BY 1")
            .fetch_all(&mut db)
            .await
            .expect("statuses");
    let expected =
        vec![("deferred".to_string(), (INTENTS - DEBTORS * 10) as i64), ("done".to_string(), (DEBTORS * 10) as i64)];
    assert_eq!(statuses, expected, "the first 10 per debtor delivered, the rest deferred a day");
    assert_eq!(leased.len(), DEBTORS * 10);
    assert!(leased.values().all(|n| *n == 1), "no contact leased twice");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_stopped_with_sigterm_nothing_lost_or_doubled() {
    let _heavy = HEAVY.lock().await;
    replicas_share_the_work(2, Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_killed_nothing_lost_or_doubled() {
    let _heavy = HEAVY.lock().await;
    let cluster = replicas_share_the_work(3, Stop::Kill).await;

    // A replica that dies holding leases: its items come back, same dispatch_id, through another.
    let key = &cluster.key;
    let mut dying = cluster.setup.start_replica().await;
    let mut client =
        pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel(dying.addr).await);
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
        client.submit(with_key(pb::SubmitRequest { intent: Some(intent) }, key)).await.expect("submit");
    }
    let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(channel(dying.addr).await);
    let short = Some(prost_types::Duration { seconds: 1, nanos: 0 });
    let held = adapter
        .lease(with_key(
            pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 10, lease_duration: short },
            key,
        ))
        .await
        .expect("lease")
        .into_inner()
        .items;
    assert_eq!(held.len(), 5);
    dying.child.kill().expect("SIGKILL");
    let _ = dying.child.wait();
    tokio::time::sleep(Duration::from_millis(1200)).await; // let the 1 s leases expire
    let mut survivor = pb::dispatch_service_client::DispatchServiceClient::new(cluster.channels[0].clone());
    let again = survivor
        .lease(with_key(
            pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 10, lease_duration: None },
            key,
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
}

async fn futures_channels(replicas: &[Replica]) -> Vec<tonic::transport::Channel> {
    let mut channels = Vec::new();
    for replica in replicas {
        channels.push(channel(replica.addr).await);
    }
    channels
}
