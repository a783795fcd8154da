//! The `Queue` port on SQS, the poller `mw worker` runs where no Lambda
//! event source exists, and the dead-letter queues' tools (`mw dlq`).
//!
//! The poller keeps Lambda's semantics: a message is deleted once handled;
//! one that failed is left to come back (after a backoff that grows with its
//! receive count) until the queue's redrive policy moves it to the
//! dead-letter queue.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Depth, Queue, QueueError, SharedHandler};
use crate::aws::error_parts;

/// SQS queues.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
}

fn queue_error<E>(queue_url: &str, err: aws_sdk_sqs::error::SdkError<E>) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message) = error_parts(&err);
    QueueError {
        queue_url: queue_url.to_owned(),
        reason: format!("{code}: {message}"),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| queue_error(queue_url, e))?;
        Ok(())
    }

    async fn depth(&self, queue_url: &str) -> Result<Depth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| queue_error(queue_url, e))?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Depth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

/// How long one receive waits for messages (SQS long polling).
const WAIT_SECONDS: i32 = 5;
/// The longest a failed message is hidden before it comes back.
const MAX_BACKOFF_SECONDS: i32 = 60;

/// A message as the dead-letter tools show it.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    /// How many times it was received (its failed attempts, in a DLQ).
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
}

impl QueuedMessage {
    fn from_sdk(m: &Message) -> Self {
        let attribute = |name: MessageSystemAttributeName| {
            m.attributes()
                .and_then(|a| a.get(&name))
                .map(String::as_str)
        };
        Self {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            body: m.body().unwrap_or_default().to_owned(),
            receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            sent_at: attribute(MessageSystemAttributeName::SentTimestamp)
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis),
        }
    }
}

impl SqsQueue {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// Polls `queue_url` and hands each message to `handler` until `stop`
    /// turns true; handled messages are deleted, failed ones come back. The
    /// task ends after the receive in progress and its messages are done.
    pub fn consume(
        &self,
        queue_url: &str,
        handler: SharedHandler,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let queue_url = queue_url.to_owned();
        tokio::spawn(async move {
            tracing::info!(queue = %queue_url, "polling");
            // A receive is never abandoned midway: the messages it takes are
            // handled, so stopping costs at most one long poll.
            while !*stop.borrow_and_update() {
                let received = this
                    .client
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(WAIT_SECONDS)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send()
                    .await;
                match received {
                    Ok(out) => {
                        this.handle_batch(&queue_url, &handler, out.messages())
                            .await
                    }
                    Err(err) => {
                        let err = queue_error(&queue_url, err);
                        tracing::error!(queue = %queue_url, error = %err.reason, "receive failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
            tracing::info!(queue = %queue_url, "stopped polling");
        })
    }

    async fn handle_batch(&self, queue_url: &str, handler: &SharedHandler, messages: &[Message]) {
        let outcomes = futures::future::join_all(messages.iter().map(|m| {
            let handler = Arc::clone(handler);
            async move { handler.handle(m.body().unwrap_or_default()).await }
        }))
        .await;
        let mut done = Vec::new();
        for (message, outcome) in messages.iter().zip(outcomes) {
            let shown = QueuedMessage::from_sdk(message);
            let receipt = message.receipt_handle().unwrap_or_default();
            match outcome {
                Ok(()) => done.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{}", done.len()))
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt handle are set"),
                ),
                Err(err) => {
                    tracing::error!(queue = %queue_url, message_id = %shown.message_id,
                        receive_count = shown.receive_count, retryable = err.retryable,
                        error = %err, "message failed; it comes back later");
                    self.retry_later(queue_url, receipt, shown.receive_count)
                        .await;
                }
            }
        }
        if !done.is_empty() {
            let deleted = self
                .client
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(done))
                .send()
                .await;
            match deleted {
                Ok(out) if !out.failed().is_empty() => {
                    tracing::error!(queue = %queue_url, failed = out.failed().len(), "some handled messages were not deleted; they will be handled again");
                }
                Ok(_) => {}
                Err(e) => {
                    let e = queue_error(queue_url, e);
                    tracing::error!(queue = %queue_url, error = %e.reason, "deleting handled messages failed; they will be handled again");
                }
            }
        }
    }

    /// Makes a failed message visible again after `backoff_seconds` of its
    /// receive count (1, 2, 4 … 60 s), instead of the queue's visibility
    /// timeout (set for the longest handling, an hour and a half for the
    /// task queue). A failure to do so only leaves the queue's timeout.
    pub async fn retry_later(&self, queue_url: &str, receipt: &str, receive_count: u32) {
        let backoff = backoff_seconds(receive_count);
        let hidden = self
            .client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(backoff)
            .send()
            .await;
        match hidden {
            Ok(_) => {
                tracing::info!(queue = %queue_url, receive_count, retry_in_s = backoff, "failed message comes back soon")
            }
            Err(e) => {
                let e = queue_error(queue_url, e);
                tracing::warn!(queue = %queue_url, error = %e.reason, "could not set the retry delay; the queue's visibility timeout applies");
            }
        }
    }

    /// The URL of the queue an SQS event's record came from
    /// (`eventSourceARN`, `arn:aws:sqs:<region>:<account>:<name>`), asked of
    /// SQS once per queue and kept.
    pub async fn queue_url_of_arn(&self, arn: &str) -> Result<String, QueueError> {
        static KNOWN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
        if let Some((_, url)) = KNOWN.lock().expect("lock").iter().find(|(a, _)| a == arn) {
            return Ok(url.clone());
        }
        let mut parts = arn.rsplitn(3, ':');
        let (name, account) = (parts.next().unwrap_or_default(), parts.next());
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .set_queue_owner_aws_account_id(account.map(str::to_owned))
            .send()
            .await
            .map_err(|e| queue_error(arn, e))?;
        let url = out.queue_url().unwrap_or_default().to_owned();
        KNOWN
            .lock()
            .expect("lock")
            .push((arn.to_owned(), url.clone()));
        Ok(url)
    }

    /// The dead-letter queue `queue_url`'s redrive policy names, if any.
    pub async fn dead_letter_queue(&self, queue_url: &str) -> Result<Option<String>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| queue_error(queue_url, e))?;
        let Some(policy) = out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        else {
            return Ok(None);
        };
        let target = serde_json::from_str::<serde_json::Value>(policy)
            .ok()
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned))
            .ok_or_else(|| QueueError {
                queue_url: queue_url.to_owned(),
                reason: format!("its redrive policy names no dead-letter queue: {policy}"),
            })?;
        let name = target.rsplit(':').next().unwrap_or_default();
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| queue_error(queue_url, e))?;
        Ok(out.queue_url().map(str::to_owned))
    }

    /// Up to `max` messages of `queue_url`, left in it: each is received
    /// (hidden for a moment) and made visible again at once.
    pub async fn peek(
        &self,
        queue_url: &str,
        max: usize,
    ) -> Result<Vec<QueuedMessage>, QueueError> {
        let mut seen = Vec::new();
        let mut receipts = Vec::new();
        while seen.len() < max {
            let out = self
                .client
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages((max - seen.len()).min(10) as i32)
                .visibility_timeout(30)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| queue_error(queue_url, e))?;
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                seen.push(QueuedMessage::from_sdk(m));
                receipts.push(m.receipt_handle().unwrap_or_default().to_owned());
            }
        }
        for receipt in receipts {
            // Visible again for the consumers; a failure only delays it.
            let _ = self
                .client
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
        }
        Ok(seen)
    }

    /// Moves up to `max` messages from `from` (a dead-letter queue) back to
    /// `to`: each is sent to `to` before it is deleted from `from`, so a
    /// failure midway can repeat a message, never lose one. Answers the
    /// moved messages.
    pub async fn redrive(
        &self,
        from: &str,
        to: &str,
        max: usize,
    ) -> Result<Vec<QueuedMessage>, QueueError> {
        let mut moved = Vec::new();
        while moved.len() < max {
            let out = self
                .client
                .receive_message()
                .queue_url(from)
                .max_number_of_messages((max - moved.len()).min(10) as i32)
                .visibility_timeout(60)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| queue_error(from, e))?;
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                self.send(to, m.body().unwrap_or_default().to_owned())
                    .await?;
                self.client
                    .delete_message()
                    .queue_url(from)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| queue_error(from, e))?;
                moved.push(QueuedMessage::from_sdk(m));
            }
        }
        Ok(moved)
    }
}

/// Seconds a failed message stays hidden: 1, 2, 4, … by receive count,
/// at most `MAX_BACKOFF_SECONDS`.
pub fn backoff_seconds(receive_count: u32) -> i32 {
    let exp = receive_count.saturating_sub(1).min(6);
    (1i32 << exp).min(MAX_BACKOFF_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_messages_back_off_by_receive_count() {
        assert_eq!(
            [0, 1, 2, 3, 7, 50].map(backoff_seconds),
            [1, 1, 2, 4, 60, 60]
        );
    }
}
