//! Crash consistency: a mixed workload (submits, leases, acks) against a
//! `ventana serve` process that is killed with SIGKILL at pseudo-random
//! points 20 times and restarted on the same database, on SQLite and on
//! PostgreSQL. Afterwards every acknowledged submit is stored, every leased
//! dispatch still exists, no intent got a second dispatch (a re-offer keeps
//! its dispatch_id: at-least-once delivery of one contact, never two
//! contacts), no debtor went over its cap, and `ventana audit verify` passes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use ventana::api::pb;

use crate::support::config::TestConfig;
use crate::support::database::TestDatabase;
use crate::support::processes::*;
use crate::support::rules;

const KILLS: usize = 20;
const DEBTORS: usize = 150;

/// What the clients were told, across all runs.
#[derive(Default)]
struct Observed {
    /// Intent ids whose Submit returned OK.
    accepted: HashSet<String>,
    /// dispatch_id → intent id, for every item ever leased.
    leased: HashMap<String, String>,
}

/// A small deterministic generator for the kill points.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Leases up to `max` contacts, records them and acks each as delivered; how many.
async fn lease_and_ack(
    adapter: &mut pb::dispatch_service_client::DispatchServiceClient<tonic::transport::Channel>,
    key: &MetadataValue<Ascii>,
    seen: &Mutex<Observed>,
    max: i32,
    lease_duration: Option<prost_types::Duration>,
) -> Result<usize, tonic::Status> {
    let request = pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: max, lease_duration };
    let items = adapter.lease(with_key(request, key)).await?.into_inner().items;
    let count = items.len();
    for item in items {
        let intent_id = item.intent.as_ref().map(|i| i.intent_id.clone()).unwrap_or_default();
        seen.lock().expect("lock").leased.insert(item.dispatch_id.clone(), intent_id);
        let ack = pb::AckRequest {
            dispatch_id: item.dispatch_id,
            outcome: pb::Outcome::Delivered as i32,
            at: None,
            detail: String::new(),
        };
        adapter.ack(with_key(ack, key)).await?;
    }
    Ok(count)
}

/// Runs the workload against `addr` until the process dies; returns when the workers stop.
async fn workload(addr: std::net::SocketAddr, key: MetadataValue<Ascii>, round: usize, seen: Arc<Mutex<Observed>>) {
    let channel = channel(addr).await;
    let mut workers = Vec::new();
    for worker in 0..6 {
        let (channel, key, seen) = (channel.clone(), key.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel);
            for n in 0.. {
                let id = format!("r{round}-w{worker}-{n}");
                let intent = pb::Intent {
                    intent_id: id.clone(),
                    debtor_id: format!("d-{}", (round * 7 + worker * 13 + n) % DEBTORS),
                    channel: pb::Channel::Sms as i32,
                    party: pb::Party::Debtor as i32,
                    stage: pb::Stage::Extrajudicial as i32,
                    jurisdiction: "ZZ".into(),
                    ..Default::default()
                };
                match client.submit(with_key(pb::SubmitRequest { intent: Some(intent) }, &key)).await {
                    Ok(_) => {
                        seen.lock().expect("lock").accepted.insert(id);
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    let (channel, key, seen) = (channel.clone(), key.clone(), seen.clone());
    workers.push(tokio::spawn(async move {
        let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(channel);
        let one_second = Some(prost_types::Duration { seconds: 1, nanos: 0 });
        while lease_and_ack(&mut adapter, &key, &seen, 20, one_second).await.is_ok() {}
    }));
    for worker in workers {
        let _ = worker.await;
    }
}

async fn killed_twenty_times_nothing_lost(database: TestDatabase) {
    let _heavy = HEAVY.lock().await;
    let setup = Setup::new(TestConfig::new(database.url()).jurisdictions(rules::fixture("ten-a-day")).claim_seconds(2));
    let database_url = setup.database_url();
    let key = setup.create_key(&["submitter", "adapter"]);
    let seen = Arc::new(Mutex::new(Observed::default()));
    let mut random = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..KILLS {
        let mut server = setup.start_replica().await;
        let load = tokio::spawn(workload(server.addr, key.clone(), round, seen.clone()));
        tokio::time::sleep(Duration::from_millis(150 + next_random(&mut random) % 600)).await;
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
        load.await.expect("workload");
    }

    // A last run drains what is left (leases of the dead are re-offered after 1 s).
    let mut server = setup.start_replica().await;
    let mut adapter = pb::dispatch_service_client::DispatchServiceClient::new(channel(server.addr).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    while lease_and_ack(&mut adapter, &key, &seen, 500, None).await.expect("lease and ack") > 0 {}
    server.child.kill().expect("stop");
    let _ = server.child.wait();

    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(seen.accepted.len() > 100, "the workload ran: {} submits accepted", seen.accepted.len());
    eprintln!("{KILLS} kills: {} submits acknowledged, {} contacts leased", seen.accepted.len(), seen.leased.len());
    let store = ventana::store::Store::connect(database_url).await.expect("open");
    for id in &seen.accepted {
        assert!(store.get_intent("acme", id).await.expect("read").is_some(), "acknowledged submit {id} lost");
    }
    let mut dispatches_per_intent: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (dispatch_id, intent_id) in &seen.leased {
        let row = store.get_intent("acme", intent_id).await.expect("read").expect("leased intent stored");
        assert_eq!(row.dispatch_id.as_deref(), Some(dispatch_id.as_str()), "intent {intent_id} changed its dispatch");
        dispatches_per_intent.entry(intent_id).or_default().insert(dispatch_id);
    }
    assert!(dispatches_per_intent.values().all(|d| d.len() == 1), "an intent was released twice");
    drop(store);
    let events = contacts_per_debtor(database_url).await;
    assert!(events.iter().all(|(_, n)| *n <= 10), "a debtor went over its cap of 10: {events:?}");

    let verify = setup.command(&["audit", "verify"]).output().expect("audit verify");
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stderr));
}

/// (debtor, contacts) straight from the database.
async fn contacts_per_debtor(database_url: &str) -> Vec<(String, i64)> {
    use sqlx::Connection;
    let sql = "SELECT debtor_id, COUNT(*) FROM contact_events GROUP BY debtor_id";
    if database_url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.expect("sqlite");
        sqlx::query_as(sql).fetch_all(&mut conn).await.expect("count")
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url).await.expect("postgres");
        sqlx::query_as(sql).fetch_all(&mut conn).await.expect("count")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_twenty_times_nothing_lost() {
    killed_twenty_times_nothing_lost(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_twenty_times_nothing_lost() {
    killed_twenty_times_nothing_lost(TestDatabase::postgres().await).await;
}
