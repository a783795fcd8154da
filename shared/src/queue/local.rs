//! The local queues: store-backed messages, delivered in-process right away
//! and again after a restart until acknowledged (see `engine::local`).
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Depth, Queue, QueueError, SharedHandler};
use crate::engine::local::Deliver;
use crate::engine::LocalEngine;
use crate::store::engine::QueueMessage;

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
