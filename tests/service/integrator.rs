//! Regressions for what an integrator found: timestamps outside the
//! protobuf range, one unreadable row stalling everyone, a caller's zone
//! replacing the law's, stale preferences undoing opt-outs, `not_after`
//! past expiry, identifiers PostgreSQL cannot store, and cancels that
//! skipped leased intents. Every case runs on both backends.

use std::time::Duration;

use tonic::Code;
use ventana::api::pb;

use crate::on_both_backends;
use crate::support::server::*;

/// Runs `sql` on the server's database behind its back (damage, faults).
async fn behind_its_back(server: &TestServer, sql: &str) {
    server.store().execute_unchecked(sql).await.expect("statement behind the service's back");
}

fn seconds(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn code_and_message(status: &tonic::Status) -> (Code, &str) {
    (status.code(), status.message())
}

// ------------------------------------------------------------------ 1. timestamps

async fn timestamps_outside_the_protobuf_range_are_refused(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-30T06:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let past_9999 = 253_402_300_800 + 34_560_000;
    let cases: Vec<(&str, pb::Intent)> = vec![
        ("intent.expires_at", {
            let mut i = intent("t-1", "d-1", pb::Channel::Call, "PE");
            i.not_before = Some(ts("2026-11-30T07:00:00-05:00"));
            i.expires_at = Some(seconds(past_9999));
            i
        }),
        ("intent.not_before", {
            let mut i = intent("t-2", "d-1", pb::Channel::Call, "PE");
            i.not_before = Some(seconds(-1_000_000_000_000));
            i
        }),
        ("intent.not_before", {
            let mut i = intent("t-3", "d-1", pb::Channel::Call, "PE");
            i.not_before = Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: -1 });
            i
        }),
    ];
    for (field, bad) in cases {
        let refused = client.submit(pb::SubmitRequest { intent: Some(bad) }).await.expect_err("out of range");
        let (code, message) = code_and_message(&refused);
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.starts_with(field) && message.contains("protobuf Timestamp range"), "{message}");
    }
    let explain = pb::ExplainRequest {
        intent: Some(intent("t-4", "d-1", pb::Channel::Call, "PE")),
        at: Some(seconds(past_9999)),
    };
    let refused = client.explain(explain).await.expect_err("explain at out of range");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("at:"), "{}", refused.message());
    let preferences = pb::SetPreferencesRequest {
        debtor_id: "d-1".into(),
        opt_out_all: Some(true),
        source: "ivr".into(),
        at: Some(seconds(-62_135_596_801)),
        ..Default::default()
    };
    let refused = client.set_preferences(preferences).await.expect_err("preferences at out of range");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut adapter = server.dispatcher("acme").await;
    for duration in
        [prost_types::Duration { seconds: 60, nanos: -5 }, prost_types::Duration { seconds: 315_576_000_001, nanos: 0 }]
    {
        let request =
            pb::LeaseRequest { channels: vec![pb::Channel::Call as i32], max_items: 1, lease_duration: Some(duration) };
        let refused = adapter.lease(request).await.expect_err("bad duration");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().starts_with("lease_duration:"), "{}", refused.message());
    }
    // Nothing was stored.
    let missing = client.get(pb::GetRequest { intent_id: "t-1".into() }).await.expect_err("not stored");
    assert_eq!(missing.code(), Code::NotFound);
    server.stop().await;
}
on_both_backends!(timestamps_outside_the_protobuf_range_are_refused);

async fn an_unreadable_row_holds_only_its_own_intent(backend: Backend) {
    // Monday 06:00 in Lima: calls are due at 07:00.
    let server = TestServer::start(backend, "2026-11-30T06:00:00-05:00").await;
    let mut acme = server.scheduler("acme").await;
    let mut globex = server.scheduler("globex").await;
    submit(&mut acme, intent("broken", "d-1", pb::Channel::Call, "PE")).await;
    submit(&mut acme, intent("fine", "d-2", pb::Channel::Call, "PE")).await;
    submit(&mut globex, intent("theirs", "d-1", pb::Channel::Call, "PE")).await;
    // What an out-of-range instant stored by an older version looked like.
    behind_its_back(
        &server,
        "UPDATE intents SET body = '{\"intent\": {\"not_before\": \"+10000-01-01T00:00:00Z\"}}' \
         WHERE intent_id = 'broken'",
    )
    .await;

    server.set_clock("2026-11-30T07:00:00-05:00");
    // The other tenant's intent and the same tenant's other intent go out.
    server.wait_for_status(&mut globex, "theirs", pb::IntentStatus::Released).await;
    server.wait_for_status(&mut acme, "fine", pb::IntentStatus::Released).await;
    let held = server.wait_for_status(&mut acme, "broken", pb::IntentStatus::Held).await;
    let decision = held.decision.as_ref().expect("decision");
    assert_eq!(decision.kind, pb::DecisionKind::Hold as i32);
    assert!(decision.reasons[0].message.contains("stored intent is unreadable"), "{decision:?}");
    assert!(held.intent.is_none(), "an unreadable body is not shown as an intent");
    let (_, _, held_now) = server.store().queue_depth(0).await.expect("depth");
    assert_eq!(held_now, 1, "the held gauge counts it");
    assert!(ventana::telemetry::prometheus().render().contains("ventana_intents_held_total"));

    // A released contact whose row is damaged is held at lease time; the lease still serves the rest.
    submit(&mut acme, intent("released-then-broken", "d-3", pb::Channel::Call, "PE")).await;
    behind_its_back(&server, "UPDATE intents SET body = 'not json' WHERE intent_id = 'released-then-broken'").await;
    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Call as i32], 10).await;
    let ids = intent_ids(&leased.items);
    assert_eq!(ids, vec!["fine"]);
    server.wait_for_status(&mut acme, "released-then-broken", pb::IntentStatus::Held).await;

    // An operator (or the caller) can cancel a held intent; replay reports it instead of aborting.
    let cancelled = acme
        .cancel(pb::CancelRequest { intent_id: "broken".into(), reason: "damaged row".into() })
        .await
        .expect("cancel a held intent")
        .into_inner()
        .intent
        .expect("the intent");
    assert_eq!(cancelled.status, pb::IntentStatus::Cancelled as i32);
    let (replayed, differences) = ventana::app::audit::replay(
        server.store(),
        "acme",
        at("2026-11-30T00:00:00Z"),
        at("2026-12-01T00:00:00Z"),
        None,
    )
    .await
    .expect("replay goes on past an unreadable intent");
    assert!(replayed >= 1);
    assert!(
        differences.iter().any(|d| d.intent_id == "broken" && d.now.starts_with("cannot replay")),
        "{differences:?}"
    );
    server.stop().await;
}
on_both_backends!(an_unreadable_row_holds_only_its_own_intent);

async fn a_stalled_scheduler_is_reported_not_ready(backend: Backend) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let server = TestServer::start(backend, "2026-11-30T06:00:00-05:00").await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let check = |service: &str| tonic_health::pb::HealthCheckRequest { service: service.into() };
    let mut wait_for = async |wanted: ServingStatus| {
        for _ in 0..300 {
            if let Ok(answer) = health.check(check(ventana::scheduler::READINESS_SERVICE)).await
                && answer.into_inner().status == wanted as i32
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the scheduler never became {wanted:?}");
    };
    wait_for(ServingStatus::Serving).await;
    // Every round now fails: the scheduler cannot make progress.
    behind_its_back(&server, "ALTER TABLE intents RENAME TO intents_away").await;
    server.set_clock("2026-11-30T06:00:01-05:00");
    server.running.as_ref().expect("running").app.wakeup.notify_one();
    wait_for(ServingStatus::NotServing).await;
    behind_its_back(&server, "ALTER TABLE intents_away RENAME TO intents").await;
    wait_for(ServingStatus::Serving).await;
    server.stop().await;
}
on_both_backends!(a_stalled_scheduler_is_reported_not_ready);

// ------------------------------------------------------------------ 2. zones

async fn a_foreign_zone_cannot_replace_the_laws_zones(backend: Backend) {
    // Monday 04:07 in Lima, 09:07 UTC.
    let server = TestServer::start(backend, "2026-11-30T04:07:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut utc = intent("pe-utc", "d-1", pb::Channel::Call, "PE");
    utc.time_zones = vec!["UTC".into()];
    let answer = submit(&mut client, utc).await;
    assert_eq!(answer.status, pb::IntentStatus::Deferred as i32, "04:07 in Lima is outside Peru's hours");
    let decision = answer.decision.as_ref().expect("decision");
    assert_eq!(decision.at, Some(ts("2026-11-30T07:00:00-05:00")));
    assert!(decision.reasons[0].message.contains("UTC is not a time zone of PE"), "{:?}", decision.reasons);
    assert!(decision.reasons[0].message.contains("America/Lima"), "{:?}", decision.reasons);
    server.stop().await;

    // Tuesday 21:30 in Tijuana, 00:30 Wednesday in Cancún: a zone of Mexico stands in for the list.
    let server = TestServer::start(backend, "2026-11-25T21:30:00-08:00").await;
    let mut client = server.scheduler("acme").await;
    let mut tijuana = intent("mx-tij", "d-1", pb::Channel::Call, "MX");
    tijuana.time_zones = vec!["America/Tijuana".into()];
    assert_eq!(submit(&mut client, tijuana).await.status, pb::IntentStatus::Released as i32);
    let mut foreign = intent("mx-foreign", "d-2", pb::Channel::Call, "MX");
    foreign.time_zones = vec!["America/Tijuana".into(), "America/Los_Angeles".into()];
    let answer = submit(&mut client, foreign).await;
    assert_eq!(answer.status, pb::IntentStatus::Deferred as i32, "every Mexican zone binds with a foreign one");
    let reasons = &answer.decision.as_ref().expect("decision").reasons;
    assert!(reasons[0].message.contains("America/Los_Angeles is not a time zone of MX"), "{reasons:?}");
    server.stop().await;
}
on_both_backends!(a_foreign_zone_cannot_replace_the_laws_zones);

// ------------------------------------------------------------------ 3. preferences

fn statement(debtor: &str, at_text: &str) -> pb::SetPreferencesRequest {
    pb::SetPreferencesRequest {
        debtor_id: debtor.into(),
        source: "ivr".into(),
        at: Some(ts(at_text)),
        ..Default::default()
    }
}

async fn stale_preferences_never_undo_a_newer_opt_out(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let out = pb::SetPreferencesRequest { opt_out_all: Some(true), ..statement("d-1", "2026-11-30T09:59:00-05:00") };
    assert!(
        client
            .set_preferences(out)
            .await
            .expect("opt out")
            .into_inner()
            .preferences
            .expect("the preferences")
            .opted_out_all
    );
    let stale = pb::SetPreferencesRequest { opt_out_all: Some(false), ..statement("d-1", "2020-01-01T00:00:00Z") };
    let answer = client
        .set_preferences(stale)
        .await
        .expect("stale statement")
        .into_inner()
        .preferences
        .expect("the preferences");
    assert!(answer.opted_out_all, "a 2020 statement must not lift a 2026 opt-out");
    assert_eq!(answer.superseded.len(), 1, "{:?}", answer.superseded);
    assert_eq!(answer.source, "ivr", "the source comes back as given");
    let refused = submit(&mut client, intent("after-stale", "d-1", pb::Channel::Sms, "PE")).await;
    assert_eq!(refused.decision.as_ref().map(|d| d.code), Some(pb::RejectCode::OptedOut as i32));

    // Partial updates merge: a second channel's opt-out keeps the first.
    let sms = pb::SetPreferencesRequest {
        opt_out_channels: vec![pb::Channel::Sms as i32],
        ..statement("d-2", "2026-11-30T09:00:00-05:00")
    };
    client.set_preferences(sms).await.expect("sms");
    let call = pb::SetPreferencesRequest {
        opt_out_channels: vec![pb::Channel::Call as i32],
        ..statement("d-2", "2026-11-30T09:01:00-05:00")
    };
    let both = client.set_preferences(call).await.expect("call").into_inner().preferences.expect("the preferences");
    assert_eq!(both.opted_out_channels, vec![pb::Channel::Call as i32, pb::Channel::Sms as i32]);
    // Opting back in takes an explicit, newer statement.
    let back_in = pb::SetPreferencesRequest {
        opt_in_channels: vec![pb::Channel::Sms as i32],
        ..statement("d-2", "2026-11-30T09:30:00-05:00")
    };
    let now = client.set_preferences(back_in).await.expect("opt in").into_inner().preferences.expect("the preferences");
    assert_eq!(now.opted_out_channels, vec![pb::Channel::Call as i32]);
    let sent = submit(&mut client, intent("sms-again", "d-2", pb::Channel::Sms, "PE")).await;
    assert_eq!(sent.status, pb::IntentStatus::Released as i32);

    // A statement dated in the future, or one that says nothing, is refused.
    let future = pb::SetPreferencesRequest { opt_out_all: Some(true), ..statement("d-3", "2026-12-30T00:00:00Z") };
    assert_eq!(client.set_preferences(future).await.expect_err("future").code(), Code::InvalidArgument);
    let empty = statement("d-3", "2026-11-30T09:00:00-05:00");
    assert_eq!(client.set_preferences(empty).await.expect_err("empty").code(), Code::InvalidArgument);
    server.stop().await;
}
on_both_backends!(stale_preferences_never_undo_a_newer_opt_out);

async fn damaged_preferences_fail_closed(backend: Backend) {
    // Saturday in Lima: calls wait for Monday.
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("waiting", "d-1", pb::Channel::Call, "PE")).await;
    let out = pb::SetPreferencesRequest { opt_out_all: Some(true), ..statement("d-1", "2026-11-28T09:00:00-05:00") };
    client.set_preferences(out).await.expect("opt out");
    server.wait_for_status(&mut client, "waiting", pb::IntentStatus::Rejected).await;
    submit(&mut client, intent("deferred", "d-2", pb::Channel::Call, "PE")).await;
    let out = pb::SetPreferencesRequest { opt_out_all: Some(true), ..statement("d-2", "2026-11-28T09:00:00-05:00") };
    client.set_preferences(out).await.expect("opt out");
    server.wait_for_status(&mut client, "deferred", pb::IntentStatus::Rejected).await;
    // The stored record is damaged behind the service's back.
    behind_its_back(&server, "UPDATE preferences SET prefs = '{\"all\": \"yes\"}'").await;
    let refused = client
        .submit(pb::SubmitRequest { intent: Some(intent("new", "d-1", pb::Channel::Call, "PE")) })
        .await
        .expect_err("no decision on unreadable preferences");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("preferences"), "{}", refused.message());
    // A deferred intent of that debtor submitted before the damage is held at its wake-up, not released.
    behind_its_back(
        &server,
        "UPDATE preferences SET prefs = '{\"opted_out_all\":false,\"opted_out\":[],\"chosen\":[],\"wrong_party\":[]}' \
         WHERE debtor_id = 'd-2'",
    )
    .await;
    submit(&mut client, intent("monday", "d-2", pb::Channel::Call, "PE")).await;
    behind_its_back(&server, "UPDATE preferences SET prefs = 'garbage' WHERE debtor_id = 'd-2'").await;
    server.set_clock("2026-11-30T07:00:00-05:00");
    server.wait_for_status(&mut client, "monday", pb::IntentStatus::Held).await;
    // And a statement cannot overwrite a record it cannot read.
    let more = pb::SetPreferencesRequest {
        opt_out_channels: vec![pb::Channel::Sms as i32],
        ..statement("d-2", "2026-11-30T06:00:00-05:00")
    };
    assert_eq!(client.set_preferences(more).await.expect_err("damaged record").code(), Code::FailedPrecondition);
    server.stop().await;
}
on_both_backends!(damaged_preferences_fail_closed);

async fn an_opt_out_on_unreadable_preferences_records_nothing_until_repaired(backend: Backend) {
    // Monday 10:00 in Lima: calls go out.
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    assert_eq!(
        submit(&mut client, intent("first", "d-1", pb::Channel::Call, "PE")).await.status,
        pb::IntentStatus::Released as i32
    );
    let chosen = pb::SetPreferencesRequest {
        opt_out_channels: vec![pb::Channel::Sms as i32],
        ..statement("d-1", "2026-11-30T09:00:00-05:00")
    };
    client.set_preferences(chosen).await.expect("preferences");
    let mut adapter = server.dispatcher("acme").await;
    let dispatch_id = lease(&mut adapter, vec![pb::Channel::Call as i32], 1).await.items[0].dispatch_id.clone();
    behind_its_back(&server, "UPDATE preferences SET prefs = 'garbage' WHERE debtor_id = 'd-1'").await;
    let report = pb::AckRequest { dispatch_id, outcome: pb::Outcome::OptedOut as i32, at: None, detail: String::new() };
    let refused = adapter.ack(report.clone()).await.expect_err("the opt-out cannot be recorded");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("the report was not recorded"), "{}", refused.message());
    // Nothing of the report was kept: the adapter's retry after the repair records all of it.
    assert_eq!(get(&mut client, "first").await.status, pb::IntentStatus::Leased as i32);
    behind_its_back(
        &server,
        "UPDATE preferences SET prefs = '{\"opted_out_all\":false,\"opted_out\":[],\"chosen\":[],\"wrong_party\":[]}' \
         WHERE debtor_id = 'd-1'",
    )
    .await;
    adapter.ack(report).await.expect("the retry after the repair");
    assert_eq!(get(&mut client, "first").await.status, pb::IntentStatus::Done as i32);
    let next = submit(&mut client, intent("second", "d-1", pb::Channel::Call, "PE")).await;
    assert_eq!(next.status, pb::IntentStatus::Rejected as i32, "the debtor opted out of calls");
    server.stop().await;
}
on_both_backends!(an_opt_out_on_unreadable_preferences_records_nothing_until_repaired);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_preferences_row_holds_only_its_debtors_intent() {
    // SQLite stores what a column's type refuses to decode (PostgreSQL cannot):
    // here a text instant. Reading it ahead for a round must not fail the round
    // (every tenant's wake-ups with it): the one intent that needs it is held.
    let server = TestServer::start(Backend::Sqlite, "2026-11-28T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("damaged-preferences", "d-1", pb::Channel::Call, "PE")).await;
    submit(&mut client, intent("healthy", "d-2", pb::Channel::Call, "PE")).await;
    let chosen = pb::SetPreferencesRequest {
        opt_out_channels: vec![pb::Channel::Sms as i32],
        ..statement("d-1", "2026-11-28T09:00:00-05:00")
    };
    client.set_preferences(chosen).await.expect("preferences");
    behind_its_back(&server, "UPDATE preferences SET updated_at = 'yesterday' WHERE debtor_id = 'd-1'").await;
    server.set_clock("2026-11-30T07:00:00-05:00");
    server.wait_for_status(&mut client, "healthy", pb::IntentStatus::Released).await;
    let held = server.wait_for_status(&mut client, "damaged-preferences", pb::IntentStatus::Held).await;
    let reason = &held.decision.as_ref().expect("decision").reasons[0].message;
    assert!(reason.contains("preferences row cannot be read"), "{reason}");
    server.stop().await;
}

// ------------------------------------------------------------------ 4. expiry

async fn not_after_is_never_after_expiry(backend: Backend) {
    // Monday 10:00 in Lima: calls are allowed until 20:00.
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut short = intent("short", "d-1", pb::Channel::Call, "PE");
    short.expires_at = Some(ts("2026-11-30T12:00:00-05:00"));
    let answer = submit(&mut client, short).await;
    assert_eq!(answer.status, pb::IntentStatus::Released as i32);
    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Call as i32], 10).await;
    assert_eq!(leased.items[0].not_after, Some(ts("2026-11-30T12:00:00-05:00")));

    let mut reversed = intent("reversed", "d-2", pb::Channel::Call, "PE");
    reversed.not_before = Some(ts("2026-12-02T10:00:00-05:00"));
    reversed.expires_at = Some(ts("2026-12-01T10:00:00-05:00"));
    let refused = client.submit(pb::SubmitRequest { intent: Some(reversed) }).await.expect_err("reversed");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("intent.expires_at:"), "{}", refused.message());
    server.stop().await;
}
on_both_backends!(not_after_is_never_after_expiry);

// ------------------------------------------------------------------ 5. identifiers

async fn identifiers_are_one_thing_on_both_backends(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let refused = [
        ("intent.intent_id", intent("nul\0id", "d-1", pb::Channel::Sms, "PE")),
        ("intent.debtor_id", intent("ok-1", "d\u{0}1", pb::Channel::Sms, "PE")),
        ("intent.debtor_id", intent("ok-2", " d-1", pb::Channel::Sms, "PE")),
        ("intent.intent_id", intent("   ", "d-1", pb::Channel::Sms, "PE")),
        ("intent.intent_id", intent(&"é".repeat(257), "d-1", pb::Channel::Sms, "PE")),
    ];
    for (field, bad) in refused {
        let status = client.submit(pb::SubmitRequest { intent: Some(bad) }).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    // 256 characters are accepted although they take 512 bytes.
    let long = submit(&mut client, intent(&"é".repeat(256), "d-1", pb::Channel::Sms, "PE")).await;
    assert_eq!(long.status, pb::IntentStatus::Released as i32);
    let nul_source = pb::SetPreferencesRequest {
        opt_out_all: Some(true),
        source: "ivr\0".into(),
        ..statement("d-1", "2026-11-30T09:00:00-05:00")
    };
    assert_eq!(client.set_preferences(nul_source).await.expect_err("nul").code(), Code::InvalidArgument);
    let nul_reason = pb::CancelRequest { intent_id: "whatever".into(), reason: "paid\0".into() };
    assert_eq!(client.cancel(nul_reason).await.expect_err("nul").code(), Code::InvalidArgument);
    server.stop().await;
}
on_both_backends!(identifiers_are_one_thing_on_both_backends);

// ------------------------------------------------------------------ 9. cancel in flight

async fn cancels_reach_leased_intents(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    for id in ["leased-1", "leased-2", "pending"] {
        let mut i = intent(id, "d-1", pb::Channel::Sms, "PE");
        if id == "pending" {
            i.not_before = Some(ts("2026-11-30T15:00:00-05:00"));
        }
        submit(&mut client, i).await;
    }
    let mut adapter = server.dispatcher("acme").await;
    let short = prost_types::Duration { seconds: 30, nanos: 0 };
    let request =
        pb::LeaseRequest { channels: vec![pb::Channel::Sms as i32], max_items: 10, lease_duration: Some(short) };
    let leased = adapter.lease(request.clone()).await.expect("lease").into_inner();
    assert_eq!(leased.items.len(), 2);

    let by_id = client
        .cancel(pb::CancelRequest { intent_id: "leased-1".into(), reason: "paid".into() })
        .await
        .expect("cancel a leased intent")
        .into_inner()
        .intent
        .expect("the intent");
    assert_eq!(by_id.status, pb::IntentStatus::Cancelled as i32);
    assert!(by_id.cancelled_in_flight);
    let debt = client
        .cancel_for_debt(pb::CancelForDebtRequest {
            debtor_id: "d-1".into(),
            debt_id: "debt-1".into(),
            reason: "paid".into(),
        })
        .await
        .expect("cancel for debt")
        .into_inner();
    assert_eq!(debt.cancelled_intent_ids, vec!["leased-2".to_string(), "pending".to_string()]);
    assert_eq!(debt.in_flight_intent_ids, vec!["leased-2".to_string()]);

    // The adapter learns it at Ack; the outcome is still recorded.
    let first = leased.items.iter().find(|i| i.intent.as_ref().is_some_and(|i| i.intent_id == "leased-1"));
    let ack = pb::AckRequest {
        dispatch_id: first.expect("leased-1").dispatch_id.clone(),
        outcome: pb::Outcome::Delivered as i32,
        at: None,
        detail: "provider message 42".into(),
    };
    let answer = adapter.ack(ack.clone()).await.expect("ack").into_inner();
    assert!(answer.cancelled);
    assert_eq!(answer.status, pb::IntentStatus::Cancelled as i32);
    assert!(adapter.ack(ack.clone()).await.expect("same ack again").into_inner().cancelled);
    // The adapter's detail is kept in the audit event, not dropped.
    let auditor = server.key("acme", &[ventana::api::auth::Role::Auditor]).await;
    let mut audit = pb::audit_service_client::AuditServiceClient::with_interceptor(server.channel.clone(), auditor);
    let mut stream = audit.export(pb::ExportRequest::default()).await.expect("export").into_inner();
    let mut acked = Vec::new();
    while let Some(pb::ExportResponse { event: Some(event), .. }) = stream.message().await.expect("event") {
        if event.event == pb::AuditEventKind::Acked as i32 {
            acked.push(event.detail);
        }
    }
    assert!(acked.iter().any(|d| d.contains("provider message 42")), "{acked:?}");
    let bad = pb::AckRequest { detail: "nul\0".into(), ..ack.clone() };
    assert_eq!(adapter.ack(bad).await.expect_err("control character").code(), Code::InvalidArgument);
    // The unacknowledged one is not offered again when its lease expires.
    server.set_clock("2026-11-30T10:05:00-05:00");
    let again = adapter.lease(request).await.expect("lease").into_inner();
    assert!(again.items.is_empty(), "{again:?}");
    server.stop().await;
}
on_both_backends!(cancels_reach_leased_intents);

// ------------------------------------------------------------------ asked for: listing

async fn a_debtors_intents_are_listed_a_page_at_a_time(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await; // Saturday: calls wait
    let mut acme = server.scheduler("acme").await;
    let mut globex = server.scheduler("globex").await;
    for n in 0..5 {
        submit(&mut acme, intent(&format!("a-{n}"), "d-1", pb::Channel::Call, "PE")).await;
        server.set_clock(&format!("2026-11-28T10:00:0{}-05:00", n + 1));
    }
    submit(&mut acme, intent("other-debtor", "d-2", pb::Channel::Call, "PE")).await;
    submit(&mut globex, intent("theirs", "d-1", pb::Channel::Call, "PE")).await;
    behind_its_back(&server, "UPDATE intents SET body = 'x', status = 'held' WHERE intent_id = 'a-3'").await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListIntentsRequest {
            debtor_id: "d-1".into(),
            page_size: 2,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = acme.list_intents(request).await.expect("list").into_inner();
        assert!(page.intents.len() <= 2);
        seen.extend(page.intents.iter().map(|v| match &v.intent {
            Some(i) => i.intent_id.clone(),
            None => format!("unreadable:{}", v.status),
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let held = format!("unreadable:{}", pb::IntentStatus::Held as i32);
    assert_eq!(seen, vec!["a-0", "a-1", "a-2", held.as_str(), "a-4"], "in creation order, this tenant only");

    let request = pb::ListIntentsRequest { status: pb::IntentStatus::Held as i32, ..Default::default() };
    let held_only = acme.list_intents(request).await.expect("held").into_inner();
    assert_eq!(held_only.intents.len(), 1);
    assert_eq!(held_only.intents[0].status, pb::IntentStatus::Held as i32);
    let bad = pb::ListIntentsRequest { page_token: "nonsense".into(), ..Default::default() };
    assert_eq!(acme.list_intents(bad).await.expect_err("bad token").code(), Code::InvalidArgument);
    let too_big = pb::ListIntentsRequest { page_size: 501, ..Default::default() };
    assert_eq!(acme.list_intents(too_big).await.expect_err("too big").code(), Code::InvalidArgument);
    server.stop().await;
}
on_both_backends!(a_debtors_intents_are_listed_a_page_at_a_time);

async fn every_kind_of_damaged_row_fails_closed(backend: Backend) {
    // Saturday in Lima: calls wait for Monday 07:00.
    let server = TestServer::start(backend, "2026-11-28T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("damaged-history", "d-1", pb::Channel::Call, "PE")).await;
    submit(&mut client, intent("healthy", "d-2", pb::Channel::Call, "PE")).await;
    // A contact event whose channel no longer parses: skipping it would under-count a cap.
    // The schema refuses it; it gets in only past the constraints (a restore from elsewhere, a repair gone wrong).
    let fax = "INSERT INTO contact_events (tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id) \
               VALUES ('acme', 'd-1', NULL, 'fax', 1764339000000, 'attempted', NULL)";
    past_the_constraints(&server, "contact_events", "contact_events_channel_known", fax).await;
    let refused = client
        .submit(pb::SubmitRequest { intent: Some(intent("new", "d-1", pb::Channel::Call, "PE")) })
        .await
        .expect_err("no decision on an unreadable history");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("table contact_events, row (acme, d-1)"), "{}", refused.message());

    server.set_clock("2026-11-30T07:00:00-05:00");
    server.wait_for_status(&mut client, "healthy", pb::IntentStatus::Released).await;
    let held = server.wait_for_status(&mut client, "damaged-history", pb::IntentStatus::Held).await;
    let reason = &held.decision.as_ref().expect("decision").reasons[0].message;
    assert!(reason.contains("contact_events row cannot be read") && reason.contains("fax"), "{reason}");
    assert!(
        ventana::telemetry::prometheus().render().contains("ventana_unreadable_rows_total{table=\"contact_events\"}"),
        "counted by table"
    );

    // A stored decision that does not parse is an error naming the row, not DECISION_KIND_UNSPECIFIED.
    behind_its_back(&server, "UPDATE intents SET decision = '{}' WHERE intent_id = 'healthy'").await;
    let unreadable = client.get(pb::GetRequest { intent_id: "healthy".into() }).await.expect_err("unreadable decision");
    assert_eq!(unreadable.code(), Code::FailedPrecondition);
    assert!(unreadable.message().contains("stored decision cannot be read"), "{}", unreadable.message());

    // A stored instant out of range is an error naming the row, not 1970.
    submit(&mut client, intent("late", "d-3", pb::Channel::Call, "PE")).await;
    behind_its_back(&server, "UPDATE intents SET updated_at = 9223372036854775807 WHERE intent_id = 'late'").await;
    let unreadable = client.get(pb::GetRequest { intent_id: "late".into() }).await.expect_err("unreadable instant");
    assert_eq!(unreadable.code(), Code::FailedPrecondition);
    assert!(unreadable.message().contains("table intents, row (acme, late)"), "{}", unreadable.message());
    server.stop().await;
}
on_both_backends!(every_kind_of_damaged_row_fails_closed);

/// The kinds of `intent_id`'s audit events, in order.
async fn kinds_of(server: &TestServer, intent_id: &str) -> Vec<String> {
    let events = audit_events(server, "acme").await;
    events.iter().filter(|e| e.intent_id == intent_id).map(event_kind).collect()
}

/// Runs `sql`, which the schema's CHECK `constraint` on `table` refuses,
/// past it: SQLite ignores CHECK constraints for the statement, PostgreSQL
/// drops the constraint. Asserts first that the schema does refuse it.
async fn past_the_constraints(server: &TestServer, table: &str, constraint: &str, sql: &str) {
    let refused = server.store().execute_unchecked(sql).await.expect_err("the schema refuses the word");
    assert!(refused.to_string().contains(constraint) || refused.to_string().contains("CHECK"), "{refused}");
    let bypass = match server.store().backend() {
        "sqlite" => format!("PRAGMA ignore_check_constraints = ON; {sql}; PRAGMA ignore_check_constraints = OFF"),
        _ => format!("ALTER TABLE {table} DROP CONSTRAINT {constraint}; {sql}"),
    };
    behind_its_back(server, &bypass).await;
}

async fn an_unreadable_intent_never_holds_the_head_of_the_lease_queue(backend: Backend) {
    // Monday 10:00 in Lima: two calls released a second apart; the first one's
    // intent row is then damaged (a channel word outside its set).
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("damaged", "d-1", pb::Channel::Call, "PE")).await;
    server.set_clock("2026-11-30T10:00:01-05:00");
    submit(&mut client, intent("healthy", "d-2", pb::Channel::Call, "PE")).await;
    let fax = "UPDATE intents SET channel = 'fax' WHERE intent_id = 'damaged'";
    past_the_constraints(&server, "intents", "intents_channel_known", fax).await;
    // An adapter taking one contact at a time: the damaged one, first in line,
    // is taken out of the queue, never sent; the healthy one then leaves.
    let mut adapter = server.dispatcher("acme").await;
    let mut leased = Vec::new();
    for _ in 0..2 {
        leased.extend(lease(&mut adapter, vec![pb::Channel::Call as i32], 1).await.items);
    }
    let ids = intent_ids(&leased);
    assert_eq!(ids, ["healthy"]);
    // Its intent is held (its row still cannot be read: the audit log says so).
    let damaged = kinds_of(&server, "damaged").await;
    assert_eq!(damaged[damaged.len() - 2..], ["withdrawn", "held"], "{damaged:?}");
    server.stop().await;
}
on_both_backends!(an_unreadable_intent_never_holds_the_head_of_the_lease_queue);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_whose_own_dispatch_id_cannot_be_read_is_still_held() {
    // SQLite: bytes where the intent's dispatch id should be text. The hold
    // by key cannot compare that column: it holds the intent all the same.
    let server = TestServer::start(Backend::Sqlite, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("damaged", "d-1", pb::Channel::Call, "PE")).await;
    behind_its_back(&server, "UPDATE intents SET dispatch_id = x'00ff' WHERE intent_id = 'damaged'").await;
    let mut adapter = server.dispatcher("acme").await;
    assert!(lease(&mut adapter, vec![pb::Channel::Call as i32], 5).await.items.is_empty());
    let damaged = kinds_of(&server, "damaged").await;
    assert_eq!(damaged[damaged.len() - 2..], ["withdrawn", "held"], "{damaged:?}");
    // Held, so no longer in the lease queue nor released.
    assert!(lease(&mut adapter, vec![pb::Channel::Call as i32], 5).await.items.is_empty());
    let released = pb::ListIntentsRequest { status: pb::IntentStatus::Released as i32, ..Default::default() };
    assert!(client.list_intents(released).await.expect("list").into_inner().intents.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_dispatch_row_is_taken_out_of_every_lease() {
    // SQLite stores what a column's type refuses to decode (PostgreSQL cannot,
    // and its leases select only words they ask for): here a text `not_after`.
    // Built-in adapters lease for every tenant: that one row must not fail
    // every lease of its channel.
    let server = TestServer::start(Backend::Sqlite, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("damaged", "d-1", pb::Channel::Call, "PE")).await;
    submit(&mut client, intent("healthy", "d-2", pb::Channel::Call, "PE")).await;
    let dispatch_id = get(&mut client, "damaged").await.dispatch_id;
    behind_its_back(&server, &format!("UPDATE dispatches SET not_after = 'soon' WHERE dispatch_id = '{dispatch_id}'"))
        .await;
    let mut adapter = server.dispatcher("acme").await;
    let leased = lease(&mut adapter, vec![pb::Channel::Call as i32], 5).await;
    let ids = intent_ids(&leased.items);
    assert_eq!(ids, ["healthy"]);
    // Taken out of the queue, never sent, and the next lease is not troubled by it.
    assert!(lease(&mut adapter, vec![pb::Channel::Call as i32], 5).await.items.is_empty());
    let withdrawn = audit_events(&server, "acme").await.into_iter().filter(|e| event_kind(e) == "withdrawn");
    let details: Vec<String> = withdrawn.map(|e| e.detail).collect();
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(details[0].contains(&dispatch_id) && details[0].contains("cannot be read"), "{details:?}");
    // Its intent is held, saying why.
    let held = get(&mut client, "damaged").await;
    assert_eq!(held.status, pb::IntentStatus::Held as i32);
    let reason = &held.decision.as_ref().expect("decision").reasons[0].message;
    assert!(reason.contains("dispatches row cannot be read"), "{reason}");
    server.stop().await;
}

async fn the_schema_refuses_words_outside_each_closed_set(backend: Backend) {
    use ventana::domain::{
        AckOutcome, AuditEventKind, Channel, ContactPointKind, DispatchState, Initiator, IntentStatus, Outcome,
    };
    let server = TestServer::start(backend, "2026-11-30T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    submit(&mut client, intent("i-1", "d-1", pb::Channel::Call, "PE")).await; // released: one row in each table
    let columns: [(&str, &str, Vec<&str>); 12] = [
        ("intents", "status", IntentStatus::ALL.iter().map(|s| s.as_str()).collect()),
        ("intents", "channel", Channel::ALL.iter().map(|c| c.as_str()).collect()),
        ("intents", "outcome", AckOutcome::ALL.iter().map(|o| o.as_str()).collect()),
        ("dispatches", "state", DispatchState::ALL.iter().map(|s| s.as_str()).collect()),
        ("dispatches", "channel", Channel::ALL.iter().map(|c| c.as_str()).collect()),
        ("contact_events", "channel", Channel::ALL.iter().map(|c| c.as_str()).collect()),
        ("contact_events", "outcome", Outcome::ALL.iter().map(|o| o.as_str()).collect()),
        ("contact_events", "contact_kind", ContactPointKind::ALL.iter().map(|k| k.as_str()).collect()),
        ("contact_events", "initiator", Initiator::ALL.iter().map(|i| i.as_str()).collect()),
        ("audit_log", "kind", AuditEventKind::ALL.iter().map(|k| k.as_str()).collect()),
        ("audit_log", "channel", Channel::ALL.iter().map(|c| c.as_str()).collect()),
        ("audit_log", "outcome", AckOutcome::ALL.iter().map(|o| o.as_str()).collect()),
    ];
    for (table, column, accepted) in columns {
        for word in accepted {
            let sql = format!("UPDATE {table} SET {column} = '{word}'");
            let changed = server.store().execute_unchecked(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(changed > 0, "{sql} changed no row: the test checks nothing");
        }
        for word in ["fax", "", "Deferred"] {
            let sql = format!("UPDATE {table} SET {column} = '{word}'");
            assert!(server.store().execute_unchecked(&sql).await.is_err(), "{sql} must be refused");
        }
    }
    server.stop().await;
}
on_both_backends!(the_schema_refuses_words_outside_each_closed_set);
