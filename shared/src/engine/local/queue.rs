//! The local queue: messages sent by `sqs:sendMessage` tasks. They are written
//! to the store in the same transaction as the transition that sends them (an
//! outbox), then handed to the in-process consumer of their queue URL. A
//! consumer acknowledges a message once it is handled; whatever was not
//! acknowledged is delivered again when a consumer subscribes after a restart
//! (at least once, like SQS).
//!
//! A sender that keeps its own durable record of what it owes (the webhook
//! route: the stored event says which callbacks are still to be handled)
//! can hand a message over without storing it (`LocalEngine::hand_over`):
//! it is delivered the same way, and its acknowledgement writes nothing. After
//! a restart that sender sends again what its record says is owed.
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::store::engine::QueueMessage;

#[derive(Debug, Default)]
pub(super) struct LocalQueues {
    consumers: Mutex<HashMap<String, mpsc::UnboundedSender<QueueMessage>>>,
    /// Messages handed over without being stored and not acknowledged yet:
    /// id → queue URL.
    unstored: Mutex<HashMap<String, String>>,
}

impl LocalQueues {
    /// Replaces the consumer of `queue_url`; returns a sender into it too,
    /// for the messages already waiting in the store.
    pub(super) fn subscribe(
        &self,
        queue_url: &str,
    ) -> (
        mpsc::UnboundedSender<QueueMessage>,
        mpsc::UnboundedReceiver<QueueMessage>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.consumers
            .lock()
            .expect("queue lock")
            .insert(queue_url.to_owned(), tx.clone());
        (tx, rx)
    }

    /// Hands a committed message to its consumer, if one listens; otherwise
    /// it waits in the store for one.
    pub(super) fn deliver(&self, message: QueueMessage) {
        let consumers = self.consumers.lock().expect("queue lock");
        if let Some(consumer) = consumers.get(&message.queue_url) {
            let _ = consumer.send(message);
        }
    }

    /// Hands a message that is not stored to its consumer; gives it back
    /// when no consumer listens.
    pub(super) fn deliver_unstored(&self, message: QueueMessage) -> Result<(), QueueMessage> {
        let consumers = self.consumers.lock().expect("queue lock");
        let Some(consumer) = consumers.get(&message.queue_url) else {
            return Err(message);
        };
        let id = message.id.clone();
        let mut unstored = self.unstored.lock().expect("queue lock");
        unstored.insert(id.clone(), message.queue_url.clone());
        consumer.send(message).map_err(|returned| {
            unstored.remove(&id);
            returned.0
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
