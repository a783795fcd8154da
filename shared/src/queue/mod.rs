//! The `Queue` port: the task queue (persona and gate tasks from the state
//! machine) and the callback queue (verified provider callbacks). Locally the
//! queues live in the store and are consumed in-process (the local engine's
//! queue, `engine::local::LocalQueue`); on AWS they are SQS queues (`sqs`)
//! consumed by the `worker` and `callbacks` functions.
pub mod sqs;

use std::sync::Arc;

use async_trait::async_trait;

pub use sqs::SqsQueue;

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("could not send to {queue_url}: {reason}")]
pub struct QueueError {
    pub queue_url: String,
    pub reason: String,
}

/// How many messages a queue holds: waiting to be received, and received
/// but not yet handled (in flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
}

#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Sends `body`; durable once this returns.
    async fn send(&self, queue_url: &str, body: String) -> Result<(), QueueError>;
    /// Sends `body` for a sender that keeps its own durable record of it and
    /// sends it again after a restart (the webhook route: the stored event
    /// says which callbacks are owed). A queue may then skip storing it: the
    /// local queue hands it to its consumer in memory. SQS sends it as usual.
    async fn hand_over(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        self.send(queue_url, body).await
    }
    /// How many messages `queue_url` holds.
    async fn depth(&self, queue_url: &str) -> Result<Depth, QueueError>;
}

/// What handles the messages of one queue (the worker, the callbacks
/// consumer). An error leaves the message to be delivered again.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(&self, body: &str) -> Result<(), HandlerError>;
}

/// A message that could not be handled; `retryable` says whether trying
/// again may help (a store or network hiccup) or not (a malformed message).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    pub retryable: bool,
}

impl HandlerError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// A handler shared between consumers.
pub type SharedHandler = Arc<dyn MessageHandler>;
