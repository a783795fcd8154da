//! Retries for calls to services we do not own (the providers, the LLM).
//!
//! A throttled or briefly failing service should slow a step down, not fail
//! the run: a retryable failure waits (exponential backoff with jitter, or the
//! wait the service asked for in `Retry-After`) and tries again, a bounded
//! number of times. Past that the failure goes up as *transient*, so the
//! state machine's `Retry` on `Worker.Transient` takes over with its own,
//! longer waits; a service that asks for a wait longer than
//! [`RetryPolicy::max_delay`] is not waited for here for the same reason.
//!
//! Which failures may be retried depends on the call: reading a job's state
//! can be repeated freely, while submitting work is repeated only when the
//! answer says the work was not taken (429, 503, or no connection at all),
//! since a provider that timed out or failed after receiving a submission
//! may have accepted it.
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// What a call does at the service, which decides what may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Reads state: safe to repeat after any transient failure.
    Read,
    /// Creates work (a clip, a render, a post): repeated only when the
    /// service said it did not take it.
    Submit,
}

/// How often, and how long apart, a call is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts: u32,
    /// The longest first wait; each later wait may be twice the one before.
    pub base_delay: Duration,
    /// No wait is longer than this. A service asking for a longer one is not
    /// retried here: its failure goes up as transient at once.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Four attempts over about two seconds, waiting up to 10 s for a
    /// service that names its wait.
    pub const DEFAULT: Self = Self {
        attempts: 4,
        base_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(10),
    };

    /// One attempt.
    pub const NONE: Self = Self {
        attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The wait before the next attempt, after attempt `failed` (1 for the
    /// first) failed retryably with the service's own `hint`; `None` when no
    /// attempt is left or the hint is longer than `max_delay`.
    pub fn delay(&self, failed: u32, hint: Option<Duration>) -> Option<Duration> {
        if failed >= self.attempts {
            return None;
        }
        let jitter = |upto: Duration| {
            let millis = upto.as_millis() as u64;
            Duration::from_millis(if millis == 0 {
                0
            } else {
                rand::rng().random_range(0..=millis)
            })
        };
        match hint {
            Some(wait) if wait > self.max_delay => None,
            // The service's wait, and a little more so that clients told the
            // same wait do not all come back in the same instant.
            Some(wait) => Some(wait + jitter(self.base_delay / 2)),
            None => {
                let exp = self
                    .base_delay
                    .saturating_mul(2u32.saturating_pow(failed - 1))
                    .min(self.max_delay);
                // Half fixed, half random: never a zero wait, never in step.
                Some(exp / 2 + jitter(exp / 2))
            }
        }
    }
}

/// The wait an answer asks for: OpenAI's `retry-after-ms`, else
/// `Retry-After` as seconds or as an HTTP date, else the end of the window
/// `X-RateLimit-Reset` names (upload-post).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, Utc::now())
}

fn retry_after_at(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    let Some(value) = text(RETRY_AFTER.as_str()) else {
        // upload-post names the end of its rate-limit window instead, as a
        // Unix time.
        let reset: i64 = text("x-ratelimit-reset")?.parse().ok()?;
        let at = DateTime::<Utc>::from_timestamp(reset, 0).filter(|_| reset > 1_000_000_000)?;
        return Some((at - now).to_std().unwrap_or(Duration::ZERO));
    };
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |pairs| retry_after_at(&headers(pairs), now);
        assert_eq!(at(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(
            at(&[("retry-after", "0.5")]),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            at(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            Some(Duration::from_secs(30))
        );
        // A date already past asks for no wait.
        assert_eq!(
            at(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]),
            Some(Duration::ZERO)
        );
        // OpenAI's milliseconds win over the seconds.
        assert_eq!(
            at(&[("retry-after-ms", "120"), ("retry-after", "20")]),
            Some(Duration::from_millis(120))
        );
        // upload-post: the window's end as a Unix time (2015-10-21T07:28:00Z).
        assert_eq!(
            at(&[("x-ratelimit-reset", "1445412480")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(at(&[("retry-after", "soon")]), None);
        assert_eq!(at(&[("retry-after", "-1")]), None);
        assert_eq!(at(&[]), None);
    }

    #[test]
    fn waits_grow_with_jitter_and_stop_after_the_last_attempt() {
        let policy = RetryPolicy::DEFAULT;
        for failed in 1..policy.attempts {
            let ceiling = policy.base_delay * 2u32.pow(failed - 1);
            for _ in 0..50 {
                let wait = policy.delay(failed, None).unwrap();
                assert!(wait >= ceiling / 2 && wait <= ceiling, "{failed}: {wait:?}");
            }
        }
        assert_eq!(policy.delay(policy.attempts, None), None);
        assert_eq!(RetryPolicy::NONE.delay(1, None), None);
    }

    #[test]
    fn a_service_named_wait_is_honoured_unless_it_is_too_long() {
        let policy = RetryPolicy::DEFAULT;
        let wait = policy.delay(1, Some(Duration::from_secs(2))).unwrap();
        assert!(wait >= Duration::from_secs(2));
        assert!(wait <= Duration::from_secs(2) + policy.base_delay / 2);
        assert_eq!(policy.delay(1, Some(Duration::from_secs(60))), None);
    }
}
