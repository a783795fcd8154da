//! Timers: Wait states, retry intervals, task and heartbeat timeouts. The
//! snapshot is their durable record (recovery re-arms them); this task only
//! wakes the engine when one is due.
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

/// A timer that is due at `at` for one execution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Due {
    pub at: DateTime<Utc>,
    pub execution_arn: String,
    pub timer_id: String,
}

#[derive(Debug, Clone)]
pub(super) struct Timers {
    arm: mpsc::UnboundedSender<Due>,
}

impl Timers {
    /// Spawns the timer task; `fire` is called for each timer when it is due.
    pub(super) fn spawn(fire: impl Fn(Due) + Send + 'static) -> Self {
        let (arm, mut armed) = mpsc::unbounded_channel::<Due>();
        tokio::spawn(async move {
            let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
            loop {
                let now = Utc::now();
                while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    let Reverse(due) = heap.pop().expect("peeked");
                    fire(due);
                }
                let sleep = heap
                    .peek()
                    .map(|Reverse(d)| (d.at - now).to_std().unwrap_or_default());
                tokio::select! {
                    next = armed.recv() => match next {
                        Some(due) => heap.push(Reverse(due)),
                        None => return,
                    },
                    _ = tokio::time::sleep(sleep.unwrap_or(std::time::Duration::from_secs(3600))), if sleep.is_some() => {}
                }
            }
        });
        Self { arm }
    }

    pub(super) fn arm(&self, due: Due) {
        let _ = self.arm.send(due);
    }
}
