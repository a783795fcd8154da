//! Callback delivery as the real providers do it: a POST with a timeout,
//! retried twice with a doubling backoff when the receiver fails or is
//! unreachable. Headers are rebuilt per attempt so a signed scheme signs
//! with the time of that attempt. The callback faults (`lost`, `late`,
//! `duplicate`) apply here.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue};

use super::{faults, MockCounters, Shared};

/// Attempts per callback: the first and two retries.
const ATTEMPTS: u32 = 3;

/// Builds an attempt's headers from the body (a signed scheme signs here).
pub(super) type Headers = Arc<dyn Fn(&[u8]) -> HeaderMap + Send + Sync>;

/// One callback to send.
pub(super) struct Callback {
    pub provider: &'static str,
    pub job_id: String,
    pub url: String,
    pub body: Vec<u8>,
    /// Called before each attempt.
    pub headers: Headers,
}

/// Sends `callback`, with the callback faults; true when the receiver
/// answered 2xx (a lost callback counts as not sent).
pub(super) async fn deliver(shared: &Shared, callback: Callback) -> bool {
    let faults = shared.config.faults;
    if faults::roll(faults.lost) {
        MockCounters::bump(&shared.counters.callbacks_lost);
        tracing::debug!(provider = callback.provider, provider_job_id = %callback.job_id, "mock callback lost on purpose");
        return false;
    }
    if faults::roll(faults.late) {
        tokio::time::sleep(shared.config.late_delay).await;
    }
    let sent = send(shared, &callback).await;
    if sent && faults::roll(faults.duplicate) {
        MockCounters::bump(&shared.counters.callbacks_repeated);
        send(shared, &callback).await;
    }
    sent
}

/// One callback's delivery attempts.
async fn send(shared: &Shared, callback: &Callback) -> bool {
    let mut backoff = shared.config.retry_backoff;
    for attempt in 1..=ATTEMPTS {
        let mut headers = (callback.headers)(&callback.body);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let sent = shared
            .http
            .post(&callback.url)
            .headers(headers)
            .body(callback.body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                // Read to the end: a connection whose answer is left unread
                // is closed instead of going back to the pool.
                let _ = response.bytes().await;
                shared
                    .counters
                    .callbacks_sent
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(provider = callback.provider, provider_job_id = %callback.job_id, attempt, "mock callback delivered");
                return true;
            }
            Ok(response) => format!("receiver answered {}", response.status()),
            Err(error) => error.to_string(),
        };
        shared
            .counters
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            provider = callback.provider,
            provider_job_id = %callback.job_id,
            attempt,
            error = %failure,
            "mock callback delivery failed"
        );
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    shared
        .counters
        .callbacks_dropped
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(provider = callback.provider, provider_job_id = %callback.job_id, "mock callback dropped after retries");
    false
}
