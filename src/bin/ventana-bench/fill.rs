//! Large tables to measure against, written through the store's `Tx` like
//! every other row: a history of other debtors' finished intents and contacts
//! (`submit --prefill`), and a long audit chain (`audit-fill`).

use std::time::Instant;

use ventana::audit::AuditEvent;
use ventana::domain::{AckOutcome, AuditEventKind, Channel, IntentStatus, Outcome};
use ventana::store::{EventRow, IntentRow, Store};

use crate::measure::progress;

/// Intents (and as many contact events) per fill transaction.
const FILL_PER_TX: usize = 10_000;
/// The newest filled contact: `WEEKDAY_MORNING` in Unix milliseconds; each
/// further one is a millisecond older.
const FILL_NEWEST_AT: i64 = 1_764_082_800_000;

/// Stores `rows` finished (delivered) intents of tenant `bench`, each for a
/// debtor of its own with one contact event, so tables are large but no
/// benchmark debtor's history grows; then refreshes the planner's statistics.
pub async fn history(store: &Store, rows: usize) -> anyhow::Result<()> {
    let bar = progress(rows, "prefill");
    for start in (0..rows).step_by(FILL_PER_TX) {
        let end = (start + FILL_PER_TX).min(rows);
        let mut tx = store.begin().await?;
        for i in start..end {
            let (intent_id, debtor_id) = (format!("fill-{i}"), format!("fill-debtor-{i}"));
            let at = FILL_NEWEST_AT - i as i64;
            tx.insert_event(
                "bench",
                &debtor_id,
                EventRow { outcome: Outcome::Delivered, ..EventRow::released(None, Channel::Sms, at, &intent_id) },
            );
            tx.insert_intent(&IntentRow {
                tenant: "bench".into(),
                intent_id,
                debtor_id,
                debt_id: None,
                channel: Channel::Sms,
                jurisdiction: "PE".into(),
                priority: 0,
                body: "{}".into(),
                body_hash: "h".into(),
                status: IntentStatus::Done,
                next_eval_at: None,
                decision: "{}".into(),
                dispatch_id: None,
                attempt: 1,
                outcome: Some(AckOutcome::Delivered),
                created_at: 0,
                updated_at: 0,
            });
        }
        tx.commit().await?;
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    store.analyze().await?;
    Ok(())
}

/// Appends `events` decision-like audit events in transactions of 10,000.
pub async fn audit_chain(events: usize, database_url: &str) -> anyhow::Result<()> {
    let store = Store::connect(database_url).await?;
    let started = Instant::now();
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00-05:00")?.to_utc();
    let mut written = 0;
    while written < events {
        let mut tx = store.begin().await?;
        for n in written..(written + 10_000).min(events) {
            let at = start + chrono::Duration::seconds(n as i64 * 10);
            let kind = if n % 2 == 0 { AuditEventKind::Submitted } else { AuditEventKind::Released };
            let detail = r#"{"decision":{"decision":"release","reasons":[{"rule":"pe-art62b-hours"}]}}"#;
            tx.audit(AuditEvent {
                intent_id: Some(format!("intent-{}", n / 2)),
                debtor_id: Some(format!("debtor-{}", n % 5_000)),
                debt_id: Some(format!("debt-{}", n % 7_000)),
                channel: Some(Channel::Call),
                jurisdiction: Some("PE".into()),
                time_zone: Some("America/Lima".into()),
                local_time: Some(at.with_timezone(&chrono_tz::America::Lima).format("%Y-%m-%d %H:%M:%S").to_string()),
                decision: (n % 2 == 1).then(|| "release".to_string()),
                rule_ids: (n % 2 == 1).then(|| "pe-art62b-hours".to_string()),
                citations: (n % 2 == 1).then(|| "Ley 29571, art. 62(b)".to_string()),
                rules_version: Some("PE@d7ca648ecd08".into()),
                ..AuditEvent::new("bench", at.timestamp_millis(), kind, detail.into())
            });
        }
        tx.commit().await?;
        written = (written + 10_000).min(events);
    }
    println!("appended {events} audit events in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
