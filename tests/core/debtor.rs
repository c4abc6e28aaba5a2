//! The debtor as a rule layer, deterministic cases on the shipped rules:
//! designations only narrow and name themselves; an intent that does not
//! name its contact point gets the strictest rules that could apply.

use chrono::{DateTime, Utc};
use ventana::domain::{Channel, ContactEvent, Outcome};
use ventana::domain::{
    ContactPoint, ContactPointKind, DayOfWeek, Designated, Designation, Intent, Preferences, TimeRange,
};
use ventana::engine::{Decision, RejectCode, Verdict, evaluate};

use crate::decide::*;

fn designated(id: &str, designation: Designation) -> Designated {
    Designated::new(id.into(), designation, "ivr".into(), Some(at("2026-11-01T12:00:00Z")))
}

fn with(intent: &Intent, history: &[ContactEvent], designations: Vec<Designated>, now: DateTime<Utc>) -> Decision {
    let rules = book().resolve(&intent.tenant, &intent.jurisdiction).expect("resolves");
    evaluate(intent, &rules, history, &Preferences { designations, ..Preferences::default() }, now)
}

fn range(text: &str) -> TimeRange {
    TimeRange::parse(text).expect("range")
}

#[test]
fn the_debtors_word_only_narrows_and_names_itself() {
    let call = intent("PE", Channel::Call);
    // Waking hours wider than the law's 07:00–20:00 change nothing.
    let awake = designated("awake", Designation::WakingHours { hours: range("05:00-23:00"), channels: Vec::new() });
    assert_defer(&with(&call, &[], vec![awake.clone()], at("2026-11-30T06:30:00-05:00")), "2026-11-30T07:00:00-05:00");
    assert_defer(&with(&call, &[], vec![awake], at("2026-11-30T20:30:00-05:00")), "2026-12-01T07:00:00-05:00");

    // Monday mornings inconvenient: 07:30 on a Monday waits for 09:00, named and cited.
    let mornings = designated(
        "mornings",
        Designation::InconvenientTimes {
            days: vec![DayOfWeek::Mon],
            hours: vec![range("07:00-09:00")],
            channels: Vec::new(),
        },
    );
    let deferred = with(&call, &[], vec![mornings.clone()], at("2026-11-30T07:30:00-05:00"));
    assert_defer(&deferred, "2026-11-30T09:00:00-05:00");
    let reason = deferred.reasons.iter().find(|r| r.rule.as_ref().is_some_and(|m| m.id.as_ref() == "debtor:mornings"));
    let reason = reason.expect("the designation is a reason");
    let rule = reason.rule.as_ref().expect("rule");
    assert!(
        reason.message().contains("the debtor designated mon 07:00–09:00 as inconvenient (said 2026-11-01 via ivr)"),
        "{}",
        reason.message()
    );
    assert!(rule.citation.contains("no rule in force names a law making it binding"), "{}", rule.citation);
    assert_eq!(rule.basis.as_str(), "recommended");
    // Tuesday is untouched; an email is untouched when the designation is for calls only.
    assert_release(&with(&call, &[], vec![mornings], at("2026-12-01T07:30:00-05:00")));
    let calls_only = designated(
        "calls",
        Designation::InconvenientTimes {
            days: vec![DayOfWeek::Mon],
            hours: vec![range("07:00-09:00")],
            channels: vec![Channel::Call],
        },
    );
    assert_release(&with(&intent("PE", Channel::Email), &[], vec![calls_only], at("2026-11-30T07:30:00-05:00")));

    // Under Regulation F the same designation cites the law.
    let us = intent("US-NY", Channel::Call);
    let afternoons = designated(
        "pm",
        Designation::InconvenientTimes {
            days: vec![DayOfWeek::Wed],
            hours: vec![range("15:00-17:00")],
            channels: Vec::new(),
        },
    );
    let deferred = with(&us, &[], vec![afternoons], at("2026-11-25T15:30:00-05:00"));
    assert_defer(&deferred, "2026-11-25T17:00:00-05:00");
    let rule =
        deferred.reasons.iter().find_map(|r| r.rule.as_ref().filter(|m| m.id.as_ref() == "debtor:pm")).expect("named");
    assert!(rule.citation.starts_with("12 CFR 1006.6(b)(1)"), "{}", rule.citation);
    assert_eq!(rule.basis.as_str(), "law");
    assert_eq!(rule.jurisdiction.as_ref(), "US");
}

#[test]
fn an_unnamed_contact_point_gets_the_strictest_rules() {
    let history = [
        event(Channel::Call, "2026-11-23T09:30:00-05:00", Outcome::NoAnswer),
        event(Channel::Call, "2026-11-24T09:30:00-05:00", Outcome::NoAnswer),
    ];
    let now = at("2026-11-25T10:00:00-05:00");
    let mut call = intent("US-MA", Channel::Call);
    call.debt_id = None;
    // Unnamed: it may go to a work number, so the two-per-30-days limit binds too.
    assert_defer(&decide(book(), &call, &history, now), "2026-12-23T08:00:00-05:00");
    // To the personal mobile: only the seven-day limit.
    call.contact_point = Some(ContactPoint { kind: ContactPointKind::PersonalMobile, id: None });
    assert_defer(&decide(book(), &call, &history, now), "2026-11-30T08:00:00-05:00");
    // A refused work phone refuses an unnamed call, not an email.
    let employer = designated(
        "employer",
        Designation::InconvenientContactPoint {
            contact_point: ContactPoint { kind: ContactPointKind::WorkPhone, id: None },
            channels: Vec::new(),
        },
    );
    let unnamed = intent("US-NY", Channel::Call);
    let refused = with(&unnamed, &[], vec![employer.clone()], now);
    assert_eq!(refused.verdict, Verdict::Reject { code: RejectCode::ContactPointRefused }, "{:#?}", refused.reasons);
    assert_release(&with(&intent("US-NY", Channel::Email), &[], vec![employer], now));
}
