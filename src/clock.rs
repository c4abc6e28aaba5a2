//! "Now", injectable: the system clock in production, a manual clock that
//! tests set and advance. Nothing else in Ventana reads the time.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// The source of the current instant.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<ManualClock>),
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    changed: Notify,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: Mutex::new(start), changed: Notify::new() })
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves the clock to `t` and wakes everything sleeping on it.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = t;
        self.changed.notify_waiters();
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.set(self.now() + by);
    }
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => DateTime::<Utc>::from(SystemTime::now()),
            Clock::Manual(clock) => clock.now(),
        }
    }

    /// Sleeps until the clock reads `t` or later.
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        match self {
            Clock::System => {
                let wait = (t - self.now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
            Clock::Manual(clock) => loop {
                let changed = clock.changed.notified();
                if clock.now() >= t {
                    return;
                }
                changed.await;
            },
        }
    }
}
