//! SQLite on a full disk and on a read-only file system, with a real
//! `ventana serve` process on a size-limited tmpfs. Mounting one needs root:
//! an unprivileged run re-runs each test inside a user and mount namespace of
//! its own (`unshare --user --map-root-user --mount`), where it is root of its
//! own mounts; a machine that allows neither fails these tests, never skips them.
//! A full disk refuses writes with RESOURCE_EXHAUSTED and a message, keeps
//! serving reads and recovers by itself once space is freed; a read-only file
//! system stops the service from starting with a message naming the file and
//! the cause. Either way the database stays intact: `PRAGMA integrity_check`,
//! every acknowledged submission stored, `ventana audit verify` passes.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Connection;
use tonic::metadata::{Ascii, MetadataValue};
use ventana::api::pb;

use crate::support::config::TestConfig;
use crate::support::processes::*;
use crate::support::rules;

/// Set in the environment of a test re-run inside its own mount namespace.
const IN_NAMESPACE: &str = "VENTANA_TEST_IN_MOUNT_NAMESPACE";

/// Whether this process may mount a tmpfs: as root, or inside the namespace.
fn can_mount() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::env::var_os(IN_NAMESPACE).is_some() || std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Re-runs the test `name` (this file's) alone inside a new user and mount
/// namespace and fails with its output if it fails there.
fn rerun_in_mount_namespace(name: &str) {
    let test = format!("sqlite_faults::{name}");
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(std::env::current_exe().expect("this test binary"))
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("run unshare (util-linux)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{test} in its own mount namespace failed:\n{text}");
    assert!(text.contains("1 passed"), "{test} did not run in its namespace:\n{text}");
}

/// A tmpfs of a fixed size, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(kib: usize) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let size = format!("size={kib}k");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "mounting a {kib} KiB tmpfs (as root, or inside a user and mount namespace): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts read-only (`ro`) or read-write (`rw`); no file may be open for writing.
    fn remount(&self, mode: &str) {
        // Naming the type and source makes the remount work inside a user namespace too.
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("remount,{mode}"), "tmpfs"])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(output.status.success(), "remount {mode}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn submit_request(n: usize, key: &MetadataValue<Ascii>) -> tonic::Request<pb::SubmitRequest> {
    let intent = pb::Intent {
        intent_id: format!("i-{n}"),
        debtor_id: format!("d-{n}"),
        channel: pb::Channel::Sms as i32,
        party: pb::Party::Debtor as i32,
        stage: pb::Stage::Extrajudicial as i32,
        jurisdiction: "ZZ".into(),
        ..Default::default()
    };
    with_key(pb::SubmitRequest { intent: Some(intent) }, key)
}

/// Stops a server with SIGTERM; it must exit cleanly.
fn stop(mut server: Replica) {
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "the server exits cleanly: {exit}");
}

/// The database file is intact, holds every intent in `acknowledged`, and its audit chain verifies.
async fn assert_intact(database: &Path, acknowledged: &HashSet<String>, setup: &Setup) {
    let url = format!("sqlite://{}", database.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open the database");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.expect("check");
    assert_eq!(check, "ok", "SQLite integrity check");
    let stored: HashSet<String> = sqlx::query_scalar("SELECT intent_id FROM intents")
        .fetch_all(&mut conn)
        .await
        .expect("intents")
        .into_iter()
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged submissions lost: {lost:?}");
    conn.close().await.expect("close");
    let verify = setup.command(&["audit", "verify"]).output().expect("audit verify");
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stderr));
}

/// Writes a file until the file system is full.
fn fill(path: &Path) -> PathBuf {
    let file = path.join("filler");
    let mut out = std::fs::File::create(&file).expect("filler");
    let chunk = vec![0u8; 16 * 1024];
    loop {
        match out.write_all(&chunk).and_then(|()| out.flush()) {
            Ok(()) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return file,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_clearly_keeps_reads_and_recovers() {
    if !can_mount() {
        return rerun_in_mount_namespace("full_disk_refuses_writes_clearly_keeps_reads_and_recovers");
    }
    let disk = Tmpfs::mount(8 * 1024);
    let database = disk.path().join("ventana.db");
    let url = format!("sqlite://{}", database.display());
    let setup = Setup::new(TestConfig::new(&url).jurisdictions(rules::fixture("ten-a-day")));
    let key = setup.create_key(&["submitter", "adapter"]);
    let server = setup.start_replica().await;
    let channel = channel(server.addr).await;
    let mut scheduler = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel.clone());
    let mut dispatch = pb::dispatch_service_client::DispatchServiceClient::new(channel);

    let mut acknowledged = HashSet::new();
    for n in 0..20 {
        scheduler.submit(submit_request(n, &key)).await.expect("submit with space left");
        acknowledged.insert(format!("i-{n}"));
    }

    // No space left: writes are refused with RESOURCE_EXHAUSTED (a submission
    // may still fit in free pages of the database or its WAL).
    let filler = fill(disk.path());
    let mut refused = 0;
    let mut n = 20;
    while refused < 5 {
        assert!(n < 5_000, "a full disk never refused a submission");
        match scheduler.submit(submit_request(n, &key)).await {
            Ok(_) => {
                acknowledged.insert(format!("i-{n}"));
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                assert!(status.message().contains("disk is full"), "{status:?}");
                refused += 1;
            }
        }
        n += 1;
    }
    let lease = dispatch
        .lease(with_key(
            pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 5, ..Default::default() },
            &key,
        ))
        .await;
    if let Err(status) = &lease {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    }
    // Reads still work.
    let got = scheduler.get(with_key(pb::GetRequest { intent_id: "i-0".into() }, &key)).await;
    assert!(got.is_ok(), "reads on a full disk: {got:?}");

    // Space again: the next submission goes through without a restart.
    std::fs::remove_file(filler).expect("free the space");
    scheduler.submit(submit_request(n, &key)).await.expect("submit after space is freed");
    acknowledged.insert(format!("i-{n}"));
    eprintln!("{} submissions acknowledged, {refused} refused while the disk was full", acknowledged.len());
    stop(server);
    assert_intact(&database, &acknowledged, &setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_file_system_refuses_to_start_and_changes_nothing() {
    if !can_mount() {
        return rerun_in_mount_namespace("read_only_file_system_refuses_to_start_and_changes_nothing");
    }
    let disk = Tmpfs::mount(8 * 1024);
    let database = disk.path().join("ventana.db");
    let url = format!("sqlite://{}", database.display());
    let setup = Setup::new(TestConfig::new(&url).jurisdictions(rules::fixture("ten-a-day")));
    let key = setup.create_key(&["submitter"]);
    let server = setup.start_replica().await;
    let mut scheduler =
        pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel(server.addr).await);
    let mut acknowledged = HashSet::new();
    for n in 0..10 {
        scheduler.submit(submit_request(n, &key)).await.expect("submit");
        acknowledged.insert(format!("i-{n}"));
    }
    stop(server);
    let before = std::fs::read(&database).expect("read the database");

    disk.remount("ro");
    let output = setup
        .command(&["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .output()
        .expect("serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve on a read-only file system must fail: {stderr}");
    assert!(
        stderr.contains(&database.display().to_string()) && stderr.contains("Read-only file system"),
        "the error names the file and the cause: {stderr}"
    );
    assert_eq!(std::fs::read(&database).expect("read again"), before, "the file is unchanged");

    disk.remount("rw");
    let server = setup.start_replica().await;
    let mut scheduler =
        pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(channel(server.addr).await);
    scheduler.submit(submit_request(10, &key)).await.expect("submit once writable again");
    acknowledged.insert("i-10".into());
    stop(server);
    assert_intact(&database, &acknowledged, &setup).await;
}
