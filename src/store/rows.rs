//! The rows of intents, dispatches, contact events and preferences, and the
//! column lists their statements spell (in field order, as `FromRow` reads them).
//! Closed sets (statuses, states, channels, outcomes, audit kinds) are typed
//! from the row on: a stored word outside the set fails to decode (and the
//! schema's CHECK constraints refuse to store one).

use crate::domain::{
    AckOutcome, AuditEventKind, Channel, ContactPoint, ContactPointKind, DispatchState, Initiator, IntentStatus,
    Outcome,
};

/// Stores a `domain` vocabulary as its word (a TEXT column) on both backends;
/// decoding an unknown word is an error, never a default.
macro_rules! stored_as_word {
    ($($vocabulary:ty),+) => {$(
        impl<DB: sqlx::Database> sqlx::Type<DB> for $vocabulary
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $vocabulary
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<DB>>::decode(value)?.parse()?)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $vocabulary
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'static str as sqlx::Encode<DB>>::encode(self.as_str(), buf)
            }
        }
    )+};
}

stored_as_word!(IntentStatus, DispatchState, Channel, Outcome, AckOutcome, AuditEventKind, ContactPointKind, Initiator);

/// A stored intent.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct IntentRow {
    pub tenant: String,
    pub intent_id: String,
    pub debtor_id: String,
    pub debt_id: Option<String>,
    pub channel: Channel,
    pub jurisdiction: String,
    pub priority: i64,
    pub body: String,
    pub body_hash: String,
    pub status: IntentStatus,
    pub next_eval_at: Option<i64>,
    pub decision: String,
    pub dispatch_id: Option<String>,
    pub attempt: i64,
    pub outcome: Option<AckOutcome>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One line of the console's queue: contacts of one jurisdiction and channel by state.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueCounts {
    pub jurisdiction: String,
    pub channel: Channel,
    /// Deferred, waking later than now.
    pub deferred: i64,
    /// Deferred and due now (the scheduler's next pass).
    pub due: i64,
    pub released: i64,
    pub leased: i64,
}

/// Deferred contacts that wake at the same instant.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Wakeup {
    pub at: i64,
    pub jurisdiction: String,
    pub channel: Channel,
    pub intents: i64,
}

/// A released contact handed (or to be handed) to an adapter.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DispatchRow {
    pub dispatch_id: String,
    pub tenant: String,
    pub intent_id: String,
    pub debtor_id: String,
    pub channel: Channel,
    pub priority: i64,
    pub released_at: i64,
    pub not_after: i64,
    pub state: DispatchState,
    pub lease_expires_at: Option<i64>,
    pub attempt: i64,
}

impl DispatchRow {
    /// A new dispatch id: a UUIDv7, whose text sorts in the order ids are
    /// made. The indexes keyed by it (the dispatches' primary key, the contact
    /// events' unique `dispatch_id`) then grow at their right edge; random
    /// (v4) ids dirtied a random page of each per release, which in a
    /// 100k surge on SQLite cost 30% of the drain rate. Its time part is the
    /// system clock's, used for nothing but that order.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }

    /// Whether the contact may still be handed to the channel at `now` (Unix
    /// ms): its window (`not_after`) and its lease have not ended.
    pub fn may_leave_at(&self, now: i64) -> bool {
        self.not_after > now && self.lease_expires_at.is_some_and(|ends| ends > now)
    }
}

/// An open dispatch whose row cannot be decoded: what could be read of it.
#[derive(Clone, Debug)]
pub struct UndecodableDispatch {
    pub dispatch_id: String,
    /// `None` (here and below) when even that cannot be read.
    pub tenant: Option<String>,
    pub intent_id: Option<String>,
    pub debtor_id: Option<String>,
    pub why: String,
}

/// One past contact of a debtor.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub debt_id: Option<String>,
    pub channel: Channel,
    pub at: i64,
    pub outcome: Outcome,
    pub dispatch_id: Option<String>,
    /// Where it went (or came from), if recorded.
    pub contact_kind: Option<ContactPointKind>,
    pub contact_id: Option<String>,
    pub initiator: Initiator,
}

impl EventRow {
    /// The attempt a release records: by the collector, to an unrecorded contact point.
    pub fn released(debt_id: Option<String>, channel: Channel, at: i64, dispatch_id: &str) -> EventRow {
        EventRow {
            debt_id,
            channel,
            at,
            outcome: Outcome::Attempted,
            dispatch_id: Some(dispatch_id.to_string()),
            contact_kind: None,
            contact_id: None,
            initiator: Initiator::Collector,
        }
    }

    /// The contact point, if recorded.
    pub fn contact_point(&self) -> Option<ContactPoint> {
        self.contact_kind.map(|kind| ContactPoint { kind, id: self.contact_id.clone() })
    }
}

/// The columns of `contact_events` a history reads, in `EventRow` order.
macro_rules! event_columns {
    () => {
        "debt_id, channel, at, outcome, dispatch_id, contact_kind, contact_id, initiator"
    };
}

/// A debtor's stored preferences.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PreferencesRow {
    pub prefs: String,
    pub source: String,
    pub updated_at: i64,
}

/// The columns of `intents`, in `IntentRow` order.
macro_rules! intent_columns {
    () => {
        "tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, body_hash, status, \
         next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at"
    };
}

/// The columns of `dispatches`, in `DispatchRow` order.
macro_rules! dispatch_columns {
    () => {
        "dispatch_id, tenant, intent_id, debtor_id, channel, priority, released_at, not_after, state, \
         lease_expires_at, attempt"
    };
}

#[cfg(test)]
mod tests {
    use super::DispatchRow;

    #[test]
    fn dispatch_ids_sort_in_the_order_they_are_made() {
        let ids: Vec<String> = (0..10_000).map(|_| DispatchRow::new_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "dispatch ids must grow: an index keyed by them appends");
    }
}
