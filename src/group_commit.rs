//! Group commit: concurrent `Submit` calls share one transaction, so a
//! burst of N submissions costs one durable commit (one fsync) instead of N.
//! A caller waits at most for the group in progress and then its own.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::lifecycle::{App, LifecycleError, LifecycleResult, Submission};
use crate::store::{IntentRow, Store, StoreError};

/// Most submissions in one shared transaction.
const MAX_GROUP: usize = 128;
/// Submissions waiting for a group, at most; callers beyond it wait to enqueue.
const QUEUE: usize = 4 * MAX_GROUP;

type Reply = oneshot::Sender<LifecycleResult<IntentRow>>;

/// The queue in front of the writers.
#[derive(Clone)]
pub struct SubmitQueue {
    sender: mpsc::Sender<(Submission, Reply)>,
}

impl SubmitQueue {
    /// Starts the writers: one on SQLite (it has one writer anyway), four on
    /// PostgreSQL. They stop once every `SubmitQueue` clone is dropped.
    pub fn start(app: Arc<App>) -> SubmitQueue {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let writers = match app.store {
            Store::Sqlite(..) => 1,
            Store::Postgres(_) => 4,
        };
        for _ in 0..writers {
            tokio::spawn(write_groups(app.clone(), receiver.clone()));
        }
        SubmitQueue { sender }
    }

    /// Submits one intent in the next group; its own result.
    pub async fn submit(&self, submission: Submission) -> LifecycleResult<IntentRow> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((submission, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> LifecycleError {
    LifecycleError::Store(StoreError::ShuttingDown)
}

/// Takes whatever is queued (up to `MAX_GROUP`) and submits it in one transaction.
async fn write_groups(app: Arc<App>, receiver: Arc<Mutex<mpsc::Receiver<(Submission, Reply)>>>) {
    loop {
        let mut group = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            group.push(first);
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
        }
        let (submissions, replies): (Vec<Submission>, Vec<Reply>) = group.into_iter().unzip();
        let results = match app.submit(&submissions).await {
            Ok(results) => results,
            // The shared transaction failed: each submission alone, so that one
            // caller's failure never becomes another's.
            Err(_) if submissions.len() > 1 => {
                let mut results = Vec::with_capacity(submissions.len());
                for submission in &submissions {
                    results.push(match app.submit(std::slice::from_ref(submission)).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Err(stopped())),
                        Err(e) => Err(e),
                    });
                }
                results
            }
            Err(e) => vec![Err(e)],
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}
