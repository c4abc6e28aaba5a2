//! One intent decided against a rule book, and assertions on the verdict:
//! what the engine and property tests share.

use chrono::{DateTime, Utc};
use ventana::domain::{Channel, ContactEvent, Initiator, Intent, Outcome, Party, Preferences, Stage};
use ventana::engine::{Decision, Verdict, evaluate};
use ventana::rules::RuleBook;

pub use crate::support::at;
pub use crate::support::rules::shipped_book as book;

/// A debtor intent at the extrajudicial stage.
pub fn intent(jurisdiction: &str, channel: Channel) -> Intent {
    Intent {
        tenant: "t1".into(),
        intent_id: "i1".into(),
        debtor_id: "d1".into(),
        debt_id: Some("debt-1".into()),
        channel,
        party: Party::Debtor,
        stage: Stage::Extrajudicial,
        jurisdiction: jurisdiction.into(),
        time_zones: Vec::new(),
        not_before: None,
        expires_at: None,
        contact_point: None,
    }
}

/// A past attempt.
pub fn event(channel: Channel, when: &str, outcome: Outcome) -> ContactEvent {
    ContactEvent { channel, at: at(when), outcome, debt_id: None, contact_point: None, initiator: Initiator::Collector }
}

/// Evaluates `intent` against `book` at `now`.
pub fn decide(book: &RuleBook, intent: &Intent, history: &[ContactEvent], now: DateTime<Utc>) -> Decision {
    let rules = book.resolve(&intent.tenant, &intent.jurisdiction).expect("jurisdiction resolves");
    evaluate(intent, &rules, history, &Preferences::default(), now)
}

/// Asserts a release.
#[track_caller]
pub fn assert_release(decision: &Decision) {
    assert_eq!(decision.verdict, Verdict::Release, "reasons: {:#?}", decision.reasons);
}

/// Asserts a defer to exactly `until`.
#[track_caller]
pub fn assert_defer(decision: &Decision, until: &str) {
    assert_eq!(decision.verdict, Verdict::Defer { until: at(until) }, "reasons: {:#?}", decision.reasons);
}
