//! The wake-up loop: sleeps until the earliest deferred intent is due (or a
//! submission says something may be due sooner), then re-evaluates what is
//! due. No busy polling.

use std::sync::Arc;

use chrono::Duration;
use tokio::sync::watch;

use crate::lifecycle::{App, instant};

/// Intents re-evaluated per round.
const BATCH: i64 = 256;
/// Longest sleep with nothing due, so a database shared with other replicas
/// is looked at now and then.
const IDLE_SLEEP_SECONDS: i64 = 30;

/// Runs until `shutdown` turns true.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match app.wake_due(BATCH).await {
            // A full batch: more may be due at once.
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                metrics::counter!(crate::telemetry::DATABASE_ERRORS).increment(1);
                tracing::warn!(error = %e, "scheduler round failed; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        let now = app.clock.now();
        let idle_until = now + Duration::seconds(IDLE_SLEEP_SECONDS);
        let until = match app.store.next_due().await {
            Ok(Some(due)) => instant(due).min(idle_until),
            Ok(None) => idle_until,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due instant");
                now + Duration::seconds(1)
            }
        };
        tokio::select! {
            _ = app.clock.sleep_until(until) => {}
            _ = app.wakeup.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// On PostgreSQL: wakes this replica's scheduler whenever another replica
/// (or this one) says something may be due sooner. Reconnects on errors.
pub async fn listen_for_wakeups(app: Arc<App>, pool: sqlx::PgPool, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for wake-ups; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen("ventana_wakeup").await {
            tracing::warn!(error = %e, "cannot LISTEN ventana_wakeup; retrying in 1 s");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(_) => app.wakeup.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "wake-up listener lost its connection");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
