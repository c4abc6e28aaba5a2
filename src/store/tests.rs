//! A transaction never answers from rows it read ahead once a statement of
//! its own changed them.

use super::{DispatchRow, EventRow, IntentRow, Store};
use crate::domain::{Channel, DispatchState, IntentStatus, Outcome};

fn intent(id: &str) -> IntentRow {
    IntentRow {
        tenant: "acme".into(),
        intent_id: id.into(),
        debtor_id: "d-1".into(),
        debt_id: None,
        channel: Channel::Sms,
        jurisdiction: "PE".into(),
        priority: 0,
        body: "{}".into(),
        body_hash: "h".into(),
        status: IntentStatus::Leased,
        next_eval_at: None,
        decision: "{}".into(),
        dispatch_id: Some(format!("dispatch-{id}")),
        attempt: 1,
        outcome: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn dispatch(id: &str) -> DispatchRow {
    DispatchRow {
        dispatch_id: format!("dispatch-{id}"),
        tenant: "acme".into(),
        intent_id: id.into(),
        debtor_id: "d-1".into(),
        channel: Channel::Sms,
        priority: 0,
        released_at: 1,
        not_after: 2,
        state: DispatchState::Leased,
        lease_expires_at: Some(3),
        attempt: 1,
    }
}

async fn store_with_two_leased_intents(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::connect(&url).await.expect("store");
    let mut tx = store.begin().await.expect("begin");
    for id in ["i-1", "i-2"] {
        tx.insert_intent(&intent(id));
        tx.insert_dispatch(&dispatch(id));
        tx.insert_event("acme", "d-1", EventRow::released(None, Channel::Sms, 10, &format!("dispatch-{id}")));
    }
    tx.commit().await.expect("commit");
    store
}

#[tokio::test]
async fn rows_read_ahead_for_acks_follow_the_transactions_own_writes() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store_with_two_leased_intents(&dir).await;
    let mut tx = store.begin().await.expect("begin");
    tx.prefetch_dispatches(&["dispatch-i-1", "dispatch-i-2", "dispatch-unknown"]).await.expect("prefetch");
    assert!(tx.get_dispatch("dispatch-unknown").await.expect("read").is_none());
    let mut first = tx.get_dispatch("dispatch-i-1").await.expect("read").expect("read ahead");
    first.state = DispatchState::Acked;
    tx.update_dispatch(&first).await.expect("update");
    tx.set_event_outcome("dispatch-i-1", Outcome::Delivered).await.expect("outcome");
    let again = tx.get_dispatch("dispatch-i-1").await.expect("read").expect("still there");
    assert_eq!(again.state, DispatchState::Acked, "the dispatch as this transaction wrote it");
    let mut row = tx.get_intent("acme", "i-1").await.expect("read").expect("read ahead");
    row.status = IntentStatus::Done;
    tx.update_intent(&row).await.expect("update");
    // A flush empties the pending rows: the read-ahead must not fall back to what it read.
    tx.pending_intents("acme", "d-1", None).await.expect("flush");
    assert_eq!(tx.get_intent("acme", "i-1").await.expect("read").expect("row").status, IntentStatus::Done);
    assert_eq!(tx.get_dispatch("dispatch-i-1").await.expect("read").expect("row").state, DispatchState::Acked);
    tx.commit().await.expect("commit");
    assert_eq!(store.get_intent("acme", "i-1").await.expect("read").expect("row").status, IntentStatus::Done);
}

#[tokio::test]
async fn histories_and_preferences_read_ahead_are_dropped_when_changed() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store_with_two_leased_intents(&dir).await;
    let mut tx = store.begin().await.expect("begin");
    tx.prefetch(&[("acme", "i-1", "d-1")], 0).await.expect("prefetch");
    assert!(tx.history("acme", "d-1", 0, None).await.expect("history").iter().all(|e| e.outcome == Outcome::Attempted));
    assert!(tx.preferences("acme", "d-1").await.expect("preferences").is_none());
    tx.set_event_outcome("dispatch-i-1", Outcome::Delivered).await.expect("outcome");
    tx.delete_event("dispatch-i-2").await.expect("delete");
    let history = tx.history("acme", "d-1", 0, None).await.expect("history");
    assert_eq!(history.iter().map(|e| e.outcome).collect::<Vec<_>>(), [Outcome::Delivered]);
    tx.upsert_preferences("acme", "d-1", "{}", "test", 20).await.expect("preferences");
    let stored = tx.preferences("acme", "d-1").await.expect("preferences").expect("stored");
    assert_eq!((stored.source.as_str(), stored.updated_at), ("test", 20));
    assert_eq!(
        tx.get_intent("acme", "i-2").await.expect("read").expect("intents stay read").status,
        IntentStatus::Leased
    );
    tx.commit().await.expect("commit");
}
