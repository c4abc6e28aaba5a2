//! Group commit: concurrent `Submit` (or `Ack`) calls share one transaction,
//! so a burst of N calls costs one durable commit (one fsync) instead of N.
//! A caller waits for the group in progress and the groups queued ahead of
//! it (at most `QUEUE` calls), then its own.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::app::{Ack, App, AppError, AppResult, Submission};
use crate::store::{IntentRow, StoreError};

/// Most calls in one shared transaction.
const MAX_GROUP: usize = 128;
/// Calls waiting for a group, at most; callers beyond it wait to enqueue.
const QUEUE: usize = 4 * MAX_GROUP;

/// A call that can share a transaction with others of its kind.
pub trait Grouped: Clone + Send + Sync + 'static {
    /// Runs `calls` in one transaction: one result each, or the error that
    /// failed the transaction.
    fn run_all(app: &App, calls: &[Self]) -> impl Future<Output = AppResult<Vec<AppResult<IntentRow>>>> + Send;
}

impl Grouped for Submission {
    fn run_all(app: &App, calls: &[Self]) -> impl Future<Output = AppResult<Vec<AppResult<IntentRow>>>> + Send {
        app.submit(calls)
    }
}

impl Grouped for Ack {
    fn run_all(app: &App, calls: &[Self]) -> impl Future<Output = AppResult<Vec<AppResult<IntentRow>>>> + Send {
        app.ack_all(calls)
    }
}

type Reply = oneshot::Sender<AppResult<IntentRow>>;

/// The queue in front of the writer of one kind of call.
pub struct GroupQueue<T> {
    sender: mpsc::Sender<(T, Reply)>,
}

impl<T> Clone for GroupQueue<T> {
    fn clone(&self) -> Self {
        GroupQueue { sender: self.sender.clone() }
    }
}

impl<T: Grouped> GroupQueue<T> {
    /// Starts the queue's one writer; it stops once every clone of the queue
    /// is dropped. One, on PostgreSQL too: each group holds its tenants'
    /// chain heads from its audit append to its commit, so groups that share
    /// a tenant commit one after another anyway, and more writers only split
    /// the calls into smaller groups that then wait for each other (Submit
    /// measured 17–26% faster with one writer than with four for one tenant,
    /// and faster still for 8 or 64: docs/PERFORMANCE.md). The cost: while a group
    /// waits for a debtor's lock that another transaction holds, the calls
    /// queued behind it wait too.
    pub fn start(app: Arc<App>) -> GroupQueue<T> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_groups(app, receiver));
        GroupQueue { sender }
    }

    /// Runs one call in the next group; its own result.
    pub async fn run(&self, call: T) -> AppResult<IntentRow> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((call, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> AppError {
    AppError::Store(StoreError::ShuttingDown)
}

/// Takes whatever is queued (up to `MAX_GROUP`) and runs it in one transaction.
async fn write_groups<T: Grouped>(app: Arc<App>, mut receiver: mpsc::Receiver<(T, Reply)>) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (calls, replies): (Vec<T>, Vec<Reply>) = group.into_iter().unzip();
        // The group runs in a task of its own, so that a panic in it fails
        // this group's calls (its transaction rolled back) and not the writer,
        // which every later call of this kind needs.
        let results = match tokio::spawn(run_group(app.clone(), calls)).await {
            Ok(results) => results,
            // Cancelled: the runtime is shutting down.
            Err(stopping) if stopping.is_cancelled() => replies.iter().map(|_| Err(stopped())).collect(),
            Err(fault) => {
                tracing::error!(error = %fault, calls = replies.len(), "a group commit failed inside Ventana");
                let fault =
                    || Err(AppError::Internal("an internal fault failed this call; nothing was stored; retry".into()));
                replies.iter().map(|_| fault()).collect()
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Runs `calls` in one transaction; if it fails, each call alone, so that
/// one caller's failure never becomes another's.
async fn run_group<T: Grouped>(app: Arc<App>, calls: Vec<T>) -> Vec<AppResult<IntentRow>> {
    match T::run_all(&app, &calls).await {
        Ok(results) => results,
        Err(_) if calls.len() > 1 => {
            let mut results = Vec::with_capacity(calls.len());
            for call in &calls {
                results.push(match T::run_all(&app, std::slice::from_ref(call)).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| Err(stopped())),
                    Err(e) => Err(e),
                });
            }
            results
        }
        Err(e) => vec![Err(e)],
    }
}
