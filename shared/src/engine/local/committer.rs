//! Group commit: transitions of many executions, and acknowledgements of
//! handled queue messages, queue here and are written together, one
//! transaction per batch, so throughput is not bounded by one commit per
//! transition. Each caller waits until its own write is durable (or refused)
//! before acting on it; nothing committed is lost.
//!
//! A store that groups concurrent writes into one commit itself (SQLite:
//! `EngineStore::groups_writes`) is given each request as a write of its
//! own, on the caller's task: batching it here as well would only add two
//! hand-overs between threads to every transition.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::engine::{Batch, Commit, CommitRefused, EngineStore, QueueMessage};
use crate::store::StoreError;

/// What a commit came to: applied, refused, or the whole batch failed.
pub(super) type CommitOutcome = Result<Result<(), CommitRefused>, Arc<StoreError>>;

#[derive(Debug)]
pub(super) enum Request {
    Commit(Box<Commit>, oneshot::Sender<CommitOutcome>),
    Ack(String, oneshot::Sender<Result<(), Arc<StoreError>>>),
    Send(QueueMessage, oneshot::Sender<Result<(), Arc<StoreError>>>),
}

/// The most requests written in one transaction.
const MAX_BATCH: usize = 1024;

#[derive(Debug, Clone)]
pub(super) enum Committer {
    /// Requests batched by a thread of its own (`Committer::spawn`).
    Thread(mpsc::UnboundedSender<Request>),
    /// Requests written one by one by the caller, into a store that groups
    /// them.
    Direct(Arc<dyn EngineStore>),
}

impl Committer {
    /// The committer `store` needs: direct when the store groups writes
    /// itself, else a thread of its own.
    pub(super) fn start(store: Arc<dyn EngineStore>) -> Self {
        if store.groups_writes() {
            Self::Direct(store)
        } else {
            Self::spawn(store)
        }
    }

    fn spawn(store: Arc<dyn EngineStore>) -> Self {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request>();
        let work = async move {
            let mut pending: Vec<Request> = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut pending, MAX_BATCH).await > 0 {
                let mut batch = Batch::default();
                let mut commit_replies = Vec::new();
                let mut other_replies = Vec::new();
                for request in pending.drain(..) {
                    match request {
                        Request::Commit(commit, reply) => {
                            batch.commits.push(*commit);
                            commit_replies.push(reply);
                        }
                        Request::Ack(id, reply) => {
                            batch.acks.push(id);
                            other_replies.push(reply);
                        }
                        Request::Send(message, reply) => {
                            batch.messages.push(message);
                            other_replies.push(reply);
                        }
                    }
                }
                match store.commit(batch).await {
                    Ok(outcomes) => {
                        count_transitions(&outcomes);
                        for (reply, outcome) in commit_replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                        for reply in other_replies {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(err) => {
                        let err = failed(err);
                        for reply in commit_replies {
                            let _ = reply.send(Err(Arc::clone(&err)));
                        }
                        for reply in other_replies {
                            let _ = reply.send(Err(Arc::clone(&err)));
                        }
                    }
                }
            }
        };
        // The committer has a thread of its own. A commit is several round
        // trips to the database, and between two of them the committing task
        // would otherwise wait its turn behind every ready execution on the
        // shared runtime, holding up all the commits queued behind it.
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("mw-engine-commits".into())
                    .spawn(move || runtime.block_on(work))
            });
        if let Err(e) = started {
            // Every commit then answers that the engine has shut down.
            tracing::error!(error = %e, "cannot start the engine's commit thread");
        }
        Self::Thread(requests)
    }

    /// Writes `commit` with whatever else is waiting, and says how it went;
    /// `None` when the engine is shutting down.
    pub(super) async fn commit(&self, commit: Commit) -> Option<CommitOutcome> {
        match self {
            Self::Thread(requests) => {
                ask(requests, |reply| Request::Commit(Box::new(commit), reply)).await
            }
            Self::Direct(store) => {
                let batch = Batch {
                    commits: vec![commit],
                    ..Batch::default()
                };
                Some(match store.commit(batch).await {
                    Ok(mut outcomes) => {
                        count_transitions(&outcomes);
                        Ok(outcomes.pop().expect("one outcome per commit"))
                    }
                    Err(err) => Err(failed(err)),
                })
            }
        }
    }

    /// Deletes a handled queue message with the next batch.
    pub(super) async fn ack(&self, message_id: String) -> Option<Result<(), Arc<StoreError>>> {
        match self {
            Self::Thread(requests) => ask(requests, |reply| Request::Ack(message_id, reply)).await,
            Self::Direct(store) => {
                let mut batch = Batch::default();
                batch.acks.push(message_id);
                write(store, batch).await
            }
        }
    }

    /// Writes a message on its own with the next batch.
    pub(super) async fn send(&self, message: QueueMessage) -> Option<Result<(), Arc<StoreError>>> {
        match self {
            Self::Thread(requests) => ask(requests, |reply| Request::Send(message, reply)).await,
            Self::Direct(store) => {
                let mut batch = Batch::default();
                batch.messages.push(message);
                write(store, batch).await
            }
        }
    }
}

/// Hands the commit thread the request `make` builds around its reply
/// channel, and waits for the answer; `None` once the thread is gone.
async fn ask<T>(
    requests: &mpsc::UnboundedSender<Request>,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    requests.send(make(reply)).ok()?;
    answer.await.ok()
}

/// Writes a batch of acknowledgements or messages straight into the store.
async fn write(store: &Arc<dyn EngineStore>, batch: Batch) -> Option<Result<(), Arc<StoreError>>> {
    Some(store.commit(batch).await.map(|_| ()).map_err(failed))
}

/// Counts the transitions a batch applied.
fn count_transitions(outcomes: &[Result<(), CommitRefused>]) {
    let applied = outcomes.iter().filter(|o| o.is_ok()).count();
    if applied > 0 {
        crate::telemetry::metrics::count_n(
            "mw_engine_transitions_total",
            "State machine transitions committed by the local engine.",
            &[],
            applied as u64,
        );
    }
}

/// A store error, logged, as every caller of the failed write gets it.
fn failed(err: StoreError) -> Arc<StoreError> {
    tracing::error!(error = %err, "engine commit failed");
    Arc::new(err)
}
