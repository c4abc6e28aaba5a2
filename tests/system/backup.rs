//! Backups that restore whole. SQLite: `ventana backup` while a `ventana
//! serve` process takes submissions; the copy, put in place of a database,
//! passes `ventana audit verify`, holds the rows per table the backup
//! reported, and every submission acknowledged before the backup began.
//! PostgreSQL: the README's `pg_dump` / `pg_restore` commands, once, checked
//! the same way with `ventana backup --count-only` on both databases.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use ventana::api::pb;

use crate::support::config::TestConfig;
use crate::support::database::TestDatabase;
use crate::support::postgres::server_binaries;
use crate::support::processes::*;
use crate::support::rules;

fn submit_request(n: usize) -> pb::SubmitRequest {
    let intent = pb::Intent {
        intent_id: format!("b-{n}"),
        debtor_id: format!("d-{}", n % 100),
        channel: pb::Channel::Sms as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: "ZZ".into(),
        ..Default::default()
    };
    pb::SubmitRequest { intent: Some(intent) }
}

/// The rows per table of the database `setup` points at.
fn counts(setup: &Setup) -> Value {
    let output = setup.command(&["backup", "--count-only", "--format", "json"]).output().expect("backup --count-only");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    report["rows"].clone()
}

fn audit_verifies(setup: &Setup) {
    let verify = setup.command(&["audit", "verify"]).output().expect("audit verify");
    assert!(
        verify.status.success(),
        "audit verify on the restored database: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_under_load_restores_whole() {
    let _heavy = HEAVY.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let setup = Setup::new(TestConfig::new(&live).jurisdictions(rules::fixture("ten-a-day")));
    let key = setup.create_key(&["submitter"]);
    let mut replica = setup.start_replica().await;
    let channel = channel(replica.addr).await;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (acknowledged, stop, key, channel) = (acknowledged.clone(), stop.clone(), key.clone(), channel.clone());
        workers.push(tokio::spawn(async move {
            let mut client = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel);
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                if client.submit(with_key(submit_request(n), &key)).await.is_ok() {
                    acknowledged.lock().expect("acknowledged").insert(format!("b-{n}"));
                }
                n += 4;
            }
        }));
    }
    while acknowledged.lock().expect("acknowledged").len() < 500 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Everything acknowledged before the backup starts must be in it; the load goes on meanwhile.
    let before: HashSet<String> = acknowledged.lock().expect("acknowledged").clone();
    let file = dir.path().join("backup.db");
    let backup = setup
        .command(&["backup", "--out", &file.to_string_lossy(), "--format", "json"])
        .output()
        .expect("ventana backup");
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let during = acknowledged.lock().expect("acknowledged").len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let _ = replica.child.kill();
    let _ = replica.child.wait();
    let report: Value = serde_json::from_slice(&backup.stdout).expect("json report");
    eprintln!(
        "backup: {} bytes in {:.3} s while {during} submissions were acknowledged; rows {}",
        report["bytes"], report["seconds"], report["rows"]
    );
    let again = setup.command(&["backup", "--out", &file.to_string_lossy()]).output().expect("ventana backup");
    assert_eq!(again.status.code(), Some(2), "a backup never overwrites a file");
    // A mistyped database is an error, never an empty database created and "backed up".
    let missing = dir.path().join("mistyped.db");
    let typo = Setup::new(TestConfig::new(&format!("sqlite://{}", missing.display())));
    let refused = typo.command(&["backup", "--out", &dir.path().join("x.db").to_string_lossy()]).output().expect("run");
    assert_eq!(refused.status.code(), Some(3), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!missing.exists() && !dir.path().join("x.db").exists(), "nothing created");

    // Restore: the copy becomes a database of its own.
    let restored_path = dir.path().join("restored.db");
    std::fs::copy(&file, &restored_path).expect("restore by copying");
    let restored = Setup::new(
        TestConfig::new(&format!("sqlite://{}", restored_path.display())).jurisdictions(rules::fixture("ten-a-day")),
    );
    audit_verifies(&restored);
    assert_eq!(counts(&restored), report["rows"], "the restored database holds what the backup reported");
    let mut db = {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", restored_path.display())).await.expect("open")
    };
    let stored: HashSet<String> = sqlx::query_scalar("SELECT intent_id FROM intents")
        .fetch_all(&mut db)
        .await
        .expect("intents")
        .into_iter()
        .collect();
    let missing: Vec<_> = before.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged before the backup began, missing from it: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_postgres_backup_restores_whole() {
    let _heavy = HEAVY.lock().await;
    let source = TestDatabase::postgres().await;
    let setup = Setup::new(TestConfig::new(source.url()).jurisdictions(rules::fixture("ten-a-day")));
    let key = setup.create_key(&["submitter"]);
    let mut replica = setup.start_replica().await;
    let mut client =
        pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel(replica.addr).await);
    for n in 0..200 {
        client.submit(with_key(submit_request(n), &key)).await.expect("submit");
    }
    let _ = replica.child.kill();
    let _ = replica.child.wait();

    // README, Operations: pg_dump --format=custom, then pg_restore into a new database.
    let dir = tempfile::tempdir().expect("temp dir");
    let dump = dir.path().join("ventana.dump");
    let bin = server_binaries();
    let status = std::process::Command::new(bin.join("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(source.url())
        .status()
        .expect("pg_dump");
    assert!(status.success(), "pg_dump");
    let target = TestDatabase::postgres().await;
    let status = std::process::Command::new(bin.join("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname", target.url()])
        .arg(&dump)
        .status()
        .expect("pg_restore");
    assert!(status.success(), "pg_restore");
    let restored = Setup::new(TestConfig::new(target.url()).jurisdictions(rules::fixture("ten-a-day")));
    audit_verifies(&restored);
    let (before, after) = (counts(&setup), counts(&restored));
    assert_eq!(before["intents"], 200);
    assert_eq!(before, after, "every table restored with its rows");
}
