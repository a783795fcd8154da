//! The local queue: the `Queue` port on the local engine (`LocalQueue`), and
//! its consumers (`consume`). Its messages are the ones `sqs:sendMessage` tasks
//! send, and the ones the pipeline sends through the port. They are written
//! to the store in the same transaction as the transition that sends them (an
//! outbox), then handed to the in-process consumer of their queue URL. A
//! consumer acknowledges a message once it is handled; whatever was not
//! acknowledged is delivered again when a consumer subscribes after a restart
//! (at least once, like SQS).
//!
//! A consumer is either a channel it reads (`LocalEngine::subscribe`) or a
//! function that starts handling each message where it is delivered
//! (`LocalEngine::subscribe_function`, which `consume` uses): no task
//! stands between a committed message and its handling.
//!
//! A sender that keeps its own durable record of what it owes (the webhook
//! route: the stored event says which callbacks are still to be handled)
//! can hand a message over without storing it (`LocalEngine::hand_over`):
//! it is delivered the same way, and its acknowledgement writes nothing. After
//! a restart that sender sends again what its record says is owed.
//!
//! It lives with the local engine rather than beside the port in `queue`: its
//! messages are committed in the engine's transitions, so it is one thing
//! with the engine (the engine depends on the port, not the other way).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::LocalEngine;
use crate::queue::{Depth, Queue, QueueError, SharedHandler};
use crate::store::engine::QueueMessage;

/// A function a consumer hands each message to; it must not wait (it
/// starts a task that handles the message).
pub type Deliver = dyn Fn(QueueMessage) + Send + Sync;

#[derive(Debug, Default)]
pub(super) struct LocalQueues {
    consumers: Mutex<HashMap<String, Subscription>>,
    /// Messages handed over without being stored and not acknowledged yet:
    /// id → queue URL.
    unstored: Mutex<HashMap<String, String>>,
}

/// A queue's consumer, as the queues hold it.
#[derive(Debug)]
struct Subscription {
    consumer: Consumer,
    /// Dropped when another consumer replaces this one (or the queues go),
    /// which tells a function's owner it may let the function go.
    _replaced: Option<oneshot::Sender<()>>,
}

/// Where a queue's messages go.
#[derive(Clone)]
enum Consumer {
    /// A channel its consumer reads.
    Channel(mpsc::UnboundedSender<QueueMessage>),
    /// Held weakly: the consumer owns its function, and with it what the
    /// function holds (the engine, often), so the queues, which the engine
    /// holds, do not keep it alive.
    Function(Weak<Deliver>),
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Channel(_) => f.write_str("Channel"),
            Self::Function(_) => f.write_str("Function"),
        }
    }
}

impl Consumer {
    /// Hands `message` over; gives it back when the consumer is gone.
    fn send(&self, message: QueueMessage) -> Result<(), QueueMessage> {
        match self {
            Self::Channel(tx) => tx.send(message).map_err(|returned| returned.0),
            Self::Function(deliver) => match deliver.upgrade() {
                Some(deliver) => {
                    deliver(message);
                    Ok(())
                }
                None => Err(message),
            },
        }
    }
}

impl LocalQueues {
    /// Makes a channel the consumer of `queue_url`, replacing any other.
    pub(super) fn subscribe(&self, queue_url: &str) -> mpsc::UnboundedReceiver<QueueMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.replace(queue_url, Consumer::Channel(tx), None);
        rx
    }

    /// Makes `deliver` the consumer of `queue_url`, replacing any other.
    /// The receiver completes once another consumer replaces it.
    pub(super) fn subscribe_function(
        &self,
        queue_url: &str,
        deliver: Weak<Deliver>,
    ) -> oneshot::Receiver<()> {
        let (replaced, on_replaced) = oneshot::channel();
        self.replace(queue_url, Consumer::Function(deliver), Some(replaced));
        on_replaced
    }

    fn replace(&self, queue_url: &str, consumer: Consumer, replaced: Option<oneshot::Sender<()>>) {
        let subscription = Subscription {
            consumer,
            _replaced: replaced,
        };
        let previous = self
            .consumers
            .lock()
            .expect("queue lock")
            .insert(queue_url.to_owned(), subscription);
        // Dropped once the lock is let go: its function's owner learns it
        // was replaced.
        drop(previous);
    }

    fn consumer(&self, queue_url: &str) -> Option<Consumer> {
        let consumers = self.consumers.lock().expect("queue lock");
        consumers.get(queue_url).map(|s| s.consumer.clone())
    }

    /// Hands a committed message to its consumer, if one listens; otherwise
    /// it waits in the store for one.
    pub(super) fn deliver(&self, message: QueueMessage) {
        if let Some(consumer) = self.consumer(&message.queue_url) {
            let _ = consumer.send(message);
        }
    }

    /// Hands a message that is not stored to its consumer; gives it back
    /// when no consumer listens.
    pub(super) fn deliver_unstored(&self, message: QueueMessage) -> Result<(), QueueMessage> {
        let Some(consumer) = self.consumer(&message.queue_url) else {
            return Err(message);
        };
        let id = message.id.clone();
        // Recorded before the consumer can acknowledge it (`forget_unstored`
        // waits for this lock).
        let mut unstored = self.unstored.lock().expect("queue lock");
        unstored.insert(id.clone(), message.queue_url.clone());
        consumer.send(message).inspect_err(|_| {
            unstored.remove(&id);
        })
    }

    /// Forgets an acknowledged message that was never stored; false when
    /// `message_id` is not one (a stored message, deleted from the store).
    pub(super) fn forget_unstored(&self, message_id: &str) -> bool {
        self.unstored
            .lock()
            .expect("queue lock")
            .remove(message_id)
            .is_some()
    }

    /// How many messages of `queue_url` were handed over without being
    /// stored and are not acknowledged yet.
    pub(super) fn unstored_in_flight(&self, queue_url: &str) -> usize {
        self.unstored
            .lock()
            .expect("queue lock")
            .values()
            .filter(|url| *url == queue_url)
            .count()
    }
}

/// Retries of a message whose handler failed with a retryable error, before
/// it is left in the store (it is delivered again when the process restarts).
const ATTEMPTS: u32 = 4;

/// The `Queue` port on the local engine's store-backed queues.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    engine: LocalEngine,
}

impl LocalQueue {
    pub fn new(engine: LocalEngine) -> Self {
        Self { engine }
    }
}

/// The `QueueError` an engine error on `queue_url` becomes.
fn failed(queue_url: &str) -> impl FnOnce(crate::engine::EngineError) -> QueueError + '_ {
    move |e| QueueError {
        queue_url: queue_url.to_owned(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        self.engine
            .send_message(queue_url, body)
            .await
            .map_err(failed(queue_url))
    }

    async fn hand_over(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        self.engine
            .hand_over(queue_url, body)
            .await
            .map_err(failed(queue_url))
    }

    /// Local messages are delivered as soon as they are committed (or handed
    /// over): every message not yet acknowledged is in flight.
    async fn depth(&self, queue_url: &str) -> Result<Depth, QueueError> {
        let unacked = self
            .engine
            .queued_messages(queue_url)
            .await
            .map_err(failed(queue_url))?;
        Ok(Depth {
            visible: 0,
            in_flight: unacked as u64,
        })
    }
}

/// Consumes `queue_url` with `handler` until another consumer replaces it or
/// the runtime stops: each message handled on a task of its own, started
/// where the message is delivered; acknowledged when handled, or when it can
/// never be (a permanent error, logged).
pub async fn consume(
    engine: &LocalEngine,
    queue_url: &str,
    handler: SharedHandler,
) -> Result<(), crate::engine::EngineError> {
    let runtime = tokio::runtime::Handle::current();
    let deliver: Arc<Deliver> = {
        let engine = engine.clone();
        let queue_url: Arc<str> = queue_url.into();
        Arc::new(move |message: QueueMessage| {
            runtime.spawn(handle(
                engine.clone(),
                Arc::clone(&handler),
                Arc::clone(&queue_url),
                message,
            ));
        })
    };
    let replaced = engine
        .subscribe_function(queue_url, Arc::downgrade(&deliver))
        .await?;
    // The engine holds the function weakly (it holds the engine): this task
    // keeps it, until the queue's consumer is replaced or the runtime stops.
    tokio::spawn(async move {
        let _ = replaced.await;
        drop(deliver);
    });
    Ok(())
}

/// Handles one message, retrying a retryable failure, and acknowledges it
/// unless it is left for the next start.
async fn handle(
    engine: LocalEngine,
    handler: SharedHandler,
    queue_url: Arc<str>,
    message: QueueMessage,
) {
    for attempt in 1..=ATTEMPTS {
        match handler.handle(&message.body).await {
            Ok(()) => break,
            Err(err) if err.retryable && attempt < ATTEMPTS => {
                tracing::warn!(queue = %queue_url, message_id = %message.id, attempt, error = %err, "message failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            Err(err) if err.retryable => {
                tracing::error!(queue = %queue_url, message_id = %message.id, error = %err, "message failed; left for the next start");
                return;
            }
            Err(err) => {
                tracing::error!(queue = %queue_url, message_id = %message.id, error = %err, "message cannot be handled; dropped");
                break;
            }
        }
    }
    if let Err(err) = engine.ack(&message.id).await {
        tracing::error!(queue = %queue_url, message_id = %message.id, error = %err, "ack failed");
    }
}
