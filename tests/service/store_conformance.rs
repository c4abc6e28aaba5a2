//! The store's conformance suite: what `Store` and `Tx` promise, through
//! their public API, the same on SQLite and PostgreSQL. A transaction reads
//! its own writes whether they are still queued (write-behind), already sent,
//! or shadowing rows read ahead; a transaction that ends without commit
//! leaves nothing, not even its audit events; a commit chains each tenant's
//! events in the order queued (however many tenants it names), and one whose
//! rows fail to insert appends none and moves no head; a locked debtor makes
//! the next locker wait until the holder commits, debtors are locked in the
//! order given, and `try_lock_debtors` reports a debtor held elsewhere; claims take
//! due intents earliest first, then highest priority, never one intent twice;
//! a leased dispatch is offered again only once its lease has expired;
//! every column is stored as written, NULLs included, by inserts and updates.
//!
//! Where the backends differ the test asks the store what applies
//! (`single_writer`): SQLite runs one write transaction at a time, so a
//! second transaction waits at `begin` rather than at a lock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ventana::audit::{AuditEvent, ChainWalker, GENESIS};
use ventana::domain::{Channel, Outcome};
use ventana::store::{DispatchRow, EventRow, IntentRow, Store, Tx};

use crate::on_both_backends;
use crate::support::database::{Backend, TestDatabase, wait_for_blocked_lockers};

/// A fresh store on `backend`, with the database it lives in.
async fn open(backend: Backend) -> (Store, TestDatabase) {
    let database = TestDatabase::new(backend).await;
    let store = Store::connect(database.url()).await.expect("store opens");
    (store, database)
}

/// An intent of tenant `acme`.
fn intent(id: &str, debtor: &str, status: &str, next_eval_at: Option<i64>, priority: i64) -> IntentRow {
    IntentRow {
        tenant: "acme".into(),
        intent_id: id.into(),
        debtor_id: debtor.into(),
        debt_id: None,
        channel: Channel::Sms,
        jurisdiction: "PE".into(),
        priority,
        body: "{}".into(),
        body_hash: format!("hash-{id}"),
        status: status.parse().expect("an intent status"),
        next_eval_at,
        decision: "{}".into(),
        dispatch_id: None,
        attempt: 0,
        outcome: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// A dispatch of tenant `acme` on `sms` for intent `i-<id>`.
fn dispatch(id: &str, state: &str, priority: i64, released_at: i64, lease_expires_at: Option<i64>) -> DispatchRow {
    DispatchRow {
        dispatch_id: id.into(),
        tenant: "acme".into(),
        intent_id: format!("i-{id}"),
        debtor_id: "d-1".into(),
        channel: Channel::Sms,
        priority,
        released_at,
        not_after: 1_000_000,
        state: state.parse().expect("a dispatch state"),
        lease_expires_at,
        attempt: 0,
    }
}

fn audit_event(kind: &str, intent_id: &str) -> AuditEvent {
    AuditEvent {
        intent_id: Some(intent_id.into()),
        debtor_id: Some("d-1".into()),
        channel: Some(Channel::Sms),
        jurisdiction: Some("PE".into()),
        ..AuditEvent::new("acme", 1, kind.parse().expect("an audit event kind"), String::new())
    }
}

/// The instants of a debtor's history as `tx` sees it.
async fn history_at(tx: &mut Tx, debtor: &str, since: i64) -> Vec<i64> {
    tx.history("acme", debtor, since, None).await.expect("history").iter().map(|e| e.at).collect()
}

async fn pending_ids(tx: &mut Tx, debtor: &str) -> Vec<String> {
    let rows = tx.pending_intents("acme", debtor, None).await.expect("pending intents");
    let mut ids: Vec<String> = rows.into_iter().map(|r| r.intent_id).collect();
    ids.sort();
    ids
}

async fn open_ids(tx: &mut Tx, tenant: Option<&str>, channels: &[&str], now: i64, limit: i64) -> Vec<String> {
    let channels: Vec<Channel> = channels.iter().map(|c| c.parse().expect("a channel")).collect();
    let (open, undecodable) = tx.open_dispatches(tenant, &channels, now, limit).await.expect("open dispatches");
    assert!(undecodable.is_empty(), "{undecodable:?}");
    open.into_iter().map(|d| d.dispatch_id).collect()
}

/// Commits `intents` and `dispatches` in one transaction.
async fn seed(store: &Store, intents: &[IntentRow], dispatches: &[DispatchRow]) {
    let mut tx = store.begin().await.expect("begin");
    for row in intents {
        tx.insert_intent(row);
    }
    for row in dispatches {
        tx.insert_dispatch(row);
    }
    tx.commit().await.expect("commit");
}

// ------------------------------------------------------------------ reading one's own writes

async fn a_transaction_reads_its_own_queued_writes(backend: Backend) {
    let (store, _database) = open(backend).await;
    let mut tx = store.begin().await.expect("begin");
    tx.insert_intent(&intent("i-1", "d-1", "released", None, 0));
    tx.insert_dispatch(&dispatch("x-1", "ready", 0, 10, None));
    tx.insert_event("acme", "d-1", EventRow::released(Some("debt-1".into()), Channel::Sms, 10, "x-1"));
    tx.insert_event("acme", "d-1", EventRow::released(None, Channel::Sms, 5, "x-0"));
    tx.insert_event("acme", "d-2", EventRow::released(None, Channel::Sms, 7, "x-2"));

    // Still queued: this transaction sees them…
    assert_eq!(tx.get_intent("acme", "i-1").await.expect("read").expect("queued intent").status.as_str(), "released");
    assert_eq!(tx.get_dispatch("x-1").await.expect("read").expect("queued dispatch").state.as_str(), "ready");
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [5, 10], "queued events, oldest first");
    assert_eq!(history_at(&mut tx, "d-1", 6).await, [10], "since applies to queued events");
    assert_eq!(history_at(&mut tx, "d-2", 0).await, [7], "each debtor its own");
    // …nobody else does.
    assert!(store.get_intent("acme", "i-1").await.expect("read").is_none(), "uncommitted intent seen outside");
    assert!(
        store.history("acme", "d-1", 0, i64::MAX, None).await.expect("read").is_empty(),
        "uncommitted events seen outside"
    );

    // Statements that could see them send them first.
    assert_eq!(pending_ids(&mut tx, "d-1").await, ["i-1"]);
    assert_eq!(open_ids(&mut tx, Some("acme"), &["sms"], 10, 10).await, ["x-1"]);

    // Sent, then changed again: the changes are seen, and the sent rows once each.
    let mut row = tx.get_intent("acme", "i-1").await.expect("read").expect("sent intent");
    row.status = "leased".parse().expect("a known word");
    tx.update_intent(&row).await.expect("update");
    assert_eq!(tx.get_intent("acme", "i-1").await.expect("read").expect("row").status.as_str(), "leased");
    let mut leased = tx.get_dispatch("x-1").await.expect("read").expect("sent dispatch");
    leased.state = "leased".parse().expect("a known word");
    leased.lease_expires_at = Some(100);
    tx.update_dispatch(&leased).await.expect("update");
    assert_eq!(tx.get_dispatch("x-1").await.expect("read").expect("row").state.as_str(), "leased");
    assert!(open_ids(&mut tx, Some("acme"), &["sms"], 10, 10).await.is_empty(), "the queued lease is seen");
    assert_eq!(open_ids(&mut tx, Some("acme"), &["sms"], 100, 10).await, ["x-1"], "and its expiry");
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [5, 10], "sent events are not counted twice");
    tx.commit().await.expect("commit");

    assert_eq!(store.get_intent("acme", "i-1").await.expect("read").expect("committed").status.as_str(), "leased");
    let history: Vec<i64> =
        store.history("acme", "d-1", 0, i64::MAX, None).await.expect("read").iter().map(|e| e.at).collect();
    assert_eq!(history, [5, 10]);
    let mut later = store.begin().await.expect("begin");
    assert_eq!(later.get_dispatch("x-1").await.expect("read").expect("committed").lease_expires_at, Some(100));
}
on_both_backends!(a_transaction_reads_its_own_queued_writes);

async fn read_ahead_never_hides_the_transactions_own_writes(backend: Backend) {
    let (store, _database) = open(backend).await;
    let mut stored = intent("i-1", "d-1", "deferred", Some(50), 0);
    stored.dispatch_id = Some("x-1".into());
    let mut setup = store.begin().await.expect("begin");
    setup.insert_intent(&stored);
    setup.insert_dispatch(&DispatchRow { intent_id: "i-1".into(), ..dispatch("x-1", "leased", 0, 10, Some(100)) });
    setup.insert_event("acme", "d-1", EventRow::released(None, Channel::Sms, 10, "x-1"));
    setup.commit().await.expect("commit");

    let mut tx = store.begin().await.expect("begin");
    tx.prefetch(&[("acme", "i-1", "d-1"), ("acme", "i-2", "d-1")], 0).await.expect("prefetch");
    assert!(tx.get_intent("acme", "i-2").await.expect("read").is_none(), "read ahead as absent");
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [10]);
    assert!(tx.preferences("acme", "d-1").await.expect("read").is_none());

    // Written after the read-ahead: the writes win over what was read.
    tx.insert_intent(&intent("i-2", "d-1", "released", None, 0));
    assert!(tx.get_intent("acme", "i-2").await.expect("read").is_some(), "an intent read ahead as absent, inserted");
    let mut row = tx.get_intent("acme", "i-1").await.expect("read").expect("read ahead");
    row.status = "released".parse().expect("a known word");
    tx.update_intent(&row).await.expect("update");
    assert_eq!(tx.get_intent("acme", "i-1").await.expect("read").expect("row").status.as_str(), "released");
    tx.insert_event("acme", "d-1", EventRow::released(None, Channel::Sms, 20, "x-2"));
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [10, 20], "a queued event joins the history read ahead");
    tx.upsert_preferences("acme", "d-1", "{}", "ivr", 30).await.expect("preferences");
    assert_eq!(tx.preferences("acme", "d-1").await.expect("read").expect("stored").source, "ivr");

    // And still once the queued rows are sent (a flush empties the queue).
    assert_eq!(pending_ids(&mut tx, "d-1").await, ["i-1", "i-2"]);
    assert!(tx.get_intent("acme", "i-2").await.expect("read").is_some(), "the sent intent, read ahead as absent");
    assert_eq!(tx.get_intent("acme", "i-1").await.expect("read").expect("row").status.as_str(), "released");
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [10, 20], "the sent event, after the history was read ahead");

    // Read ahead after writing: queued rows are not in the database yet, but are seen.
    tx.insert_intent(&intent("i-3", "d-1", "released", None, 0));
    tx.insert_event("acme", "d-1", EventRow::released(None, Channel::Sms, 25, "x-3"));
    tx.prefetch(&[("acme", "i-3", "d-1")], 0).await.expect("prefetch");
    assert!(tx.get_intent("acme", "i-3").await.expect("read").is_some(), "queued before the read-ahead");
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [10, 20, 25]);
    assert_eq!(pending_ids(&mut tx, "d-1").await, ["i-1", "i-2", "i-3"]);
    assert!(tx.get_intent("acme", "i-3").await.expect("read").is_some(), "sent after the read-ahead");
    assert_eq!(history_at(&mut tx, "d-1", 0).await, [10, 20, 25]);
    tx.commit().await.expect("commit");

    // Dispatches read ahead (acks): inserts, updates and event changes after it are seen.
    let mut tx = store.begin().await.expect("begin");
    tx.prefetch_dispatches(&["x-1", "x-new"]).await.expect("prefetch dispatches");
    assert!(tx.get_dispatch("x-new").await.expect("read").is_none(), "read ahead as absent");
    assert_eq!(tx.get_intent("acme", "i-1").await.expect("read").expect("read ahead").status.as_str(), "released");
    tx.insert_dispatch(&dispatch("x-new", "ready", 0, 30, None));
    assert!(tx.get_dispatch("x-new").await.expect("read").is_some(), "a dispatch read ahead as absent, inserted");
    let mut acked = tx.get_dispatch("x-1").await.expect("read").expect("read ahead");
    acked.state = "acked".parse().expect("a known word");
    tx.update_dispatch(&acked).await.expect("update");
    assert_eq!(tx.get_dispatch("x-1").await.expect("read").expect("row").state.as_str(), "acked");
    tx.set_event_outcome("x-1", Outcome::Delivered).await.expect("outcome");
    tx.delete_event("x-2").await.expect("delete");
    let history = tx.history("acme", "d-1", 0, None).await.expect("history");
    let seen: Vec<(i64, &str)> = history.iter().map(|e| (e.at, e.outcome.as_str())).collect();
    assert_eq!(seen, [(10, "delivered"), (25, "attempted")]);
    // Sent by the next statement that could see them.
    assert_eq!(open_ids(&mut tx, Some("acme"), &["sms"], 0, 10).await, ["x-new"]);
    assert!(tx.get_dispatch("x-new").await.expect("read").is_some(), "the sent dispatch, read ahead as absent");
    assert_eq!(tx.get_dispatch("x-1").await.expect("read").expect("row").state.as_str(), "acked");
    tx.commit().await.expect("commit");

    assert_eq!(store.get_intent("acme", "i-1").await.expect("read").expect("row").status.as_str(), "released");
    for id in ["i-2", "i-3"] {
        assert!(store.get_intent("acme", id).await.expect("read").is_some(), "{id} committed");
    }
    let history: Vec<i64> =
        store.history("acme", "d-1", 0, i64::MAX, None).await.expect("read").iter().map(|e| e.at).collect();
    assert_eq!(history, [10, 25]);
    assert_eq!(store.preferences("acme", "d-1").await.expect("read").expect("committed").source, "ivr");
}
on_both_backends!(read_ahead_never_hides_the_transactions_own_writes);

// ------------------------------------------------------------------ commit or nothing

/// Writes one of everything, with its audit event; `send` sends the queued rows first.
async fn write_everything(tx: &mut Tx, send: bool) {
    tx.insert_intent(&intent("i-1", "d-1", "released", None, 0));
    tx.insert_dispatch(&dispatch("x-1", "ready", 0, 10, None));
    tx.insert_event("acme", "d-1", EventRow::released(None, Channel::Sms, 10, "x-1"));
    tx.upsert_preferences("acme", "d-1", "{}", "letter", 10).await.expect("preferences");
    tx.audit(audit_event("released", "i-1"));
    if send {
        assert_eq!(pending_ids(tx, "d-1").await, ["i-1"]);
        assert_eq!(open_ids(tx, Some("acme"), &["sms"], 10, 10).await, ["x-1"]);
    }
}

async fn a_transaction_that_ends_without_commit_leaves_nothing(backend: Backend) {
    let (store, _database) = open(backend).await;
    for send in [false, true] {
        let mut tx = store.begin().await.expect("begin");
        write_everything(&mut tx, send).await;
        drop(tx);
        assert!(store.get_intent("acme", "i-1").await.expect("read").is_none(), "sent rows: {send}");
        assert!(store.history("acme", "d-1", 0, i64::MAX, None).await.expect("read").is_empty(), "sent rows: {send}");
        assert!(store.preferences("acme", "d-1").await.expect("read").is_none(), "sent rows: {send}");
        assert_eq!(store.audit_head("acme").await.expect("read"), None, "no audit event: sent rows: {send}");
        assert!(store.audit_page("acme", 0, i64::MAX, 10).await.expect("read").is_empty());
        let mut next = store.begin().await.expect("the next transaction begins");
        assert!(next.get_dispatch("x-1").await.expect("read").is_none(), "sent rows: {send}");
    }

    let mut tx = store.begin().await.expect("begin");
    write_everything(&mut tx, false).await;
    tx.commit().await.expect("commit");
    assert!(store.get_intent("acme", "i-1").await.expect("read").is_some());
    assert_eq!(store.history("acme", "d-1", 0, i64::MAX, None).await.expect("read").len(), 1);
    assert!(store.preferences("acme", "d-1").await.expect("read").is_some());
    let page = store.audit_page("acme", 0, i64::MAX, 10).await.expect("read");
    assert_eq!(page.len(), 1, "the commit appended its event: {page:?}");
    assert_eq!((page[0].event.kind.as_str(), page[0].event.intent_id.as_deref()), ("released", Some("i-1")));
    assert_eq!(store.audit_head("acme").await.expect("read"), Some((page[0].seq, page[0].hash.clone())));
    let mut next = store.begin().await.expect("begin");
    assert!(next.get_dispatch("x-1").await.expect("read").is_some());
}
on_both_backends!(a_transaction_that_ends_without_commit_leaves_nothing);

// ------------------------------------------------------------------ every column as written

/// Every field of an intent set (`full`) or every optional one empty.
fn intent_with(id: &str, full: bool) -> IntentRow {
    IntentRow {
        debt_id: full.then(|| format!("debt-{id}")),
        next_eval_at: full.then_some(77),
        dispatch_id: full.then(|| format!("x-{id}")),
        outcome: full.then(|| "delivered".parse().expect("an ack outcome")),
        channel: Channel::Whatsapp,
        body: format!("{{\"body\":\"{id}\"}}"),
        decision: format!("{{\"decision\":\"{id}\"}}"),
        attempt: 3,
        created_at: 11,
        updated_at: 12,
        ..intent(id, &format!("d-{id}"), if full { "deferred" } else { "released" }, None, -4)
    }
}

/// Every field of an audit event set (`full`) or every optional one empty.
fn audit_with(id: &str, full: bool) -> AuditEvent {
    let set = |field: &str| full.then(|| format!("{field}-{id}"));
    AuditEvent {
        intent_id: set("intent"),
        debtor_id: set("debtor"),
        debt_id: set("debt"),
        channel: full.then_some(Channel::Call),
        jurisdiction: set("jurisdiction"),
        time_zone: set("zone"),
        local_time: set("local"),
        decision: set("decision"),
        reason_codes: set("codes"),
        rule_ids: set("rules"),
        citations: set("citations"),
        rules_version: set("version"),
        outcome: full.then(|| "no_answer".parse().expect("an ack outcome")),
        ..AuditEvent::new("acme", 5, "acked".parse().expect("an audit event kind"), format!("detail-{id}"))
    }
}

/// Rows with every optional column set and with none, inserted, then
/// changed by updates that empty what was set and set what was empty, each
/// read back field for field from a fresh transaction: each backend's
/// statements write each value to its own column, NULLs included.
async fn every_column_is_stored_as_written_nulls_included(backend: Backend) {
    let (store, _database) = open(backend).await;
    let event = |id: &str, full: bool| EventRow {
        debt_id: full.then(|| format!("debt-{id}")),
        channel: Channel::Email,
        at: 9,
        outcome: if full { Outcome::Delivered } else { Outcome::Attempted },
        dispatch_id: full.then(|| format!("x-{id}")),
        contact_kind: full.then(|| "personal_mobile".parse().expect("a contact point kind")),
        contact_id: full.then(|| format!("contact-{id}")),
        initiator: (if full { "debtor" } else { "collector" }).parse().expect("an initiator"),
    };
    let dispatch_with = |id: &str, full: bool| DispatchRow {
        lease_expires_at: full.then_some(99),
        attempt: 2,
        ..dispatch(id, if full { "leased" } else { "ready" }, -3, 7, None)
    };
    let inserted = [intent_with("a", true), intent_with("b", false)];
    let mut tx = store.begin().await.expect("begin");
    for (row, full) in inserted.iter().zip([true, false]) {
        tx.insert_intent(row);
        tx.insert_dispatch(&dispatch_with(&row.intent_id, full));
        tx.insert_event("acme", &row.debtor_id, event(&row.intent_id, full));
        tx.audit(audit_with(&row.intent_id, full));
    }
    tx.commit().await.expect("commit");

    let same = |written: &dyn std::fmt::Debug, read: &dyn std::fmt::Debug| {
        assert_eq!(format!("{read:?}"), format!("{written:?}"), "read back as written on {backend:?}")
    };
    let mut tx = store.begin().await.expect("begin");
    for (row, full) in inserted.iter().zip([true, false]) {
        same(&Some(row), &tx.get_intent("acme", &row.intent_id).await.expect("read"));
        same(&Some(dispatch_with(&row.intent_id, full)), &tx.get_dispatch(&row.intent_id).await.expect("read"));
        same(&[event(&row.intent_id, full)], &tx.history("acme", &row.debtor_id, 0, None).await.expect("read"));
    }
    // The updates empty what was set, set what was empty and change every
    // other column they write.
    let changed = |row: IntentRow, status: &str| IntentRow {
        status: status.parse().expect("a status"),
        decision: format!("{{\"decision\":\"changed {}\"}}", row.intent_id),
        attempt: 4,
        updated_at: 13,
        ..row
    };
    let updated = [changed(intent_with("a", false), "released"), changed(intent_with("b", true), "deferred")];
    let dispatch_updated =
        |id: &str, full: bool| DispatchRow { not_after: 2_000_000, attempt: 5, ..dispatch_with(id, full) };
    for (row, full) in updated.iter().zip([false, true]) {
        tx.update_intent(row).await.expect("update");
        tx.update_dispatch(&dispatch_updated(&row.intent_id, full)).await.expect("update");
    }
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    for (row, full) in updated.iter().zip([false, true]) {
        let read = tx.get_intent("acme", &row.intent_id).await.expect("read").expect("stored");
        let kept = inserted.iter().find(|i| i.intent_id == row.intent_id).expect("inserted");
        // What an update changes; the rest stays as inserted.
        same(
            &(row.status, row.next_eval_at, &row.decision, &row.dispatch_id, row.attempt, row.outcome, row.updated_at),
            &(
                read.status,
                read.next_eval_at,
                &read.decision,
                &read.dispatch_id,
                read.attempt,
                read.outcome,
                read.updated_at,
            ),
        );
        same(&(&kept.debt_id, &kept.body, kept.created_at), &(&read.debt_id, &read.body, read.created_at));
        same(&Some(dispatch_updated(&row.intent_id, full)), &tx.get_dispatch(&row.intent_id).await.expect("read"));
    }
    drop(tx);

    let page = store.audit_page("acme", 0, i64::MAX, 10).await.expect("read");
    let events: Vec<&AuditEvent> = page.iter().map(|r| &r.event).collect();
    same(&[&audit_with("a", true), &audit_with("b", false)], &events);
}
on_both_backends!(every_column_is_stored_as_written_nulls_included);

/// Walks a tenant's whole chain against its head; the intent ids in chain order.
async fn walk_chain(store: &Store, tenant: &str) -> Vec<String> {
    let page = store.audit_page(tenant, 0, i64::MAX, 1_000).await.expect("read");
    let mut walker = ChainWalker::new(tenant, 1, GENESIS);
    page.iter().for_each(|row| walker.push(row));
    let head = store.audit_head(tenant).await.expect("read head");
    walker.finish(head.as_ref().map(|(seq, hash)| (*seq, hash.as_str())));
    assert_eq!(walker.broken, None, "{tenant}'s chain verifies");
    page.into_iter().map(|row| row.event.intent_id.unwrap_or_default()).collect()
}

async fn a_commit_chains_each_tenants_events_in_the_order_queued(backend: Backend) {
    let (store, _database) = open(backend).await;
    let event =
        |tenant: &str, n: usize| AuditEvent { tenant: tenant.into(), ..audit_event("submitted", &format!("i-{n}")) };
    // 40 events of two tenants, interleaved, in one commit; then 3; then 40
    // in a commit whose rows fail to insert.
    let mut tx = store.begin().await.expect("begin");
    tx.insert_intent(&intent("i-0", "d-1", "released", None, 0));
    (0..40).for_each(|n| tx.audit(event(if n % 3 == 0 { "beta" } else { "acme" }, n)));
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    (40..43).for_each(|n| tx.audit(event("acme", n)));
    tx.commit().await.expect("commit");
    let heads_before = (store.audit_head("acme").await.expect("read"), store.audit_head("beta").await.expect("read"));
    let mut tx = store.begin().await.expect("begin");
    tx.insert_intent(&intent("i-0", "d-1", "released", None, 0)); // already stored: the commit fails
    (43..83).for_each(|n| tx.audit(event("acme", n)));
    assert!(tx.commit().await.is_err(), "a duplicate intent fails the commit");

    let ids = |range: std::ops::Range<usize>, keep: fn(usize) -> bool| -> Vec<String> {
        range.filter(|n| keep(*n)).map(|n| format!("i-{n}")).collect()
    };
    let acme = [ids(0..40, |n| n % 3 != 0), ids(40..43, |_| true)].concat();
    assert_eq!(walk_chain(&store, "acme").await, acme, "acme's events, in order, none of the failed commit");
    assert_eq!(walk_chain(&store, "beta").await, ids(0..40, |n| n % 3 == 0), "beta's events, in order");
    let heads_after = (store.audit_head("acme").await.expect("read"), store.audit_head("beta").await.expect("read"));
    assert_eq!(heads_after, heads_before, "the failed commit moved no head");

    // More tenants in one commit than one statement's rows (500): every chain
    // gets its event and its head.
    let mut tx = store.begin().await.expect("begin");
    (0..501).for_each(|n| tx.audit(event(&format!("m-{n:03}"), n)));
    tx.commit().await.expect("commit");
    for n in [0, 250, 499, 500] {
        assert_eq!(walk_chain(&store, &format!("m-{n:03}")).await, [format!("i-{n}")]);
    }
    assert_eq!(store.audit_tenants().await.expect("tenants").len(), 503, "acme, beta and 501 more");
}
on_both_backends!(a_commit_chains_each_tenants_events_in_the_order_queued);

// ------------------------------------------------------------------ locking

async fn a_locked_debtor_waits_for_the_holder_to_commit(backend: Backend) {
    let (store, database) = open(backend).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut first = store.begin().await.expect("begin");
    first.lock_debtors(&[("acme", "d-1")]).await.expect("lock");

    let (starting, started) = tokio::sync::oneshot::channel();
    let second = tokio::spawn({
        let (store, log) = (store.clone(), log.clone());
        async move {
            let _ = starting.send(());
            let mut tx = store.begin().await.expect("begin");
            tx.lock_debtors(&[("acme", "d-1")]).await.expect("lock");
            let seen = tx.get_intent("acme", "i-first").await.expect("read").is_some();
            log.lock().expect("log").push(format!("second locked; sees the first's intent: {seen}"));
            tx.commit().await.expect("commit");
        }
    });
    started.await.expect("the second transaction starts");
    if store.single_writer() {
        // One writer at a time: the second waits at `begin`, which nothing
        // outside the store shows; give it the time to get there.
        tokio::time::sleep(Duration::from_millis(300)).await;
    } else {
        wait_for_blocked_lockers(database.url(), 1).await;
    }
    first.insert_intent(&intent("i-first", "d-1", "released", None, 0));
    log.lock().expect("log").push("first commits".to_string());
    first.commit().await.expect("commit");
    second.await.expect("second transaction");
    let log = log.lock().expect("log").clone();
    assert_eq!(log, ["first commits", "second locked; sees the first's intent: true"]);
}
on_both_backends!(a_locked_debtor_waits_for_the_holder_to_commit);

async fn try_lock_reports_a_debtor_held_elsewhere(backend: Backend) {
    let (store, _database) = open(backend).await;
    let mut first = store.begin().await.expect("begin");
    first.lock_debtors(&[("acme", "d-1")]).await.expect("lock");
    assert_eq!(first.try_lock_debtors(&[("acme", "d-1")]).await.expect("try"), [true], "its own debtor");
    if store.single_writer() {
        // SQLite: no other write transaction can run meanwhile, so no debtor is held elsewhere.
        let held = first.try_lock_debtors(&[("acme", "d-1"), ("acme", "d-2")]).await.expect("try");
        assert_eq!(held, [true, true]);
        first.commit().await.expect("commit");
        return;
    }
    let mut second = store.begin().await.expect("begin");
    let held = second.try_lock_debtors(&[("acme", "d-1"), ("acme", "d-2"), ("globex", "d-1")]).await.expect("try");
    assert_eq!(held, [false, true, true], "d-1 is the first's; d-2 and globex's d-1 are free");
    assert_eq!(first.try_lock_debtors(&[("acme", "d-2")]).await.expect("try"), [false], "d-2 is now the second's");
    first.commit().await.expect("commit");
    assert_eq!(second.try_lock_debtors(&[("acme", "d-1")]).await.expect("try"), [true], "free once committed");
    second.commit().await.expect("commit");
}
on_both_backends!(try_lock_reports_a_debtor_held_elsewhere);

/// A transaction on another task that locks `debtors` in that order, then commits.
fn lock_in_the_background(store: &Store, debtors: &[(&'static str, &'static str)]) -> tokio::task::JoinHandle<()> {
    let (store, debtors) = (store.clone(), debtors.to_vec());
    tokio::spawn(async move {
        let mut tx = store.begin().await.expect("begin");
        tx.lock_debtors(&debtors).await.expect("lock");
        tx.commit().await.expect("commit");
    })
}

async fn debtors_are_locked_in_the_order_given(backend: Backend) {
    let (store, database) = open(backend).await;
    if store.single_writer() {
        // SQLite: debtor locks are the single writer's; any order, no wait.
        let mut tx = store.begin().await.expect("begin");
        tx.lock_debtors(&[("acme", "d-c"), ("acme", "d-a")]).await.expect("lock");
        tx.lock_debtors(&[("acme", "d-a"), ("acme", "d-c")]).await.expect("lock again");
        assert_eq!(tx.try_lock_debtors(&[("acme", "d-a"), ("acme", "d-c")]).await.expect("try"), [true, true]);
        tx.commit().await.expect("commit");
        return;
    }
    // [c, a] while a is held: c is taken, then the locker waits for a.
    let mut holder = store.begin().await.expect("begin");
    holder.lock_debtors(&[("acme", "d-a")]).await.expect("lock");
    let waiter = lock_in_the_background(&store, &[("acme", "d-c"), ("acme", "d-a")]);
    wait_for_blocked_lockers(database.url(), 1).await;
    let mut probe = store.begin().await.expect("begin");
    let held = probe.try_lock_debtors(&[("acme", "d-c"), ("acme", "d-b")]).await.expect("try");
    assert_eq!(held, [false, true], "d-c was locked before the wait for d-a");
    probe.commit().await.expect("commit");
    holder.commit().await.expect("commit");
    waiter.await.expect("waiter");

    // [a, c] while a is held: nothing is taken before a.
    let mut holder = store.begin().await.expect("begin");
    holder.lock_debtors(&[("acme", "d-a")]).await.expect("lock");
    let waiter = lock_in_the_background(&store, &[("acme", "d-a"), ("acme", "d-c")]);
    wait_for_blocked_lockers(database.url(), 1).await;
    let mut probe = store.begin().await.expect("begin");
    assert_eq!(probe.try_lock_debtors(&[("acme", "d-c")]).await.expect("try"), [true], "d-c waits behind d-a");
    probe.commit().await.expect("commit");
    holder.commit().await.expect("commit");
    waiter.await.expect("waiter");
}
on_both_backends!(debtors_are_locked_in_the_order_given);

// ------------------------------------------------------------------ claims and leases

async fn claim_due_takes_the_earliest_then_the_highest_priority(backend: Backend) {
    let (store, _database) = open(backend).await;
    let intents = [
        intent("c", "d-c", "deferred", Some(50), 0),
        intent("a", "d-a", "deferred", Some(100), 0),
        intent("b", "d-b", "deferred", Some(100), 2),
        intent("d", "d-d", "deferred", Some(100), 1),
        intent("g", "d-g", "deferred", Some(150), 9),
        intent("e", "d-e", "deferred", Some(300), 9), // not due at 200
        intent("f", "d-f", "released", Some(10), 9),  // not deferred
        intent("h", "d-h", "held", Some(10), 9),      // not deferred
    ];
    seed(&store, &intents, &[]).await;
    let mut order = Vec::new();
    for _ in 0..10 {
        let mut tx = store.begin().await.expect("begin");
        let claimed = tx.claim_due(200, 10_000, 1).await.expect("claim");
        tx.commit().await.expect("commit");
        let Some((tenant, id, debtor)) = claimed.into_iter().next() else { break };
        assert_eq!((tenant.as_str(), debtor), ("acme", format!("d-{id}")));
        order.push(id);
    }
    assert_eq!(order, ["c", "b", "d", "a", "g"], "earliest first, then highest priority; only what is due");
    let next_eval = |id: &'static str| {
        let store = store.clone();
        async move { store.get_intent("acme", id).await.expect("read").expect("row").next_eval_at }
    };
    assert_eq!(next_eval("c").await, Some(10_000), "claimed until 10,000");
    assert_eq!(next_eval("e").await, Some(300), "not claimed");
    assert_eq!(next_eval("f").await, Some(10), "not claimed");

    // A claim that runs out makes its intents due again.
    let mut tx = store.begin().await.expect("begin");
    let again: HashSet<String> =
        tx.claim_due(10_000, 20_000, 100).await.expect("claim").into_iter().map(|(_, id, _)| id).collect();
    tx.commit().await.expect("commit");
    let expected: HashSet<String> = ["a", "b", "c", "d", "e", "g"].map(String::from).into();
    assert_eq!(again, expected);
}
on_both_backends!(claim_due_takes_the_earliest_then_the_highest_priority);

async fn concurrent_claimers_never_get_the_same_intent(backend: Backend) {
    const DUE: usize = 200;
    let (store, _database) = open(backend).await;
    let intents: Vec<IntentRow> =
        (0..DUE).map(|n| intent(&format!("i-{n}"), &format!("d-{n}"), "deferred", Some(100), 0)).collect();
    seed(&store, &intents, &[]).await;
    let mut claimed: Vec<String> = Vec::new();
    if !store.single_writer() {
        // PostgreSQL: a claim skips the rows an open claim holds; it does not wait for them.
        let mut first = store.begin().await.expect("begin");
        let one = first.claim_due(200, 10_000, 10).await.expect("claim");
        let mut second = store.begin().await.expect("begin");
        let two = tokio::time::timeout(Duration::from_secs(30), second.claim_due(200, 10_000, 10))
            .await
            .expect("a claim waited for rows another claim holds")
            .expect("claim");
        assert_eq!((one.len(), two.len()), (10, 10));
        second.commit().await.expect("commit");
        first.commit().await.expect("commit");
        claimed.extend(one.into_iter().chain(two).map(|(_, id, _)| id));
    }
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let mut tx = store.begin().await.expect("begin");
                    let batch = tx.claim_due(200, 10_000, 7).await.expect("claim");
                    tx.commit().await.expect("commit");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|(_, id, _)| id));
                }
            })
        })
        .collect();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("claimer"));
    }
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(unique.len(), DUE, "every due intent claimed");
    assert_eq!(claimed.len(), DUE, "none claimed twice");
}
on_both_backends!(concurrent_claimers_never_get_the_same_intent);

async fn a_leased_dispatch_is_offered_again_only_when_its_lease_expires(backend: Backend) {
    let (store, _database) = open(backend).await;
    let elsewhere = |id: &str, tenant: &str, channel: &str| DispatchRow {
        tenant: tenant.into(),
        channel: channel.parse().expect("a channel"),
        ..dispatch(id, "ready", 9, 1, None)
    };
    let dispatches = [
        dispatch("r1", "ready", 0, 10, None),
        dispatch("r2", "ready", 5, 20, None),
        dispatch("r3", "ready", 5, 5, None),
        dispatch("l1", "leased", 0, 1, Some(1000)),
        dispatch("l2", "leased", 0, 2, Some(500)),
        dispatch("k", "acked", 9, 1, None),
        dispatch("w", "withdrawn", 9, 1, None),
        elsewhere("m", "acme", "email"),
        elsewhere("o", "globex", "sms"),
    ];
    seed(&store, &[], &dispatches).await;
    let mut tx = store.begin().await.expect("begin");
    let acme = Some("acme");
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 100, 10).await, ["r3", "r2", "r1"], "ready: priority, then age");
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 499, 10).await, ["r3", "r2", "r1"], "no lease expired yet");
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 500, 10).await, ["l2", "r3", "r2", "r1"], "expired first");
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 2000, 10).await, ["l2", "l1", "r3", "r2", "r1"]);
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 2000, 2).await, ["l2", "l1"], "the limit counts both kinds");
    assert_eq!(open_ids(&mut tx, None, &["sms"], 100, 10).await, ["o", "r3", "r2", "r1"], "any tenant");
    assert_eq!(open_ids(&mut tx, acme, &["sms", "email"], 100, 10).await, ["m", "r3", "r2", "r1"]);
    tx.commit().await.expect("commit");

    // Leasing r3 until 700: not offered again before then, offered again from then on.
    let mut tx = store.begin().await.expect("begin");
    let mut r3 = tx.get_dispatch("r3").await.expect("read").expect("r3");
    r3.state = "leased".parse().expect("a known word");
    r3.lease_expires_at = Some(700);
    r3.attempt += 1;
    tx.update_dispatch(&r3).await.expect("lease");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 699, 10).await, ["l2", "r2", "r1"]);
    assert_eq!(open_ids(&mut tx, acme, &["sms"], 700, 10).await, ["l2", "r3", "r2", "r1"]);
}
on_both_backends!(a_leased_dispatch_is_offered_again_only_when_its_lease_expires);

async fn two_leasers_are_never_offered_the_same_dispatch(backend: Backend) {
    let (store, _database) = open(backend).await;
    let ready: Vec<DispatchRow> = (0..20).map(|n| dispatch(&format!("x-{n:02}"), "ready", 0, n, None)).collect();
    seed(&store, &[], &ready).await;
    let (one, two) = if store.single_writer() {
        // One writer: the first leases and commits before the second begins.
        let mut first = store.begin().await.expect("begin");
        let (one, _) = first.open_dispatches(Some("acme"), &[Channel::Sms], 100, 8).await.expect("open");
        for row in &one {
            let leased = DispatchRow {
                state: "leased".parse().expect("a dispatch state"),
                lease_expires_at: Some(1000),
                ..row.clone()
            };
            first.update_dispatch(&leased).await.expect("lease");
        }
        first.commit().await.expect("commit");
        let mut second = store.begin().await.expect("begin");
        (one, second.open_dispatches(Some("acme"), &[Channel::Sms], 100, 20).await.expect("open").0)
    } else {
        // PostgreSQL: the second skips the rows the first holds; it does not wait for them.
        let mut first = store.begin().await.expect("begin");
        let (one, _) = first.open_dispatches(Some("acme"), &[Channel::Sms], 100, 8).await.expect("open");
        let mut second = store.begin().await.expect("begin");
        let two = tokio::time::timeout(
            Duration::from_secs(30),
            second.open_dispatches(Some("acme"), &[Channel::Sms], 100, 20),
        )
        .await
        .expect("a leaser waited for rows another leaser holds")
        .expect("open")
        .0;
        (one, two)
    };
    let one: HashSet<String> = one.into_iter().map(|d| d.dispatch_id).collect();
    let two: HashSet<String> = two.into_iter().map(|d| d.dispatch_id).collect();
    assert_eq!((one.len(), two.len()), (8, 12));
    assert!(one.is_disjoint(&two), "offered to both: {:?}", one.intersection(&two).collect::<Vec<_>>());
}
on_both_backends!(two_leasers_are_never_offered_the_same_dispatch);
