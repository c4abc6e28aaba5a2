//! Large tables to measure against: a history of other debtors' finished
//! intents and contacts (`submit --prefill`), and a long audit chain (`audit-fill`).

use std::time::Instant;

use ventana::audit::AuditEvent;
use ventana::store::Store;

use crate::measure::progress;
use crate::target::Bench;

/// Fills `intents` and `contact_events` with `rows` finished intents of other
/// debtors, in bulk statements run behind the service's back.
pub async fn history(bench: &Bench, rows: usize) -> anyhow::Result<()> {
    let store = bench.store();
    let postgres = bench.database_url.starts_with("postgres");
    let chunk = 1_000_000;
    let bar = progress(rows, "prefill");
    for start in (0..rows).step_by(chunk) {
        let end = (start + chunk).min(rows);
        let last = end - 1;
        let series = if postgres {
            format!("WITH series(i) AS (SELECT generate_series({start}::bigint, {last}::bigint)) ")
        } else {
            format!("WITH RECURSIVE series(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM series WHERE i < {last}) ")
        };
        let intents = "INSERT INTO intents (tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, \
             body_hash, status, next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at) \
             SELECT 'bench', 'fill-' || i, 'fill-debtor-' || i, NULL, 'sms', 'PE', 0, '{}', 'h', 'done', NULL, '{}', \
             NULL, 1, 'delivered', 0, 0 FROM series";
        let events = "INSERT INTO contact_events (tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id) \
             SELECT 'bench', 'fill-debtor-' || i, NULL, 'sms', 1764082800000 - i, 'delivered', 'fill-' || i FROM series";
        for sql in [intents, events] {
            store.execute_unchecked(&format!("{series}{sql}")).await?;
        }
        if postgres {
            store.execute_unchecked("ANALYZE intents; ANALYZE contact_events").await?;
        }
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Appends `events` decision-like audit events in transactions of 10,000.
pub async fn audit_log(events: usize, database_url: &str) -> anyhow::Result<()> {
    let store = Store::connect(database_url).await?;
    let started = Instant::now();
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00-05:00")?.to_utc();
    let mut written = 0;
    while written < events {
        let mut tx = store.begin().await?;
        for n in written..(written + 10_000).min(events) {
            let at = start + chrono::Duration::seconds(n as i64 * 10);
            tx.audit(AuditEvent {
                tenant: "bench".into(),
                at: at.timestamp_millis(),
                kind: if n % 2 == 0 { "submitted" } else { "released" }.into(),
                intent_id: Some(format!("intent-{}", n / 2)),
                debtor_id: Some(format!("debtor-{}", n % 5_000)),
                debt_id: Some(format!("debt-{}", n % 7_000)),
                channel: Some("call".into()),
                jurisdiction: Some("PE".into()),
                time_zone: Some("America/Lima".into()),
                local_time: Some(at.with_timezone(&chrono_tz::America::Lima).format("%Y-%m-%d %H:%M:%S").to_string()),
                decision: (n % 2 == 1).then(|| "release".to_string()),
                rule_ids: (n % 2 == 1).then(|| "pe-art62b-hours".to_string()),
                citations: (n % 2 == 1).then(|| "Ley 29571, art. 62(b)".to_string()),
                rules_version: Some("PE@d7ca648ecd08".into()),
                detail: r#"{"decision":{"decision":"release","reasons":[{"rule":"pe-art62b-hours"}]}}"#.into(),
                ..Default::default()
            });
        }
        tx.commit().await?;
        written = (written + 10_000).min(events);
    }
    println!("appended {events} audit events in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
