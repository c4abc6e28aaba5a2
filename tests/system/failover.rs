//! PostgreSQL failover under load: a primary and a synchronous streaming
//! standby built from the installed server binaries, two `ventana serve`
//! replicas given both hosts in one URL (`…@h1,h2/db?target_session_attrs=
//! read-write`), submitters and an adapter leasing and acknowledging. The
//! primary is killed with SIGKILL and the standby promoted, as an operator
//! (or an orchestrator) would. Calls during the switch fail with
//! UNAVAILABLE; the replicas serve again without a restart; every
//! acknowledged Submit and Ack is on the new primary; no contact was leased
//! twice; no cap was exceeded; `ventana audit verify` passes. The time from
//! the kill to the first successful Submit is printed (not asserted).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use ventana::api::pb;

use crate::support::config::TestConfig;
use crate::support::postgres::Cluster;
use crate::support::processes::*;
use crate::support::rules;

const DEBTORS: usize = 200;

/// What the clients saw: acknowledged submits and acks, leases, and the codes of failed calls.
#[derive(Default)]
struct Seen {
    submitted: HashSet<String>,
    leased: HashMap<String, u32>,
    acked: HashSet<String>,
    failures: HashMap<Code, usize>,
    first_submit_after_kill: Option<Instant>,
}

fn intent(n: usize) -> pb::Intent {
    pb::Intent {
        intent_id: format!("f-{n}"),
        debtor_id: format!("d-{}", n % DEBTORS),
        channel: pb::Channel::Sms as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: "ZZ".into(),
        ..Default::default()
    }
}

/// Leases up to 50 contacts through `channel` and acknowledges each; records what succeeded.
async fn lease_and_ack(channel: tonic::transport::Channel, key: &MetadataValue<Ascii>, seen: &Mutex<Seen>) -> usize {
    let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(channel);
    let request = pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 50, lease_duration: None };
    let items = match adapter.lease(with_key(request, key)).await {
        Ok(response) => response.into_inner().items,
        Err(status) => {
            *seen.lock().expect("seen").failures.entry(status.code()).or_default() += 1;
            return 0;
        }
    };
    let count = items.len();
    for item in items {
        *seen.lock().expect("seen").leased.entry(item.dispatch_id.clone()).or_default() += 1;
        // An ack that fails in the switch is retried until it is taken (it is idempotent),
        // for at most two minutes: a replica that never serves again fails the test.
        let retrying = Instant::now();
        loop {
            assert!(retrying.elapsed() < Duration::from_secs(120), "an ack was refused for two minutes");
            let ack = pb::AckRequest {
                dispatch_id: item.dispatch_id.clone(),
                outcome: pb::Outcome::Delivered as i32,
                at: None,
                detail: String::new(),
            };
            match adapter.ack(with_key(ack, key)).await {
                Ok(_) => {
                    seen.lock().expect("seen").acked.insert(item.dispatch_id.clone());
                    break;
                }
                Err(status) => {
                    *seen.lock().expect("seen").failures.entry(status.code()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failover_under_load_loses_nothing_acknowledged() {
    let _heavy = HEAVY.lock().await;
    let primary = Cluster::start_new();
    primary.sql("CREATE DATABASE ventana");
    let standby = Cluster::start_standby(&primary, true);
    let mut synchronous = String::new();
    for _ in 0..100 {
        synchronous = primary.sql("SELECT sync_state FROM pg_stat_replication");
        if synchronous == "sync" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(synchronous, "sync", "the standby confirms every commit");

    let url = format!(
        "postgres://postgres@{},{}/ventana?target_session_attrs=read-write",
        primary.address(),
        standby.address()
    );
    let setup = Setup::new(TestConfig::new(&url).jurisdictions(rules::fixture("ten-a-day")));
    let key = setup.create_key(&["submitter", "adapter", "auditor"]);
    let mut replicas = vec![setup.start_replica().await, setup.start_replica().await];
    let mut channels = Vec::new();
    for replica in &replicas {
        channels.push(channel(replica.addr).await);
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let killed = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (seen, killed, next, stop, key, channels) =
            (seen.clone(), killed.clone(), next.clone(), stop.clone(), key.clone(), channels.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(
                    channels[(worker + n) % 2].clone(),
                );
                match client.submit(with_key(pb::SubmitRequest { intent: Some(intent(n)) }, &key)).await {
                    Ok(_) => {
                        let mut seen = seen.lock().expect("seen");
                        seen.submitted.insert(format!("f-{n}"));
                        if killed.load(Ordering::Relaxed) {
                            seen.first_submit_after_kill.get_or_insert_with(Instant::now);
                        }
                    }
                    Err(status) => {
                        *seen.lock().expect("seen").failures.entry(status.code()).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    {
        let (seen, stop, key, channels) = (seen.clone(), stop.clone(), key.clone(), channels.clone());
        workers.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                if lease_and_ack(channels[round % 2].clone(), &key, &seen).await == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }

    let started = Instant::now();
    // Load before the failure.
    while seen.lock().expect("seen").acked.len() < 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "the replicas never took the load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = seen.lock().expect("seen").submitted.len();
    primary.kill();
    let kill = Instant::now();
    killed.store(true, Ordering::Relaxed);
    standby.promote();
    let promoted = kill.elapsed();
    // Load after it: the replicas must serve again by themselves.
    let waiting = Instant::now();
    while seen.lock().expect("seen").submitted.len() < before + 300 {
        assert!(waiting.elapsed() < Duration::from_secs(120), "the replicas never served again after the failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    // Lease and acknowledge what is left through the new primary.
    while lease_and_ack(channels[0].clone(), &key, &seen).await > 0 {}

    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    let first = seen.first_submit_after_kill.expect("a submit succeeded after the kill");
    eprintln!(
        "failover: {:.1} s of load before the kill; standby promoted {:.2} s after the kill; first successful Submit {:.2} s after the kill; \
         failed calls during the switch by code: {:?}; {} submits and {} acks acknowledged",
        (kill - started).as_secs_f64(),
        promoted.as_secs_f64(),
        (first - kill).as_secs_f64(),
        seen.failures,
        seen.submitted.len(),
        seen.acked.len()
    );
    let unexpected: Vec<_> = seen.failures.keys().filter(|c| **c != Code::Unavailable).collect();
    assert!(unexpected.is_empty(), "calls in the switch fail with UNAVAILABLE only: {:?}", seen.failures);
    // No call need fail: when the standby is promoted before the pool finds
    // its connections dead (it tests each before use), the switch is unseen.
    // That the load crossed the kill is shown by the 300 Submits after it,
    // which only the new primary could store (checked below).

    let mut db = sqlx::PgConnection::connect(&standby.url("ventana")).await.expect("the new primary");
    let stored: HashSet<String> = sqlx::query_scalar("SELECT intent_id FROM intents")
        .fetch_all(&mut db)
        .await
        .expect("intents")
        .into_iter()
        .collect();
    let lost: Vec<_> = seen.submitted.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged submits lost in the failover: {lost:?}");
    let acked: HashSet<String> = sqlx::query_scalar("SELECT dispatch_id FROM dispatches WHERE state = 'acked'")
        .fetch_all(&mut db)
        .await
        .expect("dispatches")
        .into_iter()
        .collect();
    let lost: Vec<_> = seen.acked.difference(&acked).collect();
    assert!(lost.is_empty(), "acknowledged acks lost in the failover: {lost:?}");
    assert!(seen.leased.values().all(|n| *n == 1), "no contact leased twice");
    let busiest: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM contact_events GROUP BY debtor_id) c",
    )
    .fetch_one(&mut db)
    .await
    .expect("caps");
    assert!(busiest <= 10, "a debtor got {busiest} contacts, over the cap of 10 a day");
    let verify = setup.command(&["audit", "verify", "--tenant", "acme"]).output().expect("audit verify");
    assert!(
        verify.status.success(),
        "audit verify after the failover: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    for replica in &mut replicas {
        let _ = replica.child.kill();
        let _ = replica.child.wait();
    }
}
