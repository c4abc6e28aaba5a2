//! The vocabulary shared by rules, engine and edges: channels, parties,
//! stages, outcomes, contact intents and the contact history, and the states
//! an intent, a dispatch and an audit event can be in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Declares a closed, lowercase, snake_case vocabulary: parsing, display,
/// serde and the list of accepted words (for error messages) in one place.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word used in files, JSON and the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The accepted words, for error messages.
            pub fn expected() -> String {
                [$($word),+].join(", ")
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {:?} (expected one of: {})", $what, other, $name::expected())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// A medium through which a debtor can be contacted.
    Channel, "channel" {
        Call => "call",
        Visit => "visit",
        Sms => "sms",
        Whatsapp => "whatsapp",
        Email => "email",
        Letter => "letter",
        Push => "push",
    }
);

vocabulary!(
    /// Who is being contacted, relative to the debt.
    Party, "party" {
        Debtor => "debtor",
        CoDebtor => "co_debtor",
        Guarantor => "guarantor",
        ThirdParty => "third_party",
    }
);

vocabulary!(
    /// How far the collection has progressed.
    Stage, "stage" {
        Preventive => "preventive",
        Administrative => "administrative",
        Extrajudicial => "extrajudicial",
        Judicial => "judicial",
    }
);

vocabulary!(
    /// What came of one past contact attempt.
    Outcome, "outcome" {
        Attempted => "attempted",
        Delivered => "delivered",
        Conversation => "conversation",
        NoAnswer => "no_answer",
        Failed => "failed",
    }
);

impl Outcome {
    /// Whether the attempt reached the person (a completed contact).
    pub fn is_completed_contact(self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Conversation)
    }
}

vocabulary!(
    /// What an adapter reports on a leased contact (stored on the intent).
    AckOutcome, "ack outcome" {
        Sent => "sent",
        Delivered => "delivered",
        Failed => "failed",
        NoAnswer => "no_answer",
        Conversation => "conversation",
        WrongParty => "wrong_party",
        OptedOut => "opted_out",
    }
);

impl AckOutcome {
    /// What the contact history records (and caps count).
    pub fn history_outcome(self) -> Outcome {
        match self {
            AckOutcome::Sent | AckOutcome::WrongParty | AckOutcome::OptedOut => Outcome::Attempted,
            AckOutcome::Delivered => Outcome::Delivered,
            AckOutcome::Failed => Outcome::Failed,
            AckOutcome::NoAnswer => Outcome::NoAnswer,
            AckOutcome::Conversation => Outcome::Conversation,
        }
    }
}

vocabulary!(
    /// Where an intent stands. `Deferred` waits for its next evaluation;
    /// `Released` and `Leased` are in flight; the rest are final, except
    /// `Held` (unreadable, waiting for an operator).
    IntentStatus, "intent status" {
        Deferred => "deferred",
        Released => "released",
        Leased => "leased",
        Done => "done",
        Rejected => "rejected",
        Cancelled => "cancelled",
        Expired => "expired",
        Held => "held",
    }
);

vocabulary!(
    /// Where a released contact stands with the adapters.
    DispatchState, "dispatch state" {
        Ready => "ready",
        Leased => "leased",
        Acked => "acked",
        Cancelled => "cancelled",
        Withdrawn => "withdrawn",
    }
);

vocabulary!(
    /// What an audit event records.
    AuditEventKind, "audit event kind" {
        Submitted => "submitted",
        Deferred => "deferred",
        Released => "released",
        Rejected => "rejected",
        Expired => "expired",
        Leased => "leased",
        Withdrawn => "withdrawn",
        Acked => "acked",
        Cancelled => "cancelled",
        PreferenceChanged => "preference_changed",
        RulesReloaded => "rules_reloaded",
        Held => "held",
    }
);

/// A request to contact someone about a debt, as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    pub tenant: String,
    pub intent_id: String,
    pub debtor_id: String,
    pub debt_id: Option<String>,
    pub channel: Channel,
    pub party: Party,
    pub stage: Stage,
    /// Jurisdiction code: a country (`PE`) or a subdivision (`MX-BCN`, `US-MA`).
    pub jurisdiction: String,
    /// Time zones the recipient may be in; empty means the jurisdiction's default.
    pub time_zones: Vec<Tz>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One past contact attempt with the same debtor.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactEvent {
    pub channel: Channel,
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The debt the attempt was about; `None` means the intent's own debt.
    pub debt_id: Option<String>,
}

/// What a debtor asked for (or what adapters learned) about channels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    /// The debtor opted out of every channel.
    pub opted_out_all: bool,
    /// Channels the debtor opted out of.
    pub opted_out: Vec<Channel>,
    /// If not empty, the only channels the debtor accepts.
    pub chosen: Vec<Channel>,
    /// Channels whose contact point reached someone else.
    pub wrong_party: Vec<Channel>,
}

/// The longest identifier accepted (tenant, intent, debtor, debt, dispatch
/// ids, sources), counted in characters (Unicode scalar values), not bytes.
pub const MAX_ID_CHARS: usize = 256;

/// Checks an identifier the same way for every backend and every edge (API,
/// JSON, CLI): not blank, no control characters (PostgreSQL cannot store NUL),
/// no leading or trailing whitespace (refused, never trimmed: an idempotency
/// key is compared exactly), at most [`MAX_ID_CHARS`] characters.
pub fn check_identifier(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is required and must not be blank".into());
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(format!("is longer than {MAX_ID_CHARS} characters"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters (found U+{:04X})", u32::from(c)));
    }
    if value.trim() != value {
        return Err("must not start or end with whitespace".into());
    }
    Ok(())
}

/// Checks free text stored beside an identifier (a cancel reason, an ack
/// detail): at most `max` characters, no control characters but tab and
/// line breaks.
pub fn check_text(value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    match value.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        Some(c) => Err(format!("must not contain control characters (found U+{:04X})", u32::from(c))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_one_way() {
        for good in ["a", "DNI-40404040", "ñandú 7", &"é".repeat(MAX_ID_CHARS)] {
            assert_eq!(check_identifier(good), Ok(()), "{good:?}");
        }
        for bad in ["", " ", "\t", "dev ", " dev", "a\0b", "a\nb", "a\u{7f}b", &"a".repeat(MAX_ID_CHARS + 1)] {
            assert!(check_identifier(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(check_text("paid\nin full", 64), Ok(()));
        assert!(check_text("a\0b", 64).is_err());
        assert!(check_text("abc", 2).is_err());
    }
}
