//! The local queue: messages sent by `sqs:sendMessage` tasks. They are written
//! to the store in the same transaction as the transition that sends them (an
//! outbox), then handed to the in-process consumer of their queue URL. A
//! consumer acknowledges a message once it is handled; whatever was not
//! acknowledged is delivered again when a consumer subscribes after a restart
//! (at least once, like SQS).
//!
//! A consumer is either a channel it reads (`LocalEngine::subscribe`) or a
//! function that starts handling each message where it is delivered
//! (`LocalEngine::subscribe_function`, which `queue::consume` uses): no task
//! stands between a committed message and its handling.
//!
//! A sender that keeps its own durable record of what it owes (the webhook
//! route: the stored event says which callbacks are still to be handled)
//! can hand a message over without storing it (`LocalEngine::hand_over`):
//! it is delivered the same way, and its acknowledgement writes nothing. After
//! a restart that sender sends again what its record says is owed.
use std::collections::HashMap;
use std::sync::{Mutex, Weak};

use tokio::sync::{mpsc, oneshot};

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
