//! The audit trail on both backends: every state change has its event,
//! verify catches each kind of tampering, export is tenant-isolated, replay
//! finds a planted rule change, purge leaves a verifiable chain.

use std::collections::HashMap;

use tonic::Code;
use ventana::api::auth::Role;
use ventana::api::pb;
use ventana::app::audit as ops;

use crate::on_both_backends;
use crate::support::server::*;

/// The intent status an event leaves behind, if it sets one.
fn status_after(kind: &str) -> Option<pb::IntentStatus> {
    Some(match kind {
        "released" => pb::IntentStatus::Released,
        "deferred" => pb::IntentStatus::Deferred,
        "rejected" => pb::IntentStatus::Rejected,
        "expired" => pb::IntentStatus::Expired,
        "leased" => pb::IntentStatus::Leased,
        "acked" => pb::IntentStatus::Done,
        "cancelled" => pb::IntentStatus::Cancelled,
        _ => return None,
    })
}

async fn every_state_change_has_its_event(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    mixed_workload(&server).await;
    let events = audit_events(&server, "acme").await;
    let kinds: std::collections::BTreeSet<String> = events.iter().map(event_kind).collect();
    for kind in [
        "submitted",
        "released",
        "deferred",
        "rejected",
        "expired",
        "leased",
        "withdrawn",
        "acked",
        "cancelled",
        "preference_changed",
        "rules_reloaded",
    ] {
        assert!(kinds.contains(kind), "no {kind} event in {kinds:?}");
    }
    // Sequence numbers have no gaps and every event links to the previous one.
    for (i, pair) in events.windows(2).enumerate() {
        assert_eq!(pair[1].sequence, pair[0].sequence + 1, "gap after event {i}");
        assert_eq!(pair[1].previous_hash, pair[0].hash);
    }
    // Replaying the events' statuses gives every intent's stored status, and
    // every intent was submitted exactly once.
    let mut last_status: HashMap<&str, pb::IntentStatus> = HashMap::new();
    let mut submitted: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        if event_kind(event) == "submitted" {
            *submitted.entry(event.intent_id.as_str()).or_default() += 1;
        }
        if let Some(status) = status_after(&event_kind(event)) {
            last_status.insert(event.intent_id.as_str(), status);
        }
    }
    let mut client = server.scheduler("acme").await;
    for id in ["w-1", "w-2", "w-3", "w-4", "w-5", "w-6", "w-7"] {
        let view = get(&mut client, id).await;
        assert_eq!(submitted.get(id), Some(&1), "{id} submitted once");
        assert_eq!(last_status.get(id).map(|s| *s as i32), Some(view.status), "{id}: events disagree with the intent");
    }
    // Decision events carry what an auditor needs.
    let release = events.iter().find(|e| event_kind(e) == "released" && e.intent_id == "w-1").expect("w-1 released");
    assert_eq!(release.decision, "release");
    assert!(release.rule_ids.contains("pe-"), "{release:?}");
    assert!(release.citations.contains("Ley 29571"));
    assert_eq!(release.time_zone, "America/Lima");
    assert_eq!(release.debtor_local_time, "2026-11-25 10:00:00");
    assert!(release.rules_version.starts_with("PE@"));
    let reload = events.iter().find(|e| event_kind(e) == "rules_reloaded").expect("reload event");
    assert!(reload.detail.contains("\"by_key\":\"vk_"), "{}", reload.detail);
    server.stop().await;
}
on_both_backends!(every_state_change_has_its_event);

/// Runs one SQL statement against the server's database.
async fn tamper(server: &TestServer, sql: &str) {
    server.store().execute_unchecked(sql).await.expect("tamper");
}

async fn broken_at(server: &TestServer) -> Option<i64> {
    let reports = ops::verify(server.store(), Some("acme"), None).await.expect("verify");
    reports[0].broken.as_ref().map(|b| b.seq)
}

async fn verify_catches_edits_deletions_insertions_and_swaps(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    mixed_workload(&server).await;
    let reports = ops::verify(server.store(), None, None).await.expect("verify");
    assert!(reports.iter().all(|r| r.broken.is_none()), "{reports:?}");
    let total = reports.iter().find(|r| r.tenant == "acme").map(|r| r.rows).expect("acme chain");
    assert!(total > 15);

    // Edit: an outcome rewritten.
    tamper(&server, "UPDATE audit_log SET outcome = 'conversation' WHERE tenant = 'acme' AND seq = 5").await;
    assert_eq!(broken_at(&server).await, Some(5));
    tamper(&server, "UPDATE audit_log SET outcome = NULL WHERE tenant = 'acme' AND seq = 5").await;
    let original_outcome_ok = broken_at(&server).await;
    // (seq 5 had no outcome, so restoring NULL repairs it.)
    assert_eq!(original_outcome_ok, None);

    // Swap: two events exchange places.
    tamper(&server, "UPDATE audit_log SET seq = -1 WHERE tenant = 'acme' AND seq = 7").await;
    tamper(&server, "UPDATE audit_log SET seq = 7 WHERE tenant = 'acme' AND seq = 8").await;
    tamper(&server, "UPDATE audit_log SET seq = 8 WHERE tenant = 'acme' AND seq = -1").await;
    assert_eq!(broken_at(&server).await, Some(7));
    tamper(&server, "UPDATE audit_log SET seq = -1 WHERE tenant = 'acme' AND seq = 7").await;
    tamper(&server, "UPDATE audit_log SET seq = 7 WHERE tenant = 'acme' AND seq = 8").await;
    tamper(&server, "UPDATE audit_log SET seq = 8 WHERE tenant = 'acme' AND seq = -1").await;
    assert_eq!(broken_at(&server).await, None);

    // Insertion: a forged event appended after the head.
    let last = total as i64;
    tamper(
        &server,
        &format!(
            "INSERT INTO audit_log (tenant, seq, at, kind, detail, prev_hash, hash) \
             SELECT tenant, seq + 1, at, 'acked', '{{}}', hash, hash FROM audit_log WHERE tenant = 'acme' AND seq = {last}"
        ),
    )
    .await;
    assert_eq!(broken_at(&server).await, Some(last + 1));
    tamper(&server, &format!("DELETE FROM audit_log WHERE tenant = 'acme' AND seq = {}", last + 1)).await;
    assert_eq!(broken_at(&server).await, None);

    // Deletion: an event in the middle disappears.
    tamper(&server, "DELETE FROM audit_log WHERE tenant = 'acme' AND seq = 10").await;
    assert_eq!(broken_at(&server).await, Some(10));

    // The CLI agrees and exits non-zero.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args(["audit", "verify", "--tenant", "acme", "--database-url", &server.config.database_url])
        .output()
        .expect("ventana runs");
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("BROKEN at sequence 10"), "{text}");
    server.stop().await;
}
on_both_backends!(verify_catches_edits_deletions_insertions_and_swaps);

async fn export_is_tenant_isolated_and_filtered(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    mixed_workload(&server).await;
    let mut globex = server.scheduler("globex").await;
    submit(&mut globex, intent("g-1", "d-1", pb::Channel::Sms, "PE")).await;
    let theirs = audit_events(&server, "globex").await;
    assert!(!theirs.is_empty());
    assert!(theirs.iter().all(|e| e.tenant == "globex"), "globex sees only its own events");
    assert_eq!(theirs[0].sequence, 1, "each tenant has its own chain");

    let auth = server.key("acme", &[Role::Auditor]).await;
    let mut auditor = pb::audit_service_client::AuditServiceClient::with_interceptor(server.channel.clone(), auth);
    let request =
        pb::ExportRequest { debtor_id: "d-2".into(), channel: pb::Channel::Call as i32, ..Default::default() };
    let mut stream = auditor.export(request).await.expect("export").into_inner();
    let mut rows = Vec::new();
    while let Some(event) = stream.message().await.expect("stream") {
        rows.extend(event.event);
    }
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|e| e.debtor_id == "d-2" && e.channel == pb::Channel::Call as i32));

    let submitter = server.key("acme", &[Role::Submitter]).await;
    let mut not_auditor =
        pb::audit_service_client::AuditServiceClient::with_interceptor(server.channel.clone(), submitter);
    let denied = not_auditor.export(pb::ExportRequest::default()).await.expect_err("submitter cannot export");
    assert_eq!(denied.code(), Code::PermissionDenied);
    server.stop().await;
}
on_both_backends!(export_is_tenant_isolated_and_filtered);

async fn an_interrupted_export_resumes_after_its_last_event(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    mixed_workload(&server).await;
    let auth = server.key("acme", &[Role::Auditor]).await;
    let mut auditor = pb::audit_service_client::AuditServiceClient::with_interceptor(server.channel.clone(), auth);
    let export = |token: &str| pb::ExportRequest { resume_token: token.into(), ..Default::default() };
    let mut whole = Vec::new();
    let mut stream = auditor.export(export("")).await.expect("export").into_inner();
    while let Some(item) = stream.message().await.expect("stream") {
        whole.push(item);
    }
    assert!(whole.len() >= 6, "{}", whole.len());
    // The client stops after three events and comes back with the third one's token.
    let mut stream = auditor.export(export(&whole[2].resume_token)).await.expect("export").into_inner();
    let mut rest = Vec::new();
    while let Some(item) = stream.message().await.expect("stream") {
        rest.extend(item.event);
    }
    let expected: Vec<_> = whole[3..].iter().filter_map(|i| i.event.clone()).collect();
    assert_eq!(rest, expected, "exactly the events after the third, none twice, none lost");
    // Resuming after the last event gives nothing more.
    let mut stream = auditor.export(export(&whole[whole.len() - 1].resume_token)).await.expect("export").into_inner();
    assert!(stream.message().await.expect("stream").is_none());
    // A token that is not ours, or whose event changed since, is refused.
    let bad = auditor.export(export("zz")).await.expect_err("not a token");
    assert_eq!(bad.code(), Code::InvalidArgument);
    tamper(&server, "UPDATE audit_log SET hash = 'edited' WHERE tenant = 'acme' AND seq = 3").await;
    let mut stream = auditor.export(export(&whole[2].resume_token)).await.expect("export").into_inner();
    let altered = stream.message().await.expect_err("the event the token names was altered");
    assert_eq!(altered.code(), Code::DataLoss, "{}", altered.message());
    server.stop().await;
}
on_both_backends!(an_interrupted_export_resumes_after_its_last_event);

async fn replay_finds_a_planted_rule_change(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    mixed_workload(&server).await;
    let from = at("2026-11-01T00:00:00Z");
    let to = at("2026-12-01T00:00:00Z");
    let (replayed, differences) = ops::replay(server.store(), "acme", from, to, None).await.expect("replay");
    assert!(replayed >= 6, "{replayed}");
    assert!(differences.is_empty(), "the recorded rules give the recorded decisions: {differences:?}");

    // Plant a change: Peru's hours start at 11:00 in a candidate directory.
    let dir = tempfile::tempdir().expect("dir");
    for entry in std::fs::read_dir(jurisdictions_dir()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read");
            let text = if path.ends_with("PE.toml") {
                text.replace("mon_fri = [\"07:00-20:00\"]", "mon_fri = [\"11:00-20:00\"]")
            } else {
                text
            };
            std::fs::write(dir.path().join(path.file_name().expect("name")), text).expect("write");
        }
    }
    let candidate = ventana::rules::RuleBook::load_dir(dir.path()).expect("candidate loads");
    let (_, differences) = ops::replay(server.store(), "acme", from, to, Some(&candidate)).await.expect("replay");
    assert!(!differences.is_empty());
    let w1 = differences.iter().find(|d| d.intent_id == "w-1").expect("w-1 now differs");
    assert_eq!(w1.recorded, "release");
    assert!(w1.now.starts_with("defer until 2026-11-25T16:00:00"), "{w1:?}");
    server.stop().await;
}
on_both_backends!(replay_finds_a_planted_rule_change);

async fn purge_keeps_the_chain_verifiable(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("old-1", "d-1", pb::Channel::Sms, "PE")).await;
    server.set_clock("2026-11-26T10:00:00-05:00");
    submit(&mut client, intent("new-1", "d-2", pb::Channel::Sms, "PE")).await;
    let (deleted, checkpoint) =
        ops::purge(server.store(), "acme", at("2026-11-26T00:00:00Z"), "audit-key", at("2026-11-26T11:00:00Z"))
            .await
            .expect("purge");
    assert_eq!((deleted, checkpoint), (2, Some(2)));
    let reports = ops::verify(server.store(), Some("acme"), Some("audit-key")).await.expect("verify");
    assert_eq!(reports[0].broken, None, "{reports:?}");
    assert_eq!(reports[0].rows, 2);
    assert!(reports[0].checkpoint.as_deref().is_some_and(|c| c.contains("signature valid")));
    // Forged checkpoint (or wrong key) is caught.
    let wrong = ops::verify(server.store(), Some("acme"), Some("another-key")).await.expect("verify");
    assert!(wrong[0].broken.is_some());
    // New events keep chaining after the purge.
    submit(&mut client, intent("new-2", "d-3", pb::Channel::Sms, "PE")).await;
    let reports = ops::verify(server.store(), Some("acme"), Some("audit-key")).await.expect("verify");
    assert_eq!(reports[0].broken, None);
    assert_eq!(reports[0].rows, 4);
    server.stop().await;
}
on_both_backends!(purge_keeps_the_chain_verifiable);
