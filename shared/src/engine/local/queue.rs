//! The local queue: messages sent by `sqs:sendMessage` tasks. They are written
//! to the store in the same transaction as the transition that sends them (an
//! outbox), then handed to the in-process consumer of their queue URL. A
//! consumer acknowledges a message once it is handled; whatever was not
//! acknowledged is delivered again when a consumer subscribes after a restart
//! (at least once, like SQS).
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::store::engine::QueueMessage;

#[derive(Debug, Default)]
pub(super) struct LocalQueues {
    consumers: Mutex<HashMap<String, mpsc::UnboundedSender<QueueMessage>>>,
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
}
