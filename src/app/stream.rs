//! Adapters' streams (`DispatchService.Dispatch`): contacts handed to a
//! waiting adapter instead of polled for. Each stream has credit, how many
//! more contacts it may be sent. A due intent the scheduler releases is leased
//! to a stream with credit in the same transaction (`Handoff`); what is ready
//! or whose lease expired, each stream leases itself as `Lease` does.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use tokio::sync::{Notify, mpsc};

use super::{App, Submission, millis};
use crate::clock::Clock;
use crate::domain::Channel;
use crate::store::DispatchRow;

/// A contact leased to an adapter.
pub type Leased = (DispatchRow, Submission);

/// Most credit a stream may hold unspent: bounds what the service leases
/// and buffers for an adapter that grants without reading.
pub const MAX_UNSPENT_CREDIT: u32 = 10_000;
/// Most contacts one lease of a stream takes.
const LEASE_AT_ONCE: u32 = 500;
/// How often an idle stream with credit looks for expired leases to offer
/// again (on the service's clock).
const RECHECK_SECONDS: i64 = 1;

/// One adapter's open stream, as the scheduler sees it.
pub struct Waiter {
    tenant: String,
    channels: Vec<Channel>,
    lease: Duration,
    credit: AtomicU32,
    out: mpsc::UnboundedSender<Vec<Leased>>,
    /// Woken when the adapter grants credit or the service closes the streams.
    changed: Notify,
    /// Set when the service closes the streams; `end` wakes the adapter's side.
    ended: AtomicBool,
    end: Notify,
}

impl Waiter {
    /// Takes up to `n` credit; returns how much it took.
    fn take(&self, n: u32) -> u32 {
        let taken = self.credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some(c - c.min(n)));
        taken.map_or(0, |before| before.min(n))
    }

    /// Gives back credit taken but not used (no wake-up: nothing new is ready).
    fn refund(&self, n: u32) {
        let _ = self.credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some(c.saturating_add(n)));
    }

    /// Adds credit the adapter granted, unless the unspent credit would pass
    /// `MAX_UNSPENT_CREDIT`; whether it did.
    fn grant(&self, n: u32) -> bool {
        let added = self.credit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            c.checked_add(n).filter(|total| *total <= MAX_UNSPENT_CREDIT)
        });
        self.changed.notify_one();
        added.is_ok()
    }

    fn wants(&self, tenant: &str, channel: Channel) -> bool {
        self.tenant == tenant && self.channels.contains(&channel) && !self.out.is_closed()
    }
}

/// The streams open on this replica.
#[derive(Default)]
pub struct Waiters {
    open: Mutex<Vec<Arc<Waiter>>>,
    /// Where the next search starts, so streams share the contacts.
    next: AtomicUsize,
    closed: AtomicBool,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Waiter>>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One credit of a live stream of `tenant` on `channel`, if any has some.
    pub(super) fn take_one(&self, tenant: &str, channel: Channel) -> Option<TakenCredit> {
        let mut open = self.lock();
        open.retain(|w| !w.out.is_closed());
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..open.len())
            .map(|i| &open[(start + i) % open.len()])
            .find(|w| w.wants(tenant, channel) && w.take(1) == 1)
            .map(|w| TakenCredit { waiter: w.clone(), spent: false })
    }

    /// Ends every stream and refuses new ones (the service is stopping).
    pub fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        for waiter in self.lock().drain(..) {
            waiter.ended.store(true, Ordering::Release);
            waiter.changed.notify_one();
            waiter.end.notify_waiters();
        }
    }
}

/// One credit taken from a stream for a contact: given back when dropped,
/// on every path where the contact is not delivered (`Handoff::deliver`).
pub(super) struct TakenCredit {
    waiter: Arc<Waiter>,
    spent: bool,
}

impl TakenCredit {
    /// The lease the stream asked for.
    pub(super) fn lease(&self) -> Duration {
        self.waiter.lease
    }

    /// Spends the credit: its contact is sent to the stream.
    fn spend(mut self) -> Arc<Waiter> {
        self.spent = true;
        self.waiter.clone()
    }
}

impl Drop for TakenCredit {
    fn drop(&mut self) {
        if !self.spent {
            self.waiter.refund(1);
        }
    }
}

/// Contacts leased to streams in a transaction not yet committed: sent once
/// it commits; dropped without `deliver`, their credit goes back.
#[derive(Default)]
pub(super) struct Handoff(Vec<(TakenCredit, Leased)>);

impl Handoff {
    /// Adds a contact leased with `credit`.
    pub(super) fn push(&mut self, credit: TakenCredit, leased: Leased) {
        self.0.push((credit, leased));
    }

    /// Sends each stream its contacts, in one message per stream, highest
    /// priority first. A stream closed meanwhile loses nothing: the leases
    /// expire and are offered again.
    pub(super) fn deliver(self) {
        let mut items = self.0;
        items.sort_by_key(|(_, (dispatch, _))| std::cmp::Reverse(dispatch.priority));
        let mut batches: Vec<(Arc<Waiter>, Vec<Leased>)> = Vec::new();
        for (credit, leased) in items {
            let waiter = credit.spend();
            match batches.iter_mut().find(|(w, _)| Arc::ptr_eq(w, &waiter)) {
                Some((_, batch)) => batch.push(leased),
                None => batches.push((waiter, vec![leased])),
            }
        }
        for (waiter, batch) in batches {
            let _ = waiter.out.send(batch);
        }
    }
}

/// What the adapter's side of a stream reads: the contacts leased to it.
pub struct AdapterStream {
    waiter: Arc<Waiter>,
    contacts: mpsc::UnboundedReceiver<Vec<Leased>>,
    clock: Clock,
}

/// Grants credit to a stream (the adapter's later requests).
#[derive(Clone)]
pub struct Credit(Arc<Waiter>);

impl Credit {
    /// Adds `n`; false (nothing added) past `MAX_UNSPENT_CREDIT`.
    pub fn grant(&self, n: u32) -> bool {
        self.0.grant(n)
    }
}

impl AdapterStream {
    pub fn credit(&self) -> Credit {
        Credit(self.waiter.clone())
    }

    /// The next contacts leased to this stream; `None` once the service
    /// closes it. A contact whose window or lease ended while it waited to be
    /// sent is not sent (its lease expires; it is checked again) and its
    /// credit goes back.
    pub async fn next(&mut self) -> Option<Vec<Leased>> {
        loop {
            let end = self.waiter.end.notified();
            tokio::pin!(end);
            end.as_mut().enable();
            if self.waiter.ended.load(Ordering::Acquire) {
                return None;
            }
            let batch = tokio::select! {
                batch = self.contacts.recv() => batch?,
                _ = end => return None,
            };
            let now = millis(self.clock.now());
            let (fresh, late): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(d, _)| d.may_leave_at(now));
            self.waiter.refund(u32::try_from(late.len()).unwrap_or(u32::MAX));
            if !fresh.is_empty() {
                return Some(fresh);
            }
        }
    }
}

impl App {
    /// Opens a stream for an adapter of `tenant` on `channels` with `credit`;
    /// `None` when the service is stopping.
    pub fn open_stream(
        self: &Arc<Self>,
        tenant: &str,
        channels: Vec<Channel>,
        lease: Duration,
        credit: u32,
    ) -> Option<AdapterStream> {
        let (out, contacts) = mpsc::unbounded_channel();
        let waiter = Arc::new(Waiter {
            tenant: tenant.to_string(),
            channels,
            lease,
            credit: AtomicU32::new(credit),
            out,
            changed: Notify::new(),
            ended: AtomicBool::new(false),
            end: Notify::new(),
        });
        {
            let mut open = self.waiters.lock();
            if self.waiters.closed.load(Ordering::Acquire) {
                return None;
            }
            open.push(waiter.clone());
        }
        tokio::spawn(feed(self.clone(), waiter.clone()));
        Some(AdapterStream { waiter, contacts, clock: self.clock.clone() })
    }
}

/// Leases what is ready or whose lease expired to `waiter` while it has
/// credit, then waits for a release, a grant, the next recheck or the end.
/// A grant alone leases only when something may be waiting (the last lease
/// used all its credit, or a release or recheck came since): the scheduler
/// hands due contacts over itself, and a lease that finds nothing is a write
/// transaction wasted.
async fn feed(app: Arc<App>, waiter: Arc<Waiter>) {
    let mut maybe_waiting = true;
    loop {
        let released = app.released.notified();
        let changed = waiter.changed.notified();
        tokio::pin!(released, changed);
        released.as_mut().enable();
        changed.as_mut().enable();
        if waiter.ended.load(Ordering::Acquire) || waiter.out.is_closed() {
            return;
        }
        let wanted = if maybe_waiting { waiter.take(LEASE_AT_ONCE) } else { 0 };
        if wanted > 0 {
            match app.lease(Some(&waiter.tenant), &waiter.channels, i64::from(wanted), waiter.lease).await {
                Ok(items) => {
                    let got = u32::try_from(items.len()).unwrap_or(u32::MAX);
                    waiter.refund(wanted.saturating_sub(got));
                    if !items.is_empty() && waiter.out.send(items).is_err() {
                        return;
                    }
                    // A full lease: more may be waiting.
                    if got == wanted {
                        continue;
                    }
                    maybe_waiting = false;
                }
                Err(e) => {
                    waiter.refund(wanted);
                    tracing::warn!(tenant = %waiter.tenant, error = %e, "stream lease failed; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let recheck = app.clock.now() + Duration::seconds(RECHECK_SECONDS);
        tokio::select! {
            _ = released => maybe_waiting = true,
            _ = changed => {}
            _ = app.clock.sleep_until(recheck) => maybe_waiting = true,
            _ = waiter.out.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DispatchState;

    fn open(waiters: &Waiters, credit: u32) -> (Arc<Waiter>, mpsc::UnboundedReceiver<Vec<Leased>>) {
        let (out, contacts) = mpsc::unbounded_channel();
        let waiter = Arc::new(Waiter {
            tenant: "acme".into(),
            channels: vec![Channel::Sms],
            lease: Duration::seconds(60),
            credit: AtomicU32::new(credit),
            out,
            changed: Notify::new(),
            ended: AtomicBool::new(false),
            end: Notify::new(),
        });
        waiters.lock().push(waiter.clone());
        (waiter, contacts)
    }

    fn leased() -> Leased {
        let body = r#"{"intent":{"tenant":"acme","intent_id":"i-1","debtor_id":"d-1","channel":"sms","party":"debtor","stage":"extrajudicial","jurisdiction":"PE"},"priority":0,"payload":{}}"#;
        let dispatch = DispatchRow {
            dispatch_id: DispatchRow::new_id(),
            tenant: "acme".into(),
            intent_id: "i-1".into(),
            debtor_id: "d-1".into(),
            channel: Channel::Sms,
            priority: 0,
            released_at: 0,
            not_after: 60_000,
            state: DispatchState::Leased,
            lease_expires_at: Some(60_000),
            attempt: 1,
        };
        (dispatch, Submission::from_json(body).expect("a valid body"))
    }

    #[test]
    fn a_credit_comes_back_unless_its_contact_is_delivered() {
        let waiters = Waiters::default();
        let (waiter, mut contacts) = open(&waiters, 2);
        let credit = || waiter.credit.load(Ordering::Acquire);
        let take = || waiters.take_one("acme", Channel::Sms).expect("a stream with credit");
        assert!(waiters.take_one("other", Channel::Sms).is_none(), "another tenant's stream");
        assert!(waiters.take_one("acme", Channel::Call).is_none(), "a channel the stream did not ask for");
        // Taken, then a return before the handoff (a rate limit, a read error): back.
        drop(take());
        assert_eq!(credit(), 2);
        // Handed over, then the transaction fails and the handoff is dropped: back.
        let mut handoff = Handoff::default();
        handoff.push(take(), leased());
        assert_eq!(credit(), 1);
        drop(handoff);
        assert_eq!(credit(), 2);
        // Handed over and delivered: spent, and the contact is on its way.
        let mut handoff = Handoff::default();
        handoff.push(take(), leased());
        handoff.deliver();
        assert_eq!(credit(), 1);
        assert_eq!(contacts.try_recv().map(|batch| batch.len()), Ok(1));
    }
}
