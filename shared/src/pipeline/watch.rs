//! Waiting for a run's status to change (`GET /v1/runs/{id}?status=…&wait=…`),
//! so a client that watches a run learns of a gate or of the run's end as it
//! happens, with one request where polling takes many.
//!
//! Every status change this process writes goes through
//! `Pipeline::transition_run` (a gate's request through
//! `Pipeline::record_hitl_request`), which wakes the requests waiting on that
//! run.
//! A change written elsewhere (another process on the same store, another
//! Lambda function) wakes nobody: a waiting request reads the run again every
//! `RECHECK` as well. A stack that stops answers its waiting requests at
//! once (`RunWatch::close`), so they do not hold up its shutdown.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Pipeline, PipelineError};
use crate::domain::{HitlRequest, NewHitlRequest};
use crate::domain::{Run, RunId, RunStatus};
use crate::store::{StoreError, Transition};

/// The longest a request may wait: below the 29 s API Gateway allows.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// How often a waiting request reads the run again, for changes written by
/// another process.
const RECHECK: Duration = Duration::from_secs(1);

/// The runs some request is waiting on, each with what wakes its waiters.
#[derive(Debug, Default)]
pub struct RunWatch {
    waiting: Mutex<HashMap<RunId, Arc<Notify>>>,
    closed: AtomicBool,
}

impl RunWatch {
    /// Answers every waiting request now, and every later one without
    /// waiting: the server is stopping.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for notify in self.lock().values() {
            notify.notify_waiters();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Wakes the requests waiting on `run_id`, if any.
    fn changed(&self, run_id: RunId) {
        if let Some(notify) = self.lock().get(&run_id) {
            notify.notify_waiters();
        }
    }

    /// What wakes a request waiting on `run_id`; the run stays watched while
    /// the returned `Listening` lives.
    fn listen(self: &Arc<Self>, run_id: RunId) -> Listening {
        let notify = Arc::clone(self.lock().entry(run_id).or_default());
        Listening {
            watch: Arc::clone(self),
            run_id,
            notify,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Arc<Notify>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One request waiting on a run; the last one to go stops watching it.
struct Listening {
    watch: Arc<RunWatch>,
    run_id: RunId,
    notify: Arc<Notify>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut waiting = self.watch.lock();
        // Ours and the map's: no other request waits on this run.
        if Arc::strong_count(&self.notify) == 2 {
            waiting.remove(&self.run_id);
        }
    }
}

impl Pipeline {
    /// `Store::transition_run`, waking the requests waiting on the run when
    /// it changed: how the pipeline changes a run's status.
    pub(crate) async fn transition_run(&self, change: Transition) -> Result<Run, StoreError> {
        let run = self.store.transition_run(change).await?;
        self.run_watch.changed(run.run_id);
        Ok(run)
    }

    /// `Store::record_hitl_request`, which moves the run to
    /// `awaiting_approval`, waking the requests waiting on the run.
    pub(crate) async fn record_hitl_request(
        &self,
        request: NewHitlRequest,
    ) -> Result<HitlRequest, StoreError> {
        let run_id = request.run_id;
        let recorded = self.store.record_hitl_request(request).await?;
        self.run_watch.changed(run_id);
        Ok(recorded)
    }

    /// The run `key` names once its status is no longer `seen`, or as it is
    /// after `wait` (at most `MAX_WAIT`).
    pub async fn wait_for_status_change(
        &self,
        key: &str,
        seen: RunStatus,
        wait: Duration,
    ) -> Result<Run, PipelineError> {
        let run = self.find_run(key).await?;
        if run.status != seen || wait.is_zero() {
            return Ok(run);
        }
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let listening = self.run_watch.listen(run.run_id);
        loop {
            // Listening before reading: a change written after the read
            // still wakes this request.
            let woken = listening.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let run = self
                .store
                .get_run(run.run_id)
                .await?
                .ok_or_else(|| PipelineError::not_found(format!("run {key}")))?;
            let now = tokio::time::Instant::now();
            if run.status != seen || now >= deadline || self.run_watch.is_closed() {
                return Ok(run);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + RECHECK), woken).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_change_wakes_the_requests_waiting_on_that_run_only() {
        let watch = Arc::new(RunWatch::default());
        let (ours, other) = (RunId::new(), RunId::new());
        let first = watch.listen(ours);
        let second = watch.listen(ours);
        let elsewhere = watch.listen(other);
        {
            let (a, b, c) = (
                first.notify.notified(),
                second.notify.notified(),
                elsewhere.notify.notified(),
            );
            tokio::pin!(a, b, c);
            for woken in [a.as_mut(), b.as_mut(), c.as_mut()] {
                woken.enable();
            }
            watch.changed(ours);
            assert!(a.now_or_never().is_some(), "its first request wakes");
            assert!(b.now_or_never().is_some(), "and its second");
            assert!(c.now_or_never().is_none(), "one on another run sleeps on");
        }
        drop((first, second));
        assert_eq!(watch.lock().len(), 1, "a run nobody waits on is forgotten");
        drop(elsewhere);
        assert!(watch.lock().is_empty());
        watch.changed(ours); // nobody waits: nothing happens
    }

    #[tokio::test]
    async fn closing_wakes_every_waiting_request() {
        let watch = Arc::new(RunWatch::default());
        let (one, two) = (watch.listen(RunId::new()), watch.listen(RunId::new()));
        let (a, b) = (one.notify.notified(), two.notify.notified());
        tokio::pin!(a, b);
        a.as_mut().enable();
        b.as_mut().enable();
        assert!(!watch.is_closed());
        watch.close();
        assert!(watch.is_closed(), "later requests do not wait either");
        assert!(a.now_or_never().is_some() && b.now_or_never().is_some());
    }
}
