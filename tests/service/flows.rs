//! Worked cases end to end, on both backends: submit, defer, wake, lease and
//! ack; idempotency and cancels; opt-outs; leases and their expiry; caps under
//! concurrency; restarts; authentication and tenants; bad and malformed
//! input; the rules service; the built-in adapters; metrics; rate limits; the
//! 07:00 surge; deadlines; the history read bound; a group commit that
//! panics fails its calls, not its queue; a replica woken by another's commit.

use tonic::Code;
use ventana::api::auth::Role;
use ventana::api::pb;

use crate::on_both_backends;
use crate::support::database::{reaches_count, wait_for_blocked_lockers};
use crate::support::server::*;

fn decision(response: &pb::SubmitResponse) -> &pb::Decision {
    response.decision.as_ref().expect("decision")
}

// ------------------------------------------------------------------ worked cases, end to end

async fn peru_defer_wake_lease_ack(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-27T20:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let submitted = submit(&mut client, intent("pe-1", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(submitted.status, pb::IntentStatus::Deferred as i32);
    assert_eq!(decision(&submitted).kind, pb::DecisionKind::Defer as i32);
    assert_eq!(decision(&submitted).at, Some(ts("2026-11-30T07:00:00-05:00")));
    assert_eq!(decision(&submitted).reasons[0].rule, "pe-art62b-hours");

    // Saturday: still deferred. Monday 07:00: the scheduler wakes it and releases it.
    server.set_clock("2026-11-28T10:00:00-05:00");
    let view = get(&mut client, "pe-1").await;
    assert_eq!(view.status, pb::IntentStatus::Deferred as i32);
    server.set_clock("2026-11-30T07:00:00-05:00");
    let released = server.wait_for_status(&mut client, "pe-1", pb::IntentStatus::Released).await;
    assert!(!released.dispatch_id.is_empty());

    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Call as i32], 10).await;
    assert_eq!(leased.items.len(), 1);
    let item = &leased.items[0];
    assert_eq!(item.dispatch_id, released.dispatch_id);
    assert_eq!(item.attempt, 1);
    assert_eq!(item.not_after, Some(ts("2026-11-30T20:00:00-05:00")));
    assert_eq!(item.intent.as_ref().map(|i| i.intent_id.as_str()), Some("pe-1"));

    let acked = adapter
        .ack(pb::AckRequest {
            dispatch_id: item.dispatch_id.clone(),
            outcome: pb::Outcome::Conversation as i32,
            at: None,
            detail: String::new(),
        })
        .await
        .expect("ack")
        .into_inner();
    assert_eq!(acked.status, pb::IntentStatus::Done as i32);
    let done = get(&mut client, "pe-1").await;
    assert_eq!(done.outcome, pb::Outcome::Conversation as i32);
    server.stop().await;
}
on_both_backends!(peru_defer_wake_lease_ack);

async fn mexico_tijuana_released_cancun_deferred(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T21:30:00-08:00").await;
    let mut client = server.scheduler("acme").await;
    let tijuana = submit(&mut client, intent("mx-bcn", "d-1", pb::Channel::Call, "MX-BCN")).await;
    assert_eq!(tijuana.status, pb::IntentStatus::Released as i32);
    let cancun = submit(&mut client, intent("mx-roo", "d-2", pb::Channel::Call, "MX-ROO")).await;
    assert_eq!(cancun.status, pb::IntentStatus::Deferred as i32);
    assert_eq!(decision(&cancun).at, Some(ts("2026-11-26T07:00:00-05:00")));
    server.stop().await;
}
on_both_backends!(mexico_tijuana_released_cancun_deferred);

// ------------------------------------------------------------------ idempotency, cancel

async fn retried_submit_is_idempotent(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let request = pb::SubmitRequest { intent: Some(intent("same", "d-1", pb::Channel::Sms, "PE")) };
    let first = client.submit(request.clone()).await.expect("first").into_inner();
    let second = client.submit(request.clone()).await.expect("retry").into_inner();
    assert_eq!(first, second, "a retry returns the first result");
    let mut changed = request.clone();
    if let Some(i) = changed.intent.as_mut() {
        i.channel = pb::Channel::Email as i32;
    }
    let conflict = client.submit(changed).await.expect_err("different body");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    // Exactly one contact went out for the two accepted calls.
    let mut adapter = server.dispatcher("acme").await;
    let leased = adapter
        .lease(pb::LeaseRequest {
            channels: vec![pb::Channel::Sms as i32, pb::Channel::Email as i32],
            max_items: 10,
            lease_duration: None,
        })
        .await
        .expect("lease")
        .into_inner();
    assert_eq!(leased.items.len(), 1);
    server.stop().await;
}
on_both_backends!(retried_submit_is_idempotent);

async fn cancel_and_cancel_for_debt(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await; // Saturday: everything defers
    let mut client = server.scheduler("acme").await;
    for (id, debt) in [("a", "debt-1"), ("b", "debt-1"), ("c", "debt-1"), ("d", "debt-2")] {
        let mut i = intent(id, "d-1", pb::Channel::Call, "PE");
        i.debt_id = debt.into();
        let r = submit(&mut client, i).await;
        assert_eq!(r.status, pb::IntentStatus::Deferred as i32);
    }
    let cancelled = client
        .cancel(pb::CancelRequest { intent_id: "a".into(), reason: "paid".into() })
        .await
        .expect("cancel")
        .into_inner()
        .intent
        .expect("the intent");
    assert_eq!(cancelled.status, pb::IntentStatus::Cancelled as i32);
    let again = client
        .cancel(pb::CancelRequest { intent_id: "a".into(), reason: "paid".into() })
        .await
        .expect("idempotent")
        .into_inner()
        .intent
        .expect("the intent");
    assert_eq!(again.status, pb::IntentStatus::Cancelled as i32);
    let missing = client
        .cancel(pb::CancelRequest { intent_id: "nope".into(), reason: String::new() })
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);

    let by_debt = client
        .cancel_for_debt(pb::CancelForDebtRequest {
            debtor_id: "d-1".into(),
            debt_id: "debt-1".into(),
            reason: "paid".into(),
        })
        .await
        .expect("cancel for debt")
        .into_inner();
    let mut ids = by_debt.cancelled_intent_ids.clone();
    ids.sort();
    assert_eq!(ids, vec!["b".to_string(), "c".to_string()]);
    let other = get(&mut client, "d").await;
    assert_eq!(other.status, pb::IntentStatus::Deferred as i32, "another debt's intent is untouched");

    // A cancelled intent never wakes up.
    server.set_clock("2026-11-30T07:00:00-05:00");
    server.wait_for_status(&mut client, "d", pb::IntentStatus::Released).await;
    let b = get(&mut client, "b").await;
    assert_eq!(b.status, pb::IntentStatus::Cancelled as i32);
    server.stop().await;
}
on_both_backends!(cancel_and_cancel_for_debt);

// ------------------------------------------------------------------ opt-outs

async fn opt_out_via_set_preferences(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("w-1", "d-9", pb::Channel::Whatsapp, "PE")).await;
    submit(&mut client, intent("e-1", "d-9", pb::Channel::Email, "PE")).await;
    let prefs = client
        .set_preferences(pb::SetPreferencesRequest {
            debtor_id: "d-9".into(),
            opt_out_channels: vec![pb::Channel::Whatsapp as i32],
            source: "ivr".into(),
            ..Default::default()
        })
        .await
        .expect("set preferences")
        .into_inner()
        .preferences
        .expect("the preferences");
    assert_eq!(prefs.opted_out_channels, vec![pb::Channel::Whatsapp as i32]);
    // The pending WhatsApp intent is rejected at its next evaluation (now); the email one still waits.
    let rejected = server.wait_for_status(&mut client, "w-1", pb::IntentStatus::Rejected).await;
    assert_eq!(rejected.decision.as_ref().map(|d| d.code), Some(pb::RejectCode::OptedOut as i32));
    let email = get(&mut client, "e-1").await;
    assert_eq!(email.status, pb::IntentStatus::Deferred as i32);
    let new = submit(&mut client, intent("w-2", "d-9", pb::Channel::Whatsapp, "PE")).await;
    assert_eq!(new.status, pb::IntentStatus::Rejected as i32);
    server.stop().await;
}
on_both_backends!(opt_out_via_set_preferences);

async fn opt_out_via_ack(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    submit(&mut client, intent("s-1", "d-5", pb::Channel::Sms, "PE")).await;
    let leased = lease(&mut adapter, vec![pb::Channel::Sms as i32], 5).await;
    adapter
        .ack(pb::AckRequest {
            dispatch_id: leased.items[0].dispatch_id.clone(),
            outcome: pb::Outcome::OptedOut as i32,
            at: None,
            detail: "STOP".into(),
        })
        .await
        .expect("ack");
    let again = submit(&mut client, intent("s-2", "d-5", pb::Channel::Sms, "PE")).await;
    assert_eq!(again.status, pb::IntentStatus::Rejected as i32);
    assert_eq!(decision(&again).code, pb::RejectCode::OptedOut as i32);
    // Other channels are still fine.
    let email = submit(&mut client, intent("e-2", "d-5", pb::Channel::Email, "PE")).await;
    assert_eq!(email.status, pb::IntentStatus::Released as i32);
    server.stop().await;
}
on_both_backends!(opt_out_via_ack);

// ------------------------------------------------------------------ leases

async fn expired_lease_is_reoffered_with_the_same_dispatch_id(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    submit(&mut client, intent("l-1", "d-1", pb::Channel::Email, "PE")).await;
    let lease = |adapter: &mut Dispatcher| {
        let mut adapter = adapter.clone();
        async move {
            adapter
                .lease(pb::LeaseRequest {
                    channels: vec![pb::Channel::Email as i32],
                    max_items: 5,
                    lease_duration: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
                })
                .await
                .expect("lease")
                .into_inner()
                .items
        }
    };
    let first = lease(&mut adapter).await;
    assert_eq!(first.len(), 1);
    assert!(lease(&mut adapter).await.is_empty(), "a leased item is not offered twice while the lease holds");
    server.clock.advance(chrono::Duration::seconds(31));
    let second = lease(&mut adapter).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].dispatch_id, first[0].dispatch_id);
    assert_eq!(second[0].attempt, 2);

    // Past the window (20:00 Lima) an expired lease is not re-offered: the fresh check defers it.
    server.clock.advance(chrono::Duration::seconds(31));
    server.set_clock("2026-11-25T20:30:00-05:00");
    assert!(lease(&mut adapter).await.is_empty());
    let view = get(&mut client, "l-1").await;
    assert_eq!(view.status, pb::IntentStatus::Deferred as i32);
    assert_eq!(view.next_eval_at, Some(ts("2026-11-26T07:00:00-05:00")));
    server.stop().await;
}
on_both_backends!(expired_lease_is_reoffered_with_the_same_dispatch_id);

/// A lease of up to five calls for 30 s.
fn calls_for_thirty_seconds() -> pb::LeaseRequest {
    let thirty_seconds = Some(prost_types::Duration { seconds: 30, nanos: 0 });
    pb::LeaseRequest { channels: vec![pb::Channel::Call as i32], max_items: 5, lease_duration: thirty_seconds }
}

async fn a_contact_taken_back_after_its_lease_still_counts_and_its_late_report_is_taken(backend: Backend) {
    // 19:59 in Lima: released and leased for 30 s; the adapter makes the
    // call but reports it only after 20:00, when the lease has expired and
    // the window has closed.
    let server = TestServer::start(backend, "2026-11-25T19:59:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    let released = submit(&mut client, intent("t-1", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(released.status, pb::IntentStatus::Released as i32);
    let request = calls_for_thirty_seconds();
    let held = adapter.lease(request.clone()).await.expect("lease").into_inner().items;
    assert_eq!(held.len(), 1);
    let dispatch_id = held[0].dispatch_id.clone();
    // Another lease looks at the expired one again: no longer allowed, taken back, deferred.
    server.set_clock("2026-11-25T20:00:30-05:00");
    assert!(adapter.lease(request).await.expect("lease").into_inner().items.is_empty());
    assert_eq!(get(&mut client, "t-1").await.status, pb::IntentStatus::Deferred as i32);
    // The call may have been made: it still counts toward the caps…
    let history = server.store().history("acme", "d-1", 0, i64::MAX, None).await.expect("history");
    assert_eq!(history.iter().filter(|e| e.dispatch_id.as_deref() == Some(dispatch_id.as_str())).count(), 1);
    // …and the adapter's report of it is taken, an opt-out included.
    let report = ack(&mut adapter, &dispatch_id, pb::Outcome::OptedOut).await;
    assert_eq!(report.status, pb::IntentStatus::Deferred as i32, "the intent has moved on: {report:?}");
    server.set_clock("2026-11-26T10:00:00-05:00");
    let next = submit(&mut client, intent("t-2", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(next.status, pb::IntentStatus::Rejected as i32, "the debtor opted out of calls");
    server.stop().await;
}
on_both_backends!(a_contact_taken_back_after_its_lease_still_counts_and_its_late_report_is_taken);

async fn a_late_report_of_a_contact_taken_back_never_overwrites_the_next_contacts(backend: Backend) {
    // D1 leased at 19:59 in Lima, taken back after 20:00, released again the
    // next morning as D2, which is acked; then D1's late report comes in.
    let server = TestServer::start(backend, "2026-11-25T19:59:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    submit(&mut client, intent("t-1", "d-1", pb::Channel::Call, "PE")).await;
    let request = calls_for_thirty_seconds();
    let first = adapter.lease(request.clone()).await.expect("lease").into_inner().items[0].dispatch_id.clone();
    server.set_clock("2026-11-25T20:00:30-05:00");
    assert!(adapter.lease(request.clone()).await.expect("lease").into_inner().items.is_empty());
    server.set_clock("2026-11-26T07:00:00-05:00");
    server.wait_for_status(&mut client, "t-1", pb::IntentStatus::Released).await;
    let second = adapter.lease(request).await.expect("lease").into_inner().items[0].dispatch_id.clone();
    assert_ne!(first, second);
    ack(&mut adapter, &second, pb::Outcome::Delivered).await;
    // The late report is taken, and the intent keeps the outcome of its own contact.
    ack(&mut adapter, &first, pb::Outcome::Failed).await;
    let view = get(&mut client, "t-1").await;
    assert_eq!((view.status, view.outcome), (pb::IntentStatus::Done as i32, pb::Outcome::Delivered as i32));
    // Retries: the second contact's is idempotent; the first's is refused, its report standing.
    ack(&mut adapter, &second, pb::Outcome::Delivered).await;
    let again = pb::AckRequest {
        dispatch_id: first.clone(),
        outcome: pb::Outcome::Failed as i32,
        at: None,
        detail: String::new(),
    };
    let refused = adapter.ack(again).await.expect_err("acknowledged already");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("that report stands"), "{}", refused.message());
    // Each report is in the audit log with its own outcome.
    let acked: Vec<(String, String)> = audit_events(&server, "acme")
        .await
        .into_iter()
        .filter(|e| event_kind(e) == "acked")
        .map(|e| (e.detail, e.outcome))
        .collect();
    assert_eq!(acked.len(), 2, "{acked:?}");
    assert!(acked[0].0.contains(&second) && acked[0].1 == "delivered", "{acked:?}");
    assert!(acked[1].0.contains(&first) && acked[1].1 == "failed", "{acked:?}");
    server.stop().await;
}
on_both_backends!(a_late_report_of_a_contact_taken_back_never_overwrites_the_next_contacts);

// ------------------------------------------------------------------ caps under concurrency

async fn fifty_concurrent_submissions_respect_the_daily_cap(backend: Backend) {
    // Colombia: at most one contact a day per debtor.
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let client = server.scheduler("acme").await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .submit(pb::SubmitRequest { intent: Some(intent(&format!("co-{n}"), "d-co", pb::Channel::Sms, "CO")) })
                .await
                .map(|r| r.into_inner().status)
        }));
    }
    let mut released = 0;
    let mut deferred = 0;
    for task in tasks {
        let status = task.await.expect("task").expect("submit");
        if status == pb::IntentStatus::Released as i32 {
            released += 1;
        } else if status == pb::IntentStatus::Deferred as i32 {
            deferred += 1;
        }
    }
    assert_eq!((released, deferred), (1, 49));
    server.stop().await;
}
on_both_backends!(fifty_concurrent_submissions_respect_the_daily_cap);

// ------------------------------------------------------------------ restart

async fn restart_between_submit_and_release(backend: Backend) {
    let mut server = TestServer::start(backend, "2026-11-27T21:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("r-1", "d-1", pb::Channel::Call, "PE")).await;
    server.restart().await;
    server.set_clock("2026-11-30T07:00:00-05:00");
    let mut client = server.scheduler("acme").await;
    server.wait_for_status(&mut client, "r-1", pb::IntentStatus::Released).await;
    // Another restart does not release it twice.
    server.restart().await;
    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Call as i32], 10).await;
    assert_eq!(leased.items.len(), 1);
    server.stop().await;
}
on_both_backends!(restart_between_submit_and_release);

// ------------------------------------------------------------------ auth and tenants

async fn authentication_roles_and_tenant_isolation(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut acme = server.scheduler("acme").await;
    submit(&mut acme, intent("iso-1", "d-1", pb::Channel::Sms, "PE")).await;

    let mut anonymous =
        pb::contact_scheduler_service_client::ContactSchedulerServiceClient::new(server.channel.clone());
    let status = anonymous.get(pb::GetRequest { intent_id: "iso-1".into() }).await.expect_err("no key");
    assert_eq!(status.code(), Code::Unauthenticated);

    let wrong = Auth("Bearer vk_not-a-real-key".parse().expect("ascii"));
    let mut wrong = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::with_interceptor(
        server.channel.clone(),
        wrong,
    );
    assert_eq!(
        wrong.get(pb::GetRequest { intent_id: "iso-1".into() }).await.expect_err("wrong key").code(),
        Code::Unauthenticated
    );

    let adapter_key = server.key("acme", &[Role::Adapter]).await;
    let mut as_adapter = pb::contact_scheduler_service_client::ContactSchedulerServiceClient::with_interceptor(
        server.channel.clone(),
        adapter_key,
    );
    let denied = as_adapter
        .submit(pb::SubmitRequest { intent: Some(intent("x", "d", pb::Channel::Sms, "PE")) })
        .await
        .expect_err("role");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut other = server.scheduler("globex").await;
    assert_eq!(
        other.get(pb::GetRequest { intent_id: "iso-1".into() }).await.expect_err("other tenant").code(),
        Code::NotFound
    );
    assert_eq!(
        other
            .cancel(pb::CancelRequest { intent_id: "iso-1".into(), reason: String::new() })
            .await
            .expect_err("other tenant")
            .code(),
        Code::NotFound
    );
    let mut other_adapter = server.dispatcher("globex").await;
    let leased = lease(&mut other_adapter, vec![pb::Channel::Sms as i32], 10).await;
    assert!(leased.items.is_empty(), "another tenant's contacts are never leased");
    let mut own_adapter = server.dispatcher("acme").await;
    let mine = lease(&mut own_adapter, vec![pb::Channel::Sms as i32], 10).await;
    let ack = other_adapter
        .ack(pb::AckRequest {
            dispatch_id: mine.items[0].dispatch_id.clone(),
            outcome: pb::Outcome::Sent as i32,
            at: None,
            detail: String::new(),
        })
        .await
        .expect_err("other tenant's dispatch");
    assert_eq!(ack.code(), Code::NotFound);
    // The same intent id in another tenant is a different intent.
    let theirs = submit(&mut other, intent("iso-1", "d-1", pb::Channel::Email, "PE")).await;
    assert_eq!(theirs.intent_id, "iso-1");
    server.stop().await;
}
on_both_backends!(authentication_roles_and_tenant_isolation);

// ------------------------------------------------------------------ bad input

async fn invalid_requests_name_the_field(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let cases: Vec<(pb::Intent, &str)> = vec![
        (pb::Intent { intent_id: String::new(), ..intent("", "d", pb::Channel::Sms, "PE") }, "intent.intent_id"),
        (pb::Intent { channel: 0, ..intent("a", "d", pb::Channel::Sms, "PE") }, "intent.channel"),
        (pb::Intent { channel: 99, ..intent("a", "d", pb::Channel::Sms, "PE") }, "intent.channel"),
        (pb::Intent { party: 0, ..intent("a", "d", pb::Channel::Sms, "PE") }, "intent.party"),
        (
            pb::Intent { time_zones: vec!["Mars/Olympus".into()], ..intent("a", "d", pb::Channel::Sms, "PE") },
            "intent.time_zones[0]",
        ),
        (intent("a", "d", pb::Channel::Sms, "ZZ"), "intent.jurisdiction"),
        (pb::Intent { debtor_id: "x".repeat(300), ..intent("a", "d", pb::Channel::Sms, "PE") }, "intent.debtor_id"),
    ];
    for (bad, field) in cases {
        let status = client.submit(pb::SubmitRequest { intent: Some(bad) }).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field} not named in {:?}", status.message());
    }
    let status = client.submit(pb::SubmitRequest { intent: None }).await.expect_err("no intent");
    assert_eq!(status.code(), Code::InvalidArgument);
    let missing = client.get(pb::GetRequest { intent_id: "never".into() }).await.expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);

    // Over the message size limit (1 MiB in tests): refused, server unharmed.
    let huge = pb::Intent {
        payload: (0..64)
            .map(|i| (format!("k{i}"), "v".repeat(4000)))
            .chain([("big".to_string(), "x".repeat(2 << 20))])
            .collect(),
        ..intent("huge", "d", pb::Channel::Sms, "PE")
    };
    let status = client.submit(pb::SubmitRequest { intent: Some(huge) }).await.expect_err("too big");
    assert_eq!(status.code(), Code::ResourceExhausted, "gRPC's code for a message over the limit: {status:?}");

    let batch = client.submit_batch(pb::SubmitBatchRequest { intents: vec![] }).await.expect_err("empty batch");
    assert_eq!(batch.code(), Code::InvalidArgument);
    let mut adapter = server.dispatcher("acme").await;
    let bad_lease = adapter
        .lease(pb::LeaseRequest { channels: vec![], max_items: 1, lease_duration: None })
        .await
        .expect_err("no channels");
    assert_eq!(bad_lease.code(), Code::InvalidArgument);
    let bad_ack = adapter
        .ack(pb::AckRequest {
            dispatch_id: "nope".into(),
            outcome: pb::Outcome::Sent as i32,
            at: None,
            detail: String::new(),
        })
        .await
        .expect_err("unknown dispatch");
    assert_eq!(bad_ack.code(), Code::NotFound);
    // The server still answers.
    submit(&mut client, intent("ok", "d", pb::Channel::Sms, "PE")).await;
    server.stop().await;
}
on_both_backends!(invalid_requests_name_the_field);

async fn submit_batch_one_result_per_intent(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let intents = vec![
        intent("b-1", "d-1", pb::Channel::Sms, "PE"),
        intent("b-2", "d-2", pb::Channel::Call, "ZZ"),
        intent("b-3", "d-3", pb::Channel::Call, "CL"),
    ];
    let results = client.submit_batch(pb::SubmitBatchRequest { intents }).await.expect("batch").into_inner().results;
    assert_eq!(results.len(), 3);
    use pb::submit_batch_result::Result::{Error, Response};
    let Some(Response(released)) = &results[0].result else { panic!("accepted: {:?}", results[0]) };
    assert_eq!(released.status, pb::IntentStatus::Released as i32);
    let Some(Error(refused)) = &results[1].result else { panic!("refused: {:?}", results[1]) };
    assert_eq!(refused.code, Code::InvalidArgument as i32, "a google.rpc.Status with the gRPC code");
    assert!(refused.message.contains("jurisdiction"), "{}", refused.message);
    assert!(matches!(results[2].result, Some(Response(_))));
    // The same intent again with another body: its own ALREADY_EXISTS, the others unaffected.
    let mut changed = intent("b-1", "d-1", pb::Channel::Call, "PE");
    changed.priority = 7;
    let again = vec![changed, intent("b-4", "d-4", pb::Channel::Sms, "PE")];
    let results =
        client.submit_batch(pb::SubmitBatchRequest { intents: again }).await.expect("batch").into_inner().results;
    let Some(Error(exists)) = &results[0].result else { panic!("refused: {:?}", results[0]) };
    assert_eq!(exists.code, Code::AlreadyExists as i32, "{}", exists.message);
    assert!(matches!(results[1].result, Some(Response(_))));
    let too_many: Vec<_> = (0..1001).map(|n| intent(&format!("m-{n}"), "d", pb::Channel::Sms, "PE")).collect();
    let status = client.submit_batch(pb::SubmitBatchRequest { intents: too_many }).await.expect_err("over 1000");
    assert_eq!(status.code(), Code::InvalidArgument);
    server.stop().await;
}
on_both_backends!(submit_batch_one_result_per_intent);

// ------------------------------------------------------------------ rules service

async fn rules_list_calendar_and_atomic_reload(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(jurisdictions_dir()).expect("jurisdictions") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let server = TestServer::start_with(backend, "2026-11-25T10:00:00-05:00", |c| c.jurisdictions(dir.path())).await;
    let mut reader = server.rules("acme", Role::Auditor).await;
    let listed = reader.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.expect("list").into_inner();
    let pe = listed.jurisdictions.iter().find(|j| j.code == "PE").expect("PE listed");
    assert_eq!(pe.version_hash.len(), 12);
    assert_eq!(pe.confirmed_through, "2027-12-31");
    assert!(pe.pending_decisions.is_empty());
    // Argentina: the bridge days are confirmed through 2026; Soberanía 2027 is undecided.
    let ar = listed.jurisdictions.iter().find(|j| j.code == "AR").expect("AR listed");
    assert_eq!(ar.confirmed_through, "2026-12-31");
    let sovereignty = ar.pending_decisions.iter().find(|p| p.rule == "ar-sovereignty").expect("pending decision");
    assert_eq!(sovereignty.date, "2027-11-20");
    assert_eq!(sovereignty.closed_days, ["2027-11-19", "2027-11-20", "2027-11-22"]);
    assert!(sovereignty.under.contains("Decreto 614/2025"), "{}", sovereignty.under);
    let calendar =
        reader.calendar(pb::CalendarRequest { code: "PE".into(), year: 2026 }).await.expect("calendar").into_inner();
    assert!(calendar.holidays.iter().any(|h| h.date == "2026-07-28" && !h.provisional));
    let ar_2027 =
        reader.calendar(pb::CalendarRequest { code: "AR".into(), year: 2027 }).await.expect("calendar").into_inner();
    let friday = ar_2027.holidays.iter().find(|h| h.date == "2027-11-19").expect("candidate Friday listed");
    assert!(friday.provisional && friday.rule == "ar-sovereignty", "{friday:?}");
    let unknown = reader.calendar(pb::CalendarRequest { code: "XX".into(), year: 2026 }).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::InvalidArgument, "as Submit answers an unknown jurisdiction");
    assert_eq!(
        reader.reload(pb::ReloadRequest {}).await.expect_err("auditor cannot reload").code(),
        Code::PermissionDenied
    );

    let mut operator = server.rules("acme", Role::Operator).await;
    let pe_file = dir.path().join("PE.toml");
    let good = std::fs::read_to_string(&pe_file).expect("read");
    std::fs::write(&pe_file, good.replace("07:00-20:00", "07:00-26:00")).expect("corrupt");
    let refused = operator.reload(pb::ReloadRequest {}).await.expect_err("invalid directory");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("PE.toml:"), "{}", refused.message());
    let still = reader.list_jurisdictions(pb::ListJurisdictionsRequest {}).await.expect("list").into_inner();
    assert_eq!(
        still.jurisdictions.iter().find(|j| j.code == "PE").map(|j| j.version_hash.clone()),
        Some(pe.version_hash.clone())
    );
    let mut client = server.scheduler("acme").await;
    let r = submit(&mut client, intent("after-bad", "d", pb::Channel::Call, "PE")).await;
    assert_eq!(r.status, pb::IntentStatus::Released as i32, "the rules in force are untouched");

    std::fs::write(&pe_file, good.replace("# Peru", "# Peru (edited)")).expect("edit");
    let reloaded = operator.reload(pb::ReloadRequest {}).await.expect("valid reload").into_inner();
    let new_hash = reloaded.jurisdictions.iter().find(|j| j.code == "PE").map(|j| j.version_hash.clone());
    assert_ne!(new_hash, Some(pe.version_hash.clone()));
    server.stop().await;
}
on_both_backends!(rules_list_calendar_and_atomic_reload);

// ------------------------------------------------------------------ built-in adapters

async fn log_adapter_writes_and_acks(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("contacts.jsonl");
    let adapters = vec![ventana::config::AdapterConfig {
        channel: ventana::domain::Channel::Sms,
        kind: ventana::config::AdapterKind::Log { path: log.display().to_string() },
    }];
    let server = TestServer::start_with(backend, "2026-11-25T10:00:00-05:00", |c| c.adapters(adapters)).await;
    let mut client = server.scheduler("acme").await;
    let mut sms = intent("log-1", "d-1", pb::Channel::Sms, "PE");
    sms.payload.insert("phone".into(), "+51999000111".into());
    submit(&mut client, sms).await;
    let done = server.wait_for_status(&mut client, "log-1", pb::IntentStatus::Done).await;
    assert_eq!(done.outcome, pb::Outcome::Sent as i32);
    let text = std::fs::read_to_string(&log).expect("log written");
    let line: serde_json::Value = serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(line["intent"]["intent_id"], "log-1");
    assert_eq!(line["payload"]["phone"], "+51999000111");
    assert_eq!(line["dispatch_id"], done.dispatch_id);
    server.stop().await;
}
on_both_backends!(log_adapter_writes_and_acks);

/// A webhook on a loopback port that answers its first call 503 (after
/// running `on_first`) and every later one 200; it sends each call's
/// signature and body on the channel it returns with its URL.
async fn flaky_webhook(
    on_first: impl Fn() + Send + Sync + 'static,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/contacts", listener.local_addr().expect("addr"));
    let (seen_tx, seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let on_first = std::sync::Arc::new(on_first);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (seen, calls, on_first) = (seen_tx.clone(), calls.clone(), on_first.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (seen, calls, on_first) = (seen.clone(), calls.clone(), on_first.clone());
                    async move {
                        let signature = request
                            .headers()
                            .get("x-ventana-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let body =
                            request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                        let _ = seen.send((signature, body));
                        let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                        let mut response =
                            hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok")));
                        if first {
                            on_first();
                            *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen_rx)
}

/// The built-in webhook adapter for email, three attempts.
fn email_webhook(url: String) -> Vec<ventana::config::AdapterConfig> {
    vec![ventana::config::AdapterConfig {
        channel: ventana::domain::Channel::Email,
        kind: ventana::config::AdapterKind::Webhook { url, secret: "s3cret".into(), timeout_ms: 2000, max_attempts: 3 },
    }]
}

async fn webhook_adapter_signs_retries_and_acks_by_status(backend: Backend) {
    // The first call fails with 503: the adapter must retry (with backoff) and then succeed.
    let (url, mut seen_rx) = flaky_webhook(|| {}).await;
    let server = TestServer::start_with(backend, "2026-11-25T10:00:00-05:00", |c| c.adapters(email_webhook(url))).await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("hook-1", "d-1", pb::Channel::Email, "PE")).await;
    let done = server.wait_for_status(&mut client, "hook-1", pb::IntentStatus::Done).await;
    assert_eq!(done.outcome, pb::Outcome::Sent as i32);
    let (signature, body) = seen_rx.recv().await.expect("webhook called");
    assert_eq!(signature, ventana::adapters::sign("s3cret", &body));
    let (retry_signature, retry_body) = seen_rx.recv().await.expect("webhook retried after the 503");
    assert_eq!(
        (retry_signature, retry_body.clone()),
        (signature, body.clone()),
        "the retry sends the same signed body"
    );
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(json["intent"]["intent_id"], "hook-1");
    server.stop().await;
}
on_both_backends!(webhook_adapter_signs_retries_and_acks_by_status);

async fn the_webhook_adapter_never_retries_past_a_contacts_window(backend: Backend) {
    // Released at 19:59:50 in Lima; the webhook's first answer, a 503, comes
    // at 20:01, after the window (20:00) and the adapter's lease (20:00:50).
    let clock: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<ventana::clock::ManualClock>>>> =
        Default::default();
    let late = clock.clone();
    let (url, mut seen_rx) = flaky_webhook(move || {
        if let Some(clock) = late.lock().expect("clock").as_ref() {
            clock.set(at("2026-11-25T20:01:00-05:00"));
        }
    })
    .await;
    let server = TestServer::start_with(backend, "2026-11-25T19:59:50-05:00", |c| c.adapters(email_webhook(url))).await;
    *clock.lock().expect("clock") = Some(server.clock.clone());
    let mut client = server.scheduler("acme").await;
    let released = submit(&mut client, intent("hook-late", "d-1", pb::Channel::Email, "PE")).await;
    assert_eq!(released.status, pb::IntentStatus::Released as i32);
    // No retry after 20:00: the next lease looks again and defers it to the morning.
    let view = server.wait_for_status(&mut client, "hook-late", pb::IntentStatus::Deferred).await;
    assert_eq!(view.next_eval_at, Some(ts("2026-11-26T07:00:00-05:00")));
    assert!(seen_rx.try_recv().is_ok(), "the first call, in time");
    assert!(seen_rx.try_recv().is_err(), "no call after the window closed");
    server.stop().await;
}
on_both_backends!(the_webhook_adapter_never_retries_past_a_contacts_window);

// ------------------------------------------------------------------ metrics

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    response
}

async fn metrics_endpoint_serves_the_documented_series(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await; // Saturday: Peru defers
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("m-1", "d-1", pb::Channel::Sms, "PE")).await;
    submit(&mut client, intent("m-2", "d-2", pb::Channel::Sms, "US-NY")).await;
    let mut adapter = server.dispatcher("acme").await;
    adapter
        .lease(pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 5, lease_duration: None })
        .await
        .expect("lease");
    let metrics_addr = server.running.as_ref().expect("running").metrics_addr;
    let text = http_get(metrics_addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"), "{text}");
    for series in [
        "ventana_decisions_total{decision=\"defer\",jurisdiction=\"PE\"}",
        "ventana_decisions_total{decision=\"release\",jurisdiction=\"US-NY\"}",
        "ventana_intents_deferred",
        "ventana_intents_due",
        "ventana_dispatch_latency_seconds_bucket",
        // AR's bridge-day list is confirmed through 2026-12-31: 33 days after the 28th.
        "ventana_rules_confirmed_days{jurisdiction=\"AR\"} 33\n",
        "ventana_rules_confirmed_days{jurisdiction=\"PE\"} 398\n",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(http_get(metrics_addr, "/nope").await.contains("404"));
    server.stop().await;
}
on_both_backends!(metrics_endpoint_serves_the_documented_series);

// ------------------------------------------------------------------ rate limits

/// WhatsApp leases: 2 at once, then 1 a second.
fn whatsapp_limit(config: TestConfig) -> TestConfig {
    config.channel_rate(ventana::domain::Channel::Whatsapp, 1, 2)
}

async fn lease_whatsapp(adapter: &mut Dispatcher) -> Vec<pb::LeasedItem> {
    lease(adapter, vec![pb::Channel::Whatsapp as i32], 10).await.items
}

async fn a_rate_limited_queue_never_sends_after_the_window_closes(backend: Backend) {
    // Friday 19:59 in Lima: one minute of window left, and WhatsApp lets 2 through, then 1/s.
    let server = TestServer::start_with(backend, "2026-11-27T19:59:00-05:00", whatsapp_limit).await;
    let mut client = server.scheduler("acme").await;
    for n in 0..5 {
        let r = client
            .submit(pb::SubmitRequest {
                intent: Some(intent(&format!("rl-{n}"), &format!("d-{n}"), pb::Channel::Whatsapp, "PE")),
            })
            .await
            .expect("submit")
            .into_inner();
        assert_eq!(r.status, pb::IntentStatus::Released as i32);
    }
    let mut adapter = server.dispatcher("acme").await;
    let first = lease_whatsapp(&mut adapter).await;
    assert_eq!(first.len(), 2, "the burst goes out, the rest wait");
    for item in &first {
        assert_eq!(item.not_after, Some(ts("2026-11-27T20:00:00-05:00")), "not_after is the end of the window");
        adapter
            .ack(pb::AckRequest {
                dispatch_id: item.dispatch_id.clone(),
                outcome: pb::Outcome::Sent as i32,
                at: None,
                detail: String::new(),
            })
            .await
            .expect("ack");
    }
    // The window closes while three wait behind the limit.
    server.set_clock("2026-11-27T20:00:30-05:00");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // the limiter refills in real time
    assert!(lease_whatsapp(&mut adapter).await.is_empty(), "nothing leaves after 20:00");
    let mut deferred = 0;
    for n in 0..5 {
        let view = client
            .get(pb::GetRequest { intent_id: format!("rl-{n}") })
            .await
            .expect("get")
            .into_inner()
            .intent
            .expect("the intent");
        if view.status == pb::IntentStatus::Deferred as i32 {
            deferred += 1;
            assert_eq!(view.next_eval_at, Some(ts("2026-11-30T07:00:00-05:00")));
        }
    }
    assert_eq!(deferred, 3, "the held contacts wait for Monday");
    server.stop().await;
}
on_both_backends!(a_rate_limited_queue_never_sends_after_the_window_closes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_replica() {
    // Two replicas on one PostgreSQL database, each with WhatsApp burst 2: together they lease 4.
    let first = TestServer::start_with(Backend::Postgres, "2026-11-25T10:00:00-05:00", whatsapp_limit).await;
    let second = first.replica().await;
    let mut client = first.scheduler("acme").await;
    for n in 0..10 {
        client
            .submit(pb::SubmitRequest {
                intent: Some(intent(&format!("pr-{n}"), &format!("d-{n}"), pb::Channel::Whatsapp, "PE")),
            })
            .await
            .expect("submit");
    }
    let mut adapter_one = first.dispatcher("acme").await;
    let mut adapter_two = second.dispatcher("acme").await;
    let one = lease_whatsapp(&mut adapter_one).await;
    let two = lease_whatsapp(&mut adapter_two).await;
    assert_eq!((one.len(), two.len()), (2, 2));
    let ids: std::collections::HashSet<_> = one.iter().chain(&two).map(|i| i.dispatch_id.clone()).collect();
    assert_eq!(ids.len(), 4, "no contact leased twice");
    second.stop().await;
    first.stop().await;
}

/// Two PostgreSQL replicas, each with a clock of its own that never moves:
/// `monday` (07:30 in Lima) has run its first round, with nothing due, and
/// sleeps until something wakes it; `saturday` defers every call to Monday
/// 07:00. Both listen for wake-ups.
async fn monday_and_saturday() -> (TestServer, TestServer) {
    let monday = TestServer::start(Backend::Postgres, "2026-11-30T07:30:00-05:00").await;
    let saturday = monday.replica_at("2026-11-28T10:00:00-05:00").await;
    monday.wait_until_scheduling().await;
    monday.wait_for_listeners(2).await;
    (monday, saturday)
}

/// Waits until `server` has released `intent_id` (bounded).
async fn wait_until_released(server: &TestServer, intent_id: &str) {
    let mut reader = server.scheduler("acme").await;
    let released = server.wait_for_status(&mut reader, intent_id, pb::IntentStatus::Released).await;
    assert!(!released.dispatch_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_wakes_when_another_defers_a_contact_that_is_due_by_its_clock() {
    // Only the NOTIFY that `saturday` sends after its commit can wake `monday`.
    let (monday, saturday) = monday_and_saturday().await;
    let mut client = saturday.scheduler("acme").await;
    let submitted = submit(&mut client, intent("nt-1", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(submitted.status, pb::IntentStatus::Deferred as i32, "Saturday in Lima: no calls");
    assert_eq!(decision(&submitted).at, Some(ts("2026-11-30T07:00:00-05:00")));
    wait_until_released(&monday, "nt-1").await;
    saturday.stop().await;
    monday.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_ends_after_its_replica_stopped_still_wakes_the_others() {
    // Shutdown waits for the tasks that serve requests, then stops the
    // replica's notifier; a group-commit writer or a Dispatch stream can
    // still commit after that. Such a commit's wake-up must reach the other
    // replicas too: `monday` wakes only by it.
    let (monday, saturday) = monday_and_saturday().await;
    let late = saturday.running.as_ref().expect("running").app.clone();
    saturday.stop().await;
    let body = r#"{"intent":{"tenant":"acme","intent_id":"late-1","debtor_id":"d-1","debt_id":"debt-1","channel":"call","party":"debtor","stage":"extrajudicial","jurisdiction":"PE"},"priority":0,"payload":{}}"#;
    let submission = ventana::app::Submission::from_json(body).expect("a valid body");
    let stored = late.submit(&[submission]).await.expect("the late commit").pop().expect("one result");
    assert_eq!(stored.expect("submitted").status, ventana::domain::IntentStatus::Deferred, "Saturday in Lima");
    wait_until_released(&monday, "late-1").await;
    monday.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_whose_notify_fails_is_sent_again_until_it_goes() {
    // `saturday` resolves `pg_notify` in `public` first, where this test puts
    // one that fails (and counts its failures) until told to stop; `monday`
    // uses PostgreSQL's own. `monday` wakes only by a NOTIFY of `saturday`'s.
    let monday = TestServer::start(Backend::Postgres, "2026-11-30T07:30:00-05:00").await;
    let url = &monday.config.database_url;
    let faults = [
        "CREATE SEQUENCE notify_failures",
        "CREATE TABLE notify_fault (failing boolean NOT NULL)",
        "INSERT INTO notify_fault VALUES (true)",
        "CREATE FUNCTION public.pg_notify(channel text, payload text) RETURNS void LANGUAGE plpgsql AS $$
         BEGIN
             IF (SELECT failing FROM notify_fault) THEN
                 PERFORM nextval('notify_failures');
                 RAISE EXCEPTION 'NOTIFY refused by the test';
             END IF;
             PERFORM pg_catalog.pg_notify(channel, payload);
         END $$",
    ];
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.expect("connect");
    for sql in faults {
        sqlx::query(sql).execute(&mut admin).await.expect(sql);
    }
    let saturday = monday
        .replica_through(&format!("{url}?options[search_path]=public,pg_catalog"), "2026-11-28T10:00:00-05:00")
        .await;
    monday.wait_until_scheduling().await;
    monday.wait_for_listeners(2).await;

    let mut client = saturday.scheduler("acme").await;
    let submitted = submit(&mut client, intent("nf-1", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(submitted.status, pb::IntentStatus::Deferred as i32, "Saturday in Lima: no calls");
    let failures = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM notify_failures";
    assert!(reaches_count(url, failures, 2).await, "the failed NOTIFY was never tried again");
    let mut reader = monday.scheduler("acme").await;
    let waiting = get(&mut reader, "nf-1").await;
    assert_eq!(waiting.status, pb::IntentStatus::Deferred as i32, "no NOTIFY has gone: monday still sleeps");
    sqlx::query("UPDATE notify_fault SET failing = false").execute(&mut admin).await.expect("fault off");
    wait_until_released(&monday, "nf-1").await;
    saturday.stop().await;
    monday.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_decides_on_the_dispatch_as_it_is_once_its_debtor_is_locked() {
    // PostgreSQL: another replica's transaction holds the debtor and records
    // its own report of the same dispatch while this replica's ack waits for
    // the debtor. The waiting ack must see that report, not overwrite it.
    use ventana::domain::{AckOutcome, DispatchState, IntentStatus};
    let server = TestServer::start(Backend::Postgres, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let released = submit(&mut client, intent("a-1", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(released.status, pb::IntentStatus::Released as i32);
    let mut adapter = server.dispatcher("acme").await;
    let dispatch_id = lease(&mut adapter, vec![pb::Channel::Call as i32], 1).await.items[0].dispatch_id.clone();

    let mut other = server.store().begin().await.expect("begin");
    other.lock_debtor("acme", "d-1").await.expect("the debtor");
    let mut dispatch = other.get_dispatch(&dispatch_id).await.expect("read").expect("the dispatch");
    dispatch.state = DispatchState::Acked;
    other.update_dispatch(&dispatch).await.expect("acked");
    let mut row = other.get_intent("acme", "a-1").await.expect("read").expect("the intent");
    row.status = IntentStatus::Done;
    row.outcome = Some(AckOutcome::NoAnswer);
    other.update_intent(&row).await.expect("done");

    let report = pb::AckRequest {
        dispatch_id: dispatch_id.clone(),
        outcome: pb::Outcome::Delivered as i32,
        at: None,
        detail: String::new(),
    };
    let waiting = tokio::spawn(async move { adapter.ack(report).await });
    wait_for_blocked_lockers(&server.config.database_url, 1).await;
    other.commit().await.expect("the other replica's report");
    let refused = waiting.await.expect("the ack's task").expect_err("acknowledged already");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("already acknowledged as no_answer"), "{}", refused.message());
    let view = get(&mut client, "a-1").await;
    assert_eq!(view.outcome, pb::Outcome::NoAnswer as i32, "the first report stands");
    server.stop().await;
}

// ------------------------------------------------------------------ the 07:00 surge

const SURGE: usize = 3_000;

/// Polls until `done` holds for the store (bounded, so a stuck scheduler fails the test).
async fn wait_for_store(server: &TestServer, what: &str, done: impl Fn(i64, i64) -> bool) {
    let now = server.clock.now().timestamp_millis();
    for _ in 0..12_000 {
        let (due, deferred, _) = server.store().queue_depth(now).await.expect("queue depth");
        if done(due, deferred) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{what} never happened");
}

async fn surge_goes_out_highest_priority_first_and_new_submissions_get_through(backend: Backend) {
    // Saturday in Lima: everything is deferred to Monday 07:00, in three priorities.
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    for start in (0..SURGE).step_by(500) {
        let intents = (start..start + 500)
            .map(|n| pb::Intent {
                priority: (n % 3) as i32,
                ..intent(&format!("s-{n}"), &format!("d-{n}"), pb::Channel::Whatsapp, "PE")
            })
            .collect();
        client.submit_batch(pb::SubmitBatchRequest { intents }).await.expect("batch");
    }
    server.set_clock("2026-11-30T07:00:00-05:00");
    wait_for_store(&server, "the surge starting", |_, deferred| deferred < SURGE as i64).await;

    // While the surge is under way, a new submission is decided, not queued behind it.
    let fresh = submit(&mut client, intent("fresh", "d-fresh", pb::Channel::Sms, "PE")).await;
    assert_eq!(fresh.status, pb::IntentStatus::Released as i32);
    let (_, still_deferred, _) =
        server.store().queue_depth(server.clock.now().timestamp_millis()).await.expect("depth");
    assert!(still_deferred > 0, "the new submission had to wait for the whole surge");
    wait_for_store(&server, "the surge ending", |_, deferred| deferred == 0).await;

    // Highest priority first: every priority-2 release precedes every priority-0 one.
    let mut released_seq: [Vec<i64>; 3] = Default::default();
    let mut after = 0;
    loop {
        let page = server.store().audit_page("acme", after, i64::MAX, 1000).await.expect("audit page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            let n = row.event.intent_id.as_deref().and_then(|id| id.strip_prefix("s-")?.parse::<usize>().ok());
            if let (Some(n), "released") = (n, row.event.kind.as_str()) {
                released_seq[n % 3].push(row.seq);
            }
        }
    }
    assert_eq!(released_seq.iter().map(Vec::len).sum::<usize>(), SURGE, "every surge intent released once");
    let last_high = released_seq[2].iter().max().expect("priority 2");
    let first_low = released_seq[0].iter().min().expect("priority 0");
    assert!(last_high < first_low, "priority 2 all released (last at {last_high}) before priority 0 ({first_low})");

    // And leases hand them out highest priority first too.
    let mut adapter = server.dispatcher("acme").await;
    let mut priorities = Vec::new();
    loop {
        let items = lease(&mut adapter, vec![pb::Channel::Whatsapp as i32], 500).await.items;
        if items.is_empty() {
            break;
        }
        for item in items {
            priorities.push(item.intent.expect("intent").priority);
        }
    }
    assert_eq!(priorities.len(), SURGE);
    assert!(priorities.windows(2).all(|w| w[0] >= w[1]), "leased in priority order");
    assert_eq!(priorities.iter().filter(|p| **p == 2).count(), SURGE / 3);
    server.stop().await;
}
on_both_backends!(surge_goes_out_highest_priority_first_and_new_submissions_get_through);

async fn a_key_over_its_request_rate_is_told_to_slow_down(backend: Backend) {
    let server = TestServer::start_with(backend, "2026-11-25T10:00:00-05:00", |c| c.per_key_rate(1, 3)).await;
    let mut busy = server.scheduler("acme").await;
    let mut calm = server.scheduler("acme").await;
    let mut codes = Vec::new();
    for n in 0..5 {
        let answer = busy.get(pb::GetRequest { intent_id: format!("nothing-{n}") }).await;
        codes.push(answer.expect_err("no such intent").code());
    }
    assert_eq!(&codes[..3], &[Code::NotFound; 3], "the burst of 3 is served");
    assert_eq!(&codes[3..], &[Code::ResourceExhausted; 2], "then the key is held back");
    let other = calm.get(pb::GetRequest { intent_id: "nothing".into() }).await.expect_err("no such intent");
    assert_eq!(other.code(), Code::NotFound, "another key has its own budget");
    server.stop().await;
}
on_both_backends!(a_key_over_its_request_rate_is_told_to_slow_down);

/// Holds every write off from outside the service: SQLite's write lock, or an
/// exclusive lock on `intents` in PostgreSQL. Released by `ROLLBACK`.
enum WriteBlocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteBlocker {
    async fn hold(server: &TestServer) -> WriteBlocker {
        use sqlx::Connection;
        let url = &server.config.database_url;
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("write lock");
            WriteBlocker::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query("BEGIN").execute(&mut conn).await.expect("begin");
            sqlx::query("LOCK TABLE intents IN EXCLUSIVE MODE").execute(&mut conn).await.expect("table lock");
            WriteBlocker::Postgres(conn)
        }
    }

    async fn release(self) {
        match self {
            WriteBlocker::Sqlite(mut conn) => sqlx::query("ROLLBACK").execute(&mut conn).await.map(drop),
            WriteBlocker::Postgres(mut conn) => sqlx::query("ROLLBACK").execute(&mut conn).await.map(drop),
        }
        .expect("release the lock");
    }
}

async fn a_call_past_its_deadline_is_cut_off_and_its_retry_is_idempotent(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let request = pb::SubmitRequest { intent: Some(intent("late", "d-1", pb::Channel::Sms, "PE")) };

    // The database holds the write back far longer (SQLite's busy timeout is
    // 10 s) than the caller's 300 ms deadline: the server gives up at the
    // deadline; had it waited, the answer would be UNAVAILABLE (busy) or OK.
    let blocker = WriteBlocker::hold(&server).await;
    let mut hurried = tonic::Request::new(request.clone());
    hurried.set_timeout(std::time::Duration::from_millis(300));
    let cut = client.submit(hurried).await.expect_err("past its deadline");
    assert!(
        matches!(cut.code(), Code::Cancelled | Code::DeadlineExceeded) && cut.message().contains("Timeout expired"),
        "{cut:?}"
    );
    // Reads are not held up by the blocked write.
    let missing = client.get(pb::GetRequest { intent_id: "other".into() }).await.expect_err("no such intent");
    assert_eq!(missing.code(), Code::NotFound);
    blocker.release().await;

    // The abandoned call may or may not have been stored; the retry gets one answer either way.
    let retry = client.submit(request.clone()).await.expect("retry").into_inner();
    assert_eq!(decision(&retry).kind, pb::DecisionKind::Release as i32, "{retry:?}");
    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Sms as i32], 10).await;
    assert_eq!(leased.items.len(), 1, "one contact for the abandoned call and its retry");
    server.stop().await;
}
on_both_backends!(a_call_past_its_deadline_is_cut_off_and_its_retry_is_idempotent);

async fn a_history_past_the_read_bound_is_never_decided_on(backend: Backend) {
    // Any hour, and at least an hour between two contacts (no count limit).
    let hourly = crate::support::rules::fixture("hourly");
    let server = TestServer::start_with(backend, "2026-11-25T10:00:00Z", |c| c.jurisdictions(hourly)).await;
    // Contacts a minute apart: 10,000 (all a decision reads), the newest 61
    // minutes ago, for one debtor; 10,001, the newest a minute ago, for
    // another. Caps count only some events (a channel, an outcome, who
    // started it), so a history cut to its newest events could hide the ones
    // a cap counts.
    let now = at("2026-11-25T10:00:00Z").timestamp_millis();
    for (debtor, newest, events) in [("d-full", 61, 10_000), ("d-edge", 61, 10_000), ("d-busy", 1, 10_001)] {
        let rows: Vec<String> = (newest..newest + events)
            .rev()
            .map(|minutes_ago| format!("('acme', '{debtor}', 'sms', {}, 'attempted')", now - minutes_ago * 60_000))
            .collect();
        for chunk in rows.chunks(1_000) {
            let sql = format!(
                "INSERT INTO contact_events (tenant, debtor_id, channel, at, outcome) VALUES {}",
                chunk.join(", ")
            );
            server.store().execute_unchecked(&sql).await.expect("insert events");
        }
    }
    let mut client = server.scheduler("acme").await;
    for (id, debtor) in [("full", "d-full"), ("edge", "d-edge")] {
        let answer = submit(&mut client, intent(id, debtor, pb::Channel::Sms, "ZZ")).await;
        assert_eq!(answer.status, pb::IntentStatus::Released as i32, "decided on all 10,000: {answer:?}");
    }
    // Each one's own contact makes 10,001; the lease's second look leaves it
    // out, as the decision does. One more contact of d-edge's, recorded
    // since, is one too many for that second look.
    let older = now - 20_000 * 60_000;
    let one_more = format!(
        "INSERT INTO contact_events (tenant, debtor_id, channel, at, outcome) VALUES ('acme', 'd-edge', 'sms', {older}, 'attempted')"
    );
    server.store().execute_unchecked(&one_more).await.expect("insert an event");
    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Sms as i32], 10).await;
    let ids = intent_ids(&leased.items);
    assert_eq!(ids, ["full"]);
    assert_eq!(get(&mut client, "full").await.status, pb::IntentStatus::Leased as i32);
    assert_eq!(get(&mut client, "edge").await.status, pb::IntentStatus::Held as i32);
    let refused = client
        .submit(pb::SubmitRequest { intent: Some(intent("busy", "d-busy", pb::Channel::Sms, "ZZ")) })
        .await
        .expect_err("no decision on part of a history");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("more than 10000 contact events"), "{}", refused.message());
    // The same through a group (the read-ahead path): only that debtor's intent is refused.
    let batch = client
        .submit_batch(pb::SubmitBatchRequest {
            intents: vec![
                intent("batch-1", "d-busy", pb::Channel::Sms, "ZZ"),
                intent("batch-2", "d-quiet", pb::Channel::Sms, "ZZ"),
            ],
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    use pb::submit_batch_result::Result::{Error, Response};
    let Some(Error(refused)) = &batch[0].result else { panic!("refused: {:?}", batch[0]) };
    assert_eq!(refused.code, Code::FailedPrecondition as i32, "{}", refused.message);
    assert!(refused.message.contains("more than 10000 contact events"), "{}", refused.message);
    let Some(Response(quiet)) = &batch[1].result else { panic!("accepted: {:?}", batch[1]) };
    assert_eq!(quiet.status, pb::IntentStatus::Released as i32);
    server.stop().await;
}
on_both_backends!(a_history_past_the_read_bound_is_never_decided_on);

/// Sends and receives message bodies as raw bytes, to put malformed protobuf on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let body = src.copy_to_bytes(src.remaining()).to_vec();
        Ok(Some(body))
    }
}

async fn malformed_wire_requests_get_a_status_and_harm_nothing(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let key = server.key("acme", &[Role::Submitter]).await;
    let mut noise = 0x9e37_79b9_7f4a_7c15_u64;
    let random: Vec<u8> = (0..1024)
        .map(|_| {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            noise as u8
        })
        .collect();
    // Bodies of a SubmitRequest. Undecodable protobuf is INTERNAL with the
    // decoder's reason (gRPC's status-code table: "error parsing request
    // proto"); decodable but invalid is INVALID_ARGUMENT naming the field.
    let corpus: Vec<(&str, Vec<u8>, Code, &str)> = vec![
        ("truncated length varint", vec![0x0a, 0xff], Code::Internal, "failed to decode"),
        ("length past the end", vec![0x0a, 0x10, 0x01], Code::Internal, "failed to decode"),
        ("wrong wire type for intent", vec![0x08, 0x01], Code::Internal, "failed to decode"),
        ("field number zero", vec![0x00], Code::Internal, "failed to decode"),
        ("intent_id not UTF-8", vec![0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe], Code::Internal, "failed to decode"),
        (
            "ten-byte varint overflow",
            [vec![0x0a], vec![0xff; 10], vec![0x01]].concat(),
            Code::Internal,
            "failed to decode",
        ),
        ("random bytes", random, Code::Internal, "failed to decode"),
        ("empty body", vec![], Code::InvalidArgument, "intent"),
        ("only an unknown field", vec![0xf8, 0x7f, 0x01], Code::InvalidArgument, "intent"),
        ("empty intent", vec![0x0a, 0x00], Code::InvalidArgument, "intent."),
    ];
    for (case, body, code, message) in corpus {
        let mut grpc = tonic::client::Grpc::new(server.channel.clone());
        grpc.ready().await.expect("ready");
        let mut request = tonic::Request::new(body);
        request.metadata_mut().insert("authorization", key.0.clone());
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/ventana.v1.ContactSchedulerService/Submit");
        let status = grpc.unary(request, path, RawCodec).await.expect_err(case);
        assert_eq!(status.code(), code, "{case}: {status:?}");
        assert!(status.message().contains(message), "{case}: {status:?}");
    }
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("after-noise", "d", pb::Channel::Sms, "PE")).await;
    server.stop().await;
}
on_both_backends!(malformed_wire_requests_get_a_status_and_harm_nothing);

/// A call that panics inside its group when told to, and otherwise returns a
/// row without touching the database.
#[derive(Clone)]
struct Faulty(bool);

impl ventana::app::group_commit::Grouped for Faulty {
    fn run_all(
        _app: &ventana::app::App,
        calls: &[Self],
    ) -> impl std::future::Future<
        Output = ventana::app::AppResult<Vec<ventana::app::AppResult<ventana::store::IntentRow>>>,
    > + Send {
        let panics = calls.iter().any(|call| call.0);
        let rows: Vec<_> = calls.iter().map(|_| Ok(test_intent_row())).collect();
        async move {
            assert!(!panics, "a fault inside a group");
            Ok(rows)
        }
    }
}

fn test_intent_row() -> ventana::store::IntentRow {
    ventana::store::IntentRow {
        tenant: "acme".into(),
        intent_id: "i-1".into(),
        debtor_id: "d-1".into(),
        debt_id: None,
        channel: ventana::domain::Channel::Sms,
        jurisdiction: "PE".into(),
        priority: 0,
        body: "{}".into(),
        body_hash: String::new(),
        status: ventana::domain::IntentStatus::Released,
        next_eval_at: None,
        decision: "{}".into(),
        dispatch_id: None,
        attempt: 0,
        outcome: None,
        created_at: 0,
        updated_at: 0,
    }
}

async fn a_group_that_panics_fails_its_calls_and_the_queue_goes_on(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let queue = ventana::app::group_commit::GroupQueue::start(server.app());
    let failed = queue.run(Faulty(true)).await;
    assert!(
        matches!(&failed, Err(ventana::app::AppError::Internal(m)) if m.contains("retry")),
        "the panicking call gets an internal error: {failed:?}"
    );
    let status = tonic::Status::from(ventana::api::error::ApiError::App(failed.expect_err("failed")));
    assert_eq!(status.code(), Code::Internal);
    for _ in 0..3 {
        assert!(queue.run(Faulty(false)).await.is_ok(), "the writer still runs groups after a panic");
    }
}
on_both_backends!(a_group_that_panics_fails_its_calls_and_the_queue_goes_on);
