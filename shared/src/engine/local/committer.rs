//! Group commit: transitions of many executions queue here and are written
//! together, one transaction per batch, so throughput is not bounded by one
//! fsync per transition. Each caller waits until its own transition is
//! durable (or refused) before acting on it; nothing committed is lost.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::engine::{Commit, CommitRefused, EngineStore};
use crate::store::StoreError;

/// What a commit came to: applied, refused, or the whole batch failed.
pub(super) type CommitOutcome = Result<Result<(), CommitRefused>, Arc<StoreError>>;

type Request = (Commit, oneshot::Sender<CommitOutcome>);

/// The most transitions written in one transaction.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone)]
pub(super) struct Committer {
    requests: mpsc::UnboundedSender<Request>,
}

impl Committer {
    pub(super) fn spawn(store: Arc<dyn EngineStore>) -> Self {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (commits, replies): (Vec<Commit>, Vec<_>) = batch.drain(..).unzip();
                match store.commit(commits).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "engine commit failed");
                        let err = Arc::new(err);
                        for reply in replies {
                            let _ = reply.send(Err(Arc::clone(&err)));
                        }
                    }
                }
            }
        });
        Self { requests }
    }

    /// Writes `commit` with whatever else is waiting, and says how it went.
    pub(super) async fn commit(&self, commit: Commit) -> Option<CommitOutcome> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((commit, reply)).ok()?;
        answer.await.ok()
    }
}
