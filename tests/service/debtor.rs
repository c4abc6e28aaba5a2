//! The individual debtor over gRPC, on both backends: designations defer and
//! their revocation releases; Massachusetts' household visit limit; consent
//! and the debtor's own contacts in Regulation F's call count; the one
//! response; contact points refused; bad values named by field.

use tonic::Code;
use ventana::api::pb;
use ventana::app::audit as ops;

use crate::on_both_backends;
use crate::support::server::*;

fn decision(view: &pb::IntentView) -> &pb::Decision {
    view.decision.as_ref().expect("decision")
}

fn point(kind: pb::ContactPointKind) -> Option<pb::ContactPoint> {
    Some(pb::ContactPoint { kind: kind as i32, id: String::new() })
}

fn afternoons(channels: Vec<i32>) -> pb::Designation {
    let weekdays = [
        pb::DayOfWeek::Monday,
        pb::DayOfWeek::Tuesday,
        pb::DayOfWeek::Wednesday,
        pb::DayOfWeek::Thursday,
        pb::DayOfWeek::Friday,
    ];
    pb::Designation {
        id: "afternoons".into(),
        kind: Some(pb::designation::Kind::InconvenientTimes(pb::InconvenientTimes {
            days: weekdays.iter().map(|d| *d as i32).collect(),
            hours: vec!["15:00-17:00".into()],
        })),
        channels,
        ..Default::default()
    }
}

async fn set(client: &mut Scheduler, request: pb::SetPreferencesRequest) -> pb::Preferences {
    let request = pb::SetPreferencesRequest { debtor_id: "d-1".into(), source: "call centre".into(), ..request };
    client.set_preferences(request).await.expect("set preferences").into_inner().preferences.expect("preferences")
}

async fn record(client: &mut Scheduler, request: pb::RecordContactRequest) {
    let request = pb::RecordContactRequest { debtor_id: "d-1".into(), source: "inbox".into(), ..request };
    client.record_contact(request).await.expect("record contact");
}

async fn a_designated_window_defers_and_its_revocation_releases(backend: Backend) {
    // Wednesday 25 November 2026, 15:30 in New York.
    let server = TestServer::start(backend, "2026-11-25T15:30:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let shown =
        set(&mut client, pb::SetPreferencesRequest { designations: vec![afternoons(vec![])], ..Default::default() })
            .await;
    assert_eq!(shown.designations.len(), 1, "{shown:?}");
    assert_eq!(shown.designations[0].id, "afternoons");
    assert_eq!(shown.designations[0].source, "call centre");

    let deferred = submit(&mut client, intent("c-1", "d-1", pb::Channel::Call, "US-NY")).await;
    assert_eq!(deferred.status, pb::IntentStatus::Deferred as i32);
    let reasons = &deferred.decision.as_ref().expect("decision").reasons;
    assert_eq!(deferred.decision.as_ref().and_then(|d| d.at), Some(ts("2026-11-25T17:00:00-05:00")));
    let named = reasons.iter().find(|r| r.rule == "debtor:afternoons").expect("the designation is a reason");
    assert!(
        named.message.contains("the debtor designated mon, tue, wed, thu, fri 15:00–17:00 as inconvenient"),
        "{named:?}"
    );
    assert!(named.citation.contains("12 CFR 1006.6(b)(1)"), "{named:?}");
    assert_eq!(named.basis, "law");

    // The debtor takes it back: the waiting intent is decided again and goes now.
    server.set_clock("2026-11-25T15:40:00-05:00");
    let shown = set(
        &mut client,
        pb::SetPreferencesRequest { revoke_designations: vec!["afternoons".into()], ..Default::default() },
    )
    .await;
    assert!(shown.designations.is_empty(), "{shown:?}");
    let released = server.wait_for_status(&mut client, "c-1", pb::IntentStatus::Released).await;
    assert_eq!(decision(&released).kind, pb::DecisionKind::Release as i32);
    server.stop().await;
}
on_both_backends!(a_designated_window_defers_and_its_revocation_releases);

async fn a_massachusetts_household_visit_ten_days_later_waits_for_day_31(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-10T11:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    let visit = |id: &str| pb::Intent {
        contact_point: point(pb::ContactPointKind::HomeAddress),
        ..intent(id, "d-1", pb::Channel::Visit, "US-MA")
    };
    let first = submit(&mut client, visit("v-1")).await;
    assert_eq!(first.status, pb::IntentStatus::Released as i32);
    let leased = lease(&mut adapter, vec![pb::Channel::Visit as i32], 10).await;
    assert_eq!(leased.items.len(), 1);
    assert_eq!(
        leased.items[0].intent.as_ref().and_then(|i| i.contact_point.clone()),
        point(pb::ContactPointKind::HomeAddress),
        "the adapter is told where the contact goes"
    );
    ack(&mut adapter, &leased.items[0].dispatch_id, pb::Outcome::NoAnswer).await;

    server.set_clock("2026-11-20T11:00:00-05:00");
    let second = submit(&mut client, visit("v-2")).await;
    assert_eq!(second.status, pb::IntentStatus::Deferred as i32);
    let decided = second.decision.expect("decision");
    assert_eq!(decided.at, Some(ts("2026-12-10T08:00:00-05:00")), "day 31 after 10 November, first allowed minute");
    assert!(decided.reasons.iter().any(|r| r.rule == "us-ma-209cmr1817-6-one-visit-a-month"), "{decided:?}");
    // A visit to the workplace is not a household visit.
    let work = pb::Intent { contact_point: point(pb::ContactPointKind::WorkAddress), ..visit("v-3") };
    assert_eq!(submit(&mut client, work).await.status, pb::IntentStatus::Released as i32);
    server.stop().await;
}
on_both_backends!(a_massachusetts_household_visit_ten_days_later_waits_for_day_31);

async fn calls_with_prior_consent_and_the_debtors_own_calls_are_not_counted(backend: Backend) {
    // Wednesday 25 November 2026, 14:00 in New York; seven calls placed since Monday.
    let server = TestServer::start(backend, "2026-11-25T14:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let placed = [
        "2026-11-23T09:00:00-05:00",
        "2026-11-23T12:00:00-05:00",
        "2026-11-23T16:00:00-05:00",
        "2026-11-24T09:00:00-05:00",
        "2026-11-24T12:00:00-05:00",
        "2026-11-24T16:00:00-05:00",
        "2026-11-25T09:00:00-05:00",
    ];
    for at in placed {
        let request = pb::RecordContactRequest {
            debt_id: "debt-1".into(),
            channel: pb::Channel::Call as i32,
            initiator: pb::Initiator::Collector as i32,
            outcome: pb::Outcome::NoAnswer as i32,
            at: Some(ts(at)),
            ..Default::default()
        };
        record(&mut client, request).await;
    }
    // An inbound call from the debtor does not count toward the seven.
    let inbound = pb::RecordContactRequest {
        debt_id: "debt-1".into(),
        channel: pb::Channel::Call as i32,
        initiator: pb::Initiator::Debtor as i32,
        outcome: pb::Outcome::NoAnswer as i32,
        at: Some(ts("2026-11-25T11:00:00-05:00")),
        ..Default::default()
    };
    record(&mut client, inbound).await;

    let eighth = submit(&mut client, intent("c-8", "d-1", pb::Channel::Call, "US-NY")).await;
    assert_eq!(eighth.status, pb::IntentStatus::Deferred as i32);
    let decided = eighth.decision.expect("decision");
    assert_eq!(decided.at, Some(ts("2026-11-30T08:00:00-05:00")));
    let cap = decided.reasons.iter().find(|r| r.rule == "us-regf-1006.14b2i-seven-in-seven").expect("the cap");
    assert!(cap.message.contains("7 already counted"), "the inbound call must not be counted: {cap:?}");

    // The debtor consents to more calls: the waiting call is not counted and goes now.
    let consent = pb::Consent { id: "call-me".into(), channels: vec![pb::Channel::Call as i32], ..Default::default() };
    let shown = set(&mut client, pb::SetPreferencesRequest { consents: vec![consent], ..Default::default() }).await;
    assert_eq!(shown.consents.len(), 1);
    assert_eq!(shown.consents[0].from, Some(ts("2026-11-25T14:00:00-05:00")), "from defaults to the statement's date");
    server.wait_for_status(&mut client, "c-8", pb::IntentStatus::Released).await;

    // Revoked: the next call counts again.
    set(&mut client, pb::SetPreferencesRequest { revoke_consents: vec!["call-me".into()], ..Default::default() }).await;
    let ninth = submit(&mut client, intent("c-9", "d-1", pb::Channel::Call, "US-NY")).await;
    assert_eq!(ninth.status, pb::IntentStatus::Deferred as i32);

    // Every recorded contact is in the audit chain, which still verifies.
    let events = audit_events(&server, "acme").await;
    assert_eq!(events.iter().filter(|e| event_kind(e) == "contact_recorded").count(), 8);
    let reports = ops::verify(server.store(), Some("acme"), None).await.expect("verify");
    assert!(reports[0].broken.is_none(), "{:?}", reports[0].broken);
    server.stop().await;
}
on_both_backends!(calls_with_prior_consent_and_the_debtors_own_calls_are_not_counted);

async fn one_response_to_the_debtors_own_message_at_a_designated_time(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T15:20:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let mut adapter = server.dispatcher("acme").await;
    // Designated last week: the allowance answers a contact at a time designated before it.
    let designated = pb::SetPreferencesRequest {
        designations: vec![afternoons(vec![])],
        at: Some(ts("2026-11-18T12:00:00-05:00")),
        ..Default::default()
    };
    set(&mut client, designated).await;
    let inbound = pb::RecordContactRequest {
        channel: pb::Channel::Sms as i32,
        initiator: pb::Initiator::Debtor as i32,
        outcome: pb::Outcome::Delivered as i32,
        at: Some(ts("2026-11-25T15:10:00-05:00")),
        ..Default::default()
    };
    record(&mut client, inbound).await;
    let reply = submit(&mut client, intent("s-1", "d-1", pb::Channel::Sms, "US-NY")).await;
    assert_eq!(reply.status, pb::IntentStatus::Released as i32, "{reply:?}");
    let reasons = reply.decision.expect("decision").reasons;
    assert!(reasons.iter().any(|r| r.rule == "us-regf-comment-6b1-2-one-response"), "{reasons:?}");
    // The reply went out: a second text waits until the designated hours end.
    let leased = lease(&mut adapter, vec![pb::Channel::Sms as i32], 10).await;
    ack(&mut adapter, &leased.items[0].dispatch_id, pb::Outcome::Delivered).await;
    server.set_clock("2026-11-25T15:30:00-05:00");
    let second = submit(&mut client, intent("s-2", "d-1", pb::Channel::Sms, "US-NY")).await;
    assert_eq!(second.status, pb::IntentStatus::Deferred as i32);
    assert_eq!(second.decision.and_then(|d| d.at), Some(ts("2026-11-25T17:00:00-05:00")));
    server.stop().await;
}
on_both_backends!(one_response_to_the_debtors_own_message_at_a_designated_time);

async fn a_refused_contact_point_rejects_and_an_unnamed_one_is_refused_too(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let employer = pb::Designation {
        id: "employer".into(),
        kind: Some(pb::designation::Kind::InconvenientContactPoint(pb::ContactPoint {
            kind: pb::ContactPointKind::WorkPhone as i32,
            id: String::new(),
        })),
        ..Default::default()
    };
    set(&mut client, pb::SetPreferencesRequest { designations: vec![employer], ..Default::default() }).await;
    let work = pb::Intent {
        contact_point: point(pb::ContactPointKind::WorkPhone),
        ..intent("c-1", "d-1", pb::Channel::Call, "US-NY")
    };
    let unnamed = intent("c-2", "d-1", pb::Channel::Call, "US-NY");
    let mobile = pb::Intent {
        contact_point: point(pb::ContactPointKind::PersonalMobile),
        ..intent("c-3", "d-1", pb::Channel::Call, "US-NY")
    };
    for refused in [work, unnamed] {
        let answer = submit(&mut client, refused).await;
        assert_eq!(answer.status, pb::IntentStatus::Rejected as i32);
        assert_eq!(answer.decision.map(|d| d.code), Some(pb::RejectCode::ContactPointRefused as i32));
    }
    assert_eq!(submit(&mut client, mobile).await.status, pb::IntentStatus::Released as i32);
    server.stop().await;
}
on_both_backends!(a_refused_contact_point_rejects_and_an_unnamed_one_is_refused_too);

async fn bad_debtor_values_name_the_field(backend: Backend) {
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    let intents = [
        (
            pb::Intent {
                contact_point: Some(pb::ContactPoint { kind: 99, id: String::new() }),
                ..intent("a", "d", pb::Channel::Call, "US-NY")
            },
            "intent.contact_point.kind",
        ),
        (
            pb::Intent {
                contact_point: point(pb::ContactPointKind::Email),
                ..intent("a", "d", pb::Channel::Call, "US-NY")
            },
            "intent.contact_point.kind",
        ),
        (
            pb::Intent {
                contact_point: Some(pb::ContactPoint { kind: pb::ContactPointKind::WorkPhone as i32, id: " x".into() }),
                ..intent("a", "d", pb::Channel::Call, "US-NY")
            },
            "intent.contact_point.id",
        ),
    ];
    for (bad, field) in intents {
        let status = client.submit(pb::SubmitRequest { intent: Some(bad) }).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field} not named in {:?}", status.message());
    }
    let backwards = pb::Designation {
        kind: Some(pb::designation::Kind::InconvenientTimes(pb::InconvenientTimes {
            days: vec![pb::DayOfWeek::Monday as i32],
            hours: vec!["17:00-15:00".into()],
        })),
        ..afternoons(vec![])
    };
    let dates = pb::Designation {
        kind: Some(pb::designation::Kind::InconvenientDates(pb::InconvenientDates {
            first_date: "2026-12-04".into(),
            last_date: "2026-12-01".into(),
        })),
        ..afternoons(vec![])
    };
    let no_kind = pb::Designation { kind: None, ..afternoons(vec![]) };
    let preferences = [
        (
            pb::SetPreferencesRequest { designations: vec![backwards], ..Default::default() },
            "designations[0].inconvenient_times.hours[0]",
        ),
        (
            pb::SetPreferencesRequest { designations: vec![dates], ..Default::default() },
            "designations[0].inconvenient_dates.last_date",
        ),
        (pb::SetPreferencesRequest { designations: vec![no_kind], ..Default::default() }, "designations[0]"),
        (
            pb::SetPreferencesRequest {
                consents: vec![pb::Consent { id: "c".into(), ..Default::default() }],
                debtor_id: String::new(),
                ..Default::default()
            },
            "debtor_id",
        ),
        (
            pb::SetPreferencesRequest {
                consents: vec![pb::Consent {
                    id: "c".into(),
                    channels: vec![pb::Channel::Call as i32],
                    from: Some(ts("2026-11-25T10:00:00-05:00")),
                    until: Some(ts("2026-11-24T10:00:00-05:00")),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "consents[0].until",
        ),
        (
            pb::SetPreferencesRequest {
                consents: vec![pb::Consent { id: "c".into(), ..Default::default() }],
                ..Default::default()
            },
            "consents[0].channels",
        ),
        (
            pb::SetPreferencesRequest {
                consents: vec![pb::Consent {
                    id: "c".into(),
                    channels: vec![pb::Channel::Call as i32],
                    from: Some(ts("2026-11-01T10:00:00-05:00")),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "consents[0].from",
        ),
    ];
    for (bad, field) in preferences {
        let request = pb::SetPreferencesRequest {
            debtor_id: if field == "debtor_id" { String::new() } else { "d-1".into() },
            source: "ivr".into(),
            ..bad
        };
        let status = client.set_preferences(request).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field} not named in {:?}", status.message());
    }
    let contacts = [
        (pb::RecordContactRequest { initiator: 0, ..Default::default() }, "initiator"),
        (pb::RecordContactRequest { outcome: pb::Outcome::OptedOut as i32, ..Default::default() }, "outcome"),
        (pb::RecordContactRequest { at: Some(ts("2027-01-01T00:00:00Z")), ..Default::default() }, "at"),
    ];
    for (bad, field) in contacts {
        let request = pb::RecordContactRequest {
            debtor_id: "d-1".into(),
            source: "inbox".into(),
            channel: pb::Channel::Sms as i32,
            initiator: if field == "initiator" { 0 } else { pb::Initiator::Debtor as i32 },
            outcome: if field == "outcome" { bad.outcome } else { pb::Outcome::Delivered as i32 },
            at: bad.at,
            ..Default::default()
        };
        let status = client.record_contact(request).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field} not named in {:?}", status.message());
    }
    server.stop().await;
}
on_both_backends!(bad_debtor_values_name_the_field);

async fn massachusetts_other_numbers_and_regulation_f_days_over_recorded_contacts(backend: Backend) {
    // Wednesday 25 November 2026, 10:00 in Massachusetts.
    let server = TestServer::start(backend, "2026-11-25T10:00:00-05:00").await;
    let mut client = server.scheduler("acme").await;
    for at in ["2026-11-02T09:30:00-05:00", "2026-11-10T09:30:00-05:00"] {
        let placed = pb::RecordContactRequest {
            debt_id: "debt-1".into(),
            channel: pb::Channel::Call as i32,
            contact_point: point(pb::ContactPointKind::WorkPhone),
            initiator: pb::Initiator::Collector as i32,
            outcome: pb::Outcome::NoAnswer as i32,
            at: Some(ts(at)),
            ..Default::default()
        };
        record(&mut client, placed).await;
    }
    let to =
        |id: &str, kind| pb::Intent { contact_point: point(kind), ..intent(id, "d-1", pb::Channel::Call, "US-MA") };
    // Two calls to the work number in 30 days: a third waits for 2 December (2 November leaves the period).
    let work = submit(&mut client, to("w-3", pb::ContactPointKind::WorkPhone)).await;
    assert_eq!(work.status, pb::IntentStatus::Deferred as i32);
    let decided = work.decision.expect("decision");
    assert_eq!(decided.at, Some(ts("2026-12-02T08:00:00-05:00")));
    assert!(
        decided.reasons.iter().any(|r| r.rule == "us-ma-940cmr704-1f-two-other-number-contacts-a-month"),
        "{decided:?}"
    );
    // The personal mobile is not the work number: released.
    let mobile = submit(&mut client, to("m-1", pb::ContactPointKind::PersonalMobile)).await;
    assert_eq!(mobile.status, pb::IntentStatus::Released as i32, "{mobile:?}");

    // Regulation F counts days: after a conversation the debtor started on
    // Wednesday at 09:00 (day 1), the next call goes on Wednesday 2 December at 08:00.
    let conversation = pb::RecordContactRequest {
        debtor_id: "d-2".into(),
        debt_id: "debt-1".into(),
        channel: pb::Channel::Call as i32,
        initiator: pb::Initiator::Debtor as i32,
        outcome: pb::Outcome::Conversation as i32,
        at: Some(ts("2026-11-25T09:00:00-05:00")),
        source: "inbound line".into(),
        ..Default::default()
    };
    client.record_contact(conversation).await.expect("record");
    let next = submit(&mut client, intent("n-1", "d-2", pb::Channel::Call, "US-NY")).await;
    assert_eq!(next.status, pb::IntentStatus::Deferred as i32);
    assert_eq!(next.decision.and_then(|d| d.at), Some(ts("2026-12-02T08:00:00-05:00")));
    server.stop().await;
}
on_both_backends!(massachusetts_other_numbers_and_regulation_f_days_over_recorded_contacts);
