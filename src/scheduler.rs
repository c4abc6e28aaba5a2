//! The wake-up loop: sleeps until the earliest deferred intent is due (or a
//! submission says something may be due sooner), then re-evaluates what is
//! due. No busy polling. It reports its own readiness: a scheduler whose
//! rounds keep failing, or whose due backlog keeps growing, is NOT_SERVING
//! under the health service name [`READINESS_SERVICE`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::app::{App, instant, tell_replicas};

/// The `grpc.health.v1` service name that says whether the scheduler makes
/// progress (use it as the readiness check).
pub const READINESS_SERVICE: &str = "ventana.v1.Scheduler";
/// Failed rounds in a row (about one a second) after which the scheduler is not ready.
const FAILED_ROUNDS_NOT_READY: u32 = 3;
/// How overdue the oldest due intent may be before the scheduler is not ready.
const MAX_BACKLOG_SECONDS: i64 = 300;
/// Longest a round may take before it counts as failed.
const ROUND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How often, in a surge, the earliest due instant is read for readiness.
const BACKLOG_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Intents re-evaluated per round.
const BATCH: i64 = 256;
/// Longest sleep with nothing due, so a database shared with other replicas
/// is looked at now and then.
const IDLE_SLEEP_SECONDS: i64 = 30;

/// What the readiness check reports, from the last rounds.
struct Readiness {
    reporter: HealthReporter,
    failed_rounds: u32,
    reported: Option<ServingStatus>,
}

impl Readiness {
    /// Reports the scheduler after a round: `oldest_due` is the earliest
    /// instant a deferred intent waits for (`None` when unknown or none).
    async fn report(&mut self, round_ok: bool, oldest_due: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        self.failed_rounds = if round_ok { 0 } else { self.failed_rounds.saturating_add(1) };
        let backlog = oldest_due.map_or(0, |due| (now - due).num_seconds().max(0));
        metrics::gauge!(crate::telemetry::DUE_BACKLOG).set(backlog as f64);
        let stalled = self.failed_rounds >= FAILED_ROUNDS_NOT_READY || backlog > MAX_BACKLOG_SECONDS;
        let status = if stalled { ServingStatus::NotServing } else { ServingStatus::Serving };
        if self.reported != Some(status) {
            if stalled {
                tracing::error!(
                    failed_rounds = self.failed_rounds,
                    backlog_seconds = backlog,
                    "scheduler not making progress: not ready"
                );
            } else {
                tracing::info!("scheduler ready");
            }
            self.reporter.set_service_status(READINESS_SERVICE, status).await;
            self.reported = Some(status);
        }
    }
}

/// The earliest due instant as last read, and when (wall time and the
/// service's clock).
#[derive(Clone, Copy)]
struct BacklogRead {
    wall: std::time::Instant,
    clock: DateTime<Utc>,
    due: Option<DateTime<Utc>>,
}

/// Runs until `shutdown` turns true, reporting readiness to `reporter`.
pub async fn run(app: Arc<App>, reporter: HealthReporter, mut shutdown: watch::Receiver<bool>) {
    let mut readiness = Readiness { reporter, failed_rounds: 0, reported: None };
    let mut backlog_read: Option<BacklogRead> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        // A round stuck on the database (a lock never released) is a stalled
        // scheduler too: give it up, so readiness can say so. Its
        // transactions roll back; the intents are claimed again later.
        let round = match tokio::time::timeout(ROUND_TIMEOUT, app.wake_due(BATCH)).await {
            Ok(round) => round,
            Err(_) => {
                tracing::error!(seconds = ROUND_TIMEOUT.as_secs(), "scheduler round took too long; abandoned");
                Err(crate::app::AppError::FailedPrecondition("scheduler round timed out".into()))
            }
        };
        // In a surge (full rounds one after another) the backlog is read at
        // most once a second of wall time and of the service's clock: the
        // earliest due instant is an index walk each time. After any other
        // round, or a clock that jumped, it is read afresh.
        let now = app.clock.now();
        let surging = matches!(round, Ok(n) if n as i64 >= BATCH);
        let fresh = backlog_read.is_some_and(|read| {
            surging
                && read.wall.elapsed() < BACKLOG_READ_EVERY
                && (read.clock..read.clock + Duration::seconds(1)).contains(&now)
        });
        if !fresh {
            let due = app.store.next_due().await.ok().flatten().and_then(|ms| instant(ms).ok());
            backlog_read = Some(BacklogRead { wall: std::time::Instant::now(), clock: now, due });
        }
        readiness.report(round.is_ok(), backlog_read.and_then(|read| read.due), now).await;
        match round {
            // A full batch: more may be due at once.
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                metrics::counter!(crate::telemetry::DATABASE_ERRORS).increment(1);
                tracing::warn!(error = %e, "scheduler round failed; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    stopping = shutdown.changed() => if stopping.is_err() { return },
                }
                continue;
            }
        }
        let now = app.clock.now();
        let idle_until = now + Duration::seconds(IDLE_SLEEP_SECONDS);
        let until = match app.store.next_due().await {
            Ok(Some(due)) => instant(due).map_or(idle_until, |due| due.min(idle_until)),
            Ok(None) => idle_until,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due instant");
                now + Duration::seconds(1)
            }
        };
        tokio::select! {
            _ = app.clock.sleep_until(until) => {}
            _ = app.wakeup.notified() => {}
            // The service is stopping (or is gone).
            stopping = shutdown.changed() => if stopping.is_err() { return },
        }
    }
}

/// Wakes this replica's scheduler whenever another replica (or this one)
/// says something may be due sooner (`Store::listen_for_wakeups`).
pub async fn listen_for_wakeups(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    app.store.listen_for_wakeups(&app.wakeup, shutdown).await;
}

/// Tells the other replicas (`Store::notify_wakeup`) whenever this one
/// wakes (`App::wake`), one at a time: the wake-ups that come while a
/// NOTIFY is sent share the next, so a burst of commits costs one or two,
/// and no commit waits for them. A NOTIFY that fails is tried again a
/// second later. Runs until `stop` (sent once the tasks that serve requests
/// have ended), then tells them once more, for any wake-up still pending;
/// from then on each wake-up sends its own (a commit that was still
/// finishing, in a group-commit writer or a Dispatch stream).
pub async fn notify_replicas(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let stopped = tokio::select! {
            _ = app.replicas.notified() => false,
            // Sent, or the service is gone.
            _ = stop.wait_for(|stop| *stop) => true,
        };
        if stopped {
            // Set before the last NOTIFY: a wake-up that reads it unset came
            // from a commit this NOTIFY follows.
            app.replicas_unattended.store(true, Ordering::Release);
            tell_replicas(&app.store).await;
            return;
        }
        if !tell_replicas(&app.store).await {
            app.replicas.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        }
    }
}
