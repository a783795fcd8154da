//! Provider callbacks as they arrive at `POST /v1/webhooks/{provider}`:
//! each provider's signature scheme, the parse into one normalized
//! `ProviderCallback`, and the idempotency key the `webhook_events` row is
//! unique on.
//!
//! Why here and not in the handler: the decision "may this callback move a
//! run forward?" is security-relevant and provider-specific, so it lives in
//! one pure function (`receive`) that tests drive with forged, replayed and
//! tampered requests. Its answer is a `Received`; only a callback whose
//! scheme accepted it comes wrapped in `Verified<_>`, a type nothing outside
//! this module can build.
//!
//! The schemes:
//! - kie.ai: `X-Webhook-Signature` = base64(HMAC-SHA256(key, `taskId.timestamp`))
//!   with `X-Webhook-Timestamp` in seconds. It covers the task id, not the
//!   body, so the consumer confirms results with `record-info`.
//! - Shotstack: unsigned; the consumer confirms with `GET /render/{id}`.
//! - upload-post: `X-Upload-Post-Signature` = `sha256=` hex(HMAC-SHA256(key,
//!   `timestamp.body`)) with `X-Upload-Post-Timestamp`; it covers the body.
//!
//! Signed schemes reject timestamps more than five minutes away from `now`
//! (either way), so a captured callback cannot be replayed later.
use std::ops::Deref;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use hmac::Mac as _;
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::{Provider, SignatureStatus, WebhookEvent};

pub mod kieai;
pub mod shotstack;
pub mod upload_post;

/// How far a signed callback's timestamp may be from now.
pub const REPLAY_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

/// The keys the signed schemes are checked with.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    pub kieai: SecretString,
    pub upload_post: SecretString,
}

/// A value that passed its provider's scheme. Only this module builds one.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    fn new(value: T) -> Self {
        Self(value)
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A callback, the same for every provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCallback {
    pub provider: Provider,
    /// The id our `provider_jobs` row has: kie.ai's `taskId`, Shotstack's
    /// render id (for both callbacks), upload-post's `job_id`.
    pub job_id: String,
    pub kind: CallbackKind,
    /// What the callback claims; confirm with the provider's API when
    /// `signature_covers_body` is false.
    pub outcome_hint: OutcomeHint,
    pub signature_covers_body: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackKind {
    KieAiResult,
    ShotstackRender,
    ShotstackCdnCopy,
    UploadPostResult { platform: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeHint {
    Succeeded { urls: Vec<String> },
    Failed { message: String },
    Progress,
}

/// What `receive` made of a request: everything the `webhook_events` row
/// needs, and the callback to act on when the scheme accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub signature_status: SignatureStatus,
    /// `None` when the signature was rejected or missing, or when the event
    /// is not about a job (`error` says which).
    pub callback: Option<Verified<ProviderCallback>>,
    /// Equal for redeliveries of one callback, distinct across callbacks.
    /// Callbacks not acted on get a key of their own (`…#rejected:<hash>`),
    /// so a forged request can never occupy the key of the genuine one.
    pub idempotency_key: String,
    pub provider_job_id: Option<String>,
    pub payload: Value,
    pub error: Option<String>,
}

/// A body that is not the provider's callback format: answer 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {provider} callback: {reason}")]
pub struct MalformedCallback {
    pub provider: Provider,
    pub reason: String,
}

impl MalformedCallback {
    fn new(provider: Provider, reason: impl Into<String>) -> Self {
        Self {
            provider,
            reason: reason.into(),
        }
    }
}

/// Verifies and parses one callback request.
pub fn receive(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: DateTime<Utc>,
) -> Result<Received, MalformedCallback> {
    let received = match provider {
        Provider::KieAi => kieai::receive(headers, body, &secrets.kieai, now),
        Provider::Shotstack => shotstack::receive(body),
        Provider::UploadPost => upload_post::receive(headers, body, &secrets.upload_post, now),
    }?;
    if received.callback.is_none() {
        tracing::warn!(
            provider = %provider,
            provider_job_id = ?received.provider_job_id,
            signature_status = %received.signature_status,
            error = ?received.error,
            "callback not acted on"
        );
    }
    Ok(received)
}

/// The callback a stored event was accepted with, read again from its
/// payload: what a restarted stack hands the callbacks consumer for an event
/// still `received`. The signature is not checked again (its timestamp has
/// aged out of the replay window since); the event's `signature_status`
/// records the check made on arrival, and only an event accepted then
/// (`verified` or `unsigned`) gives a callback.
pub fn stored_callback(
    event: &WebhookEvent,
) -> Result<Option<ProviderCallback>, MalformedCallback> {
    if !matches!(
        event.signature_status,
        SignatureStatus::Verified | SignatureStatus::Unsigned
    ) {
        return Ok(None);
    }
    Ok(match event.provider {
        Provider::KieAi => Some(kieai::parse(&event.payload)?.1),
        Provider::Shotstack => Some(shotstack::parse(&event.payload)?.1),
        Provider::UploadPost => match upload_post::parse(&event.payload)? {
            upload_post::Parsed::Upload { callback, .. } => Some(callback),
            upload_post::Parsed::Other { .. } => None,
        },
    })
}

/// Whether a provider's job id has the plain form kie.ai's and upload-post's
/// ids take (letters, digits, `_`, `-` and `.`, at most 128): ids from
/// callbacks are checked before any use (a store key, a query to the
/// provider).
pub(crate) fn is_plain_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Parses a body as JSON, or says why it is malformed.
fn parse_json(provider: Provider, body: &[u8]) -> Result<Value, MalformedCallback> {
    serde_json::from_slice(body).map_err(|e| MalformedCallback::new(provider, e.to_string()))
}

/// Reads a header as text; absent or empty is `None`.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The timestamp and signature of a signed scheme, present and fresh; or the
/// status and reason to refuse the callback with.
fn signed<'a>(
    headers: &'a HeaderMap,
    timestamp_header: &str,
    signature_header: &str,
    now: DateTime<Utc>,
) -> Result<(&'a str, &'a str), (SignatureStatus, String)> {
    let (Some(timestamp), Some(signature)) = (
        header(headers, timestamp_header),
        header(headers, signature_header),
    ) else {
        return Err((
            SignatureStatus::Missing,
            format!("{timestamp_header} or {signature_header} is missing"),
        ));
    };
    check_timestamp(timestamp, now).map_err(|e| (SignatureStatus::Rejected, e.to_string()))?;
    Ok((timestamp, signature))
}

/// Why a provided signature is refused, if it is: `decoded` is its bytes
/// (`None` when it is not in the scheme's encoding, which `not_encoded`
/// says); `verify_slice` compares in constant time.
fn refused(
    decoded: Option<Vec<u8>>,
    not_encoded: &'static str,
    mac: hmac::Hmac<Sha256>,
) -> Option<&'static str> {
    match decoded {
        None => Some(not_encoded),
        Some(provided) => mac
            .verify_slice(&provided)
            .is_err()
            .then_some("signature does not match"),
    }
}

/// Why a signed callback's timestamp is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum TimestampError {
    #[error("timestamp {0:?} is not a number of seconds")]
    NotSeconds(String),
    #[error("timestamp {0} is out of range")]
    OutOfRange(i64),
    #[error("timestamp is {0}s old (replay window is {window}s)", window = REPLAY_WINDOW.num_seconds())]
    TooOld(i64),
    #[error("timestamp is {0}s in the future")]
    InTheFuture(i64),
}

/// Checks a signed callback's timestamp against the replay window.
fn check_timestamp(timestamp: &str, now: DateTime<Utc>) -> Result<(), TimestampError> {
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| TimestampError::NotSeconds(timestamp.to_owned()))?;
    let sent =
        DateTime::<Utc>::from_timestamp(seconds, 0).ok_or(TimestampError::OutOfRange(seconds))?;
    let skew = now.signed_duration_since(sent);
    if skew > REPLAY_WINDOW {
        Err(TimestampError::TooOld(skew.num_seconds()))
    } else if -skew > REPLAY_WINDOW {
        Err(TimestampError::InTheFuture(-skew.num_seconds()))
    } else {
        Ok(())
    }
}

/// The outcome for a request whose signature was not accepted.
fn not_accepted(
    status: SignatureStatus,
    base_key: String,
    provider_job_id: Option<String>,
    payload: Value,
    body: &[u8],
    error: String,
) -> Received {
    let digest = hex::encode(Sha256::digest(body));
    Received {
        signature_status: status,
        callback: None,
        idempotency_key: format!("{base_key}#{status}:{}", &digest[..16]),
        provider_job_id,
        payload,
        error: Some(error),
    }
}

/// The outcome for a request the scheme accepted.
fn accepted(
    status: SignatureStatus,
    key: String,
    callback: ProviderCallback,
    payload: Value,
) -> Received {
    Received {
        signature_status: status,
        provider_job_id: Some(callback.job_id.clone()),
        callback: Some(Verified::new(callback)),
        idempotency_key: key,
        payload,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewWebhookEvent, WebhookEventStatus};
    use axum::http::HeaderValue;

    /// The secrets every scheme's tests sign with.
    pub(super) fn secrets() -> WebhookSecrets {
        WebhookSecrets {
            kieai: SecretString::from("kieai-webhook-secret-0123456789"),
            upload_post: SecretString::from("upload-post-webhook-secret-0123"),
        }
    }

    /// The fixed "now" the schemes' tests sign and check at.
    pub(super) fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_760_000_000, 0).unwrap()
    }

    /// The event the route stores for `received`.
    fn stored(provider: Provider, received: &Received) -> WebhookEvent {
        NewWebhookEvent {
            run_id: None,
            provider,
            idempotency_key: received.idempotency_key.clone(),
            provider_job_id: received.provider_job_id.clone(),
            signature_status: received.signature_status,
            headers: Value::Null,
            payload: received.payload.clone(),
            status: WebhookEventStatus::Received,
        }
        .stored_at(Utc::now())
    }

    fn headers(pairs: [(&'static str, String); 2]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        headers
    }

    /// kie.ai's headers for `task_id` at `at`, signed with `secret`.
    fn kieai_headers(secret: &SecretString, task_id: &str, at: DateTime<Utc>) -> HeaderMap {
        use crate::providers::kieai::wire::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
        headers([
            (TIMESTAMP_HEADER, at.timestamp().to_string()),
            (
                SIGNATURE_HEADER,
                kieai::sign(secret, task_id, at.timestamp()),
            ),
        ])
    }

    /// upload-post's headers for `body` at `at`, signed with `secret`.
    fn upload_post_headers(secret: &SecretString, body: &str, at: DateTime<Utc>) -> HeaderMap {
        use crate::providers::upload_post::wire::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
        headers([
            (TIMESTAMP_HEADER, at.timestamp().to_string()),
            (
                SIGNATURE_HEADER,
                upload_post::sign(secret, at.timestamp(), body.as_bytes()),
            ),
        ])
    }

    #[test]
    fn a_stored_event_gives_back_the_callback_it_was_accepted_with() {
        let now = Utc::now();
        let secrets = secrets();
        let kieai_body = r#"{"code":200,"msg":"ok","data":{"taskId":"task-7","info":{"resultUrls":["https://cdn.example/7.mp4"]}}}"#;
        let kieai_headers = kieai_headers(&secrets.kieai, "task-7", now);
        let shotstack_body = r#"{"type":"serve","action":"copy","id":"e4433cbf-e501-76a2-ac8b-715d26997540","render":"d2b46ed6-998a-4d6b-9d91-b8cf0193a655","status":"ready","url":"https://cdn.example/r.mp4"}"#;
        let upload_body = r#"{"event":"upload_completed","job_id":"up-1","platform":"tiktok","result":{"success":false,"error":"Token expired"}}"#;
        let upload_headers = upload_post_headers(&secrets.upload_post, upload_body, now);
        for (provider, headers, body) in [
            (Provider::KieAi, kieai_headers, kieai_body),
            (Provider::Shotstack, HeaderMap::new(), shotstack_body),
            (Provider::UploadPost, upload_headers, upload_body),
        ] {
            let received = receive(provider, &headers, body.as_bytes(), &secrets, now).unwrap();
            let event = stored(provider, &received);
            let accepted = received.callback.expect("accepted").into_inner();
            assert_eq!(
                stored_callback(&event).unwrap(),
                Some(accepted),
                "{provider}"
            );
        }
    }

    #[test]
    fn an_event_not_accepted_on_arrival_gives_no_callback() {
        let now = Utc::now();
        let body = r#"{"code":200,"msg":"ok","data":{"taskId":"task-7"}}"#;
        let forged = kieai_headers(&SecretString::from("a guess"), "task-7", now);
        let received = receive(Provider::KieAi, &forged, body.as_bytes(), &secrets(), now).unwrap();
        assert_eq!(received.signature_status, SignatureStatus::Rejected);
        assert_eq!(
            stored_callback(&stored(Provider::KieAi, &received)).unwrap(),
            None
        );

        let unsigned = receive(
            Provider::KieAi,
            &HeaderMap::new(),
            body.as_bytes(),
            &secrets(),
            now,
        )
        .unwrap();
        assert_eq!(unsigned.signature_status, SignatureStatus::Missing);
        assert_eq!(
            stored_callback(&stored(Provider::KieAi, &unsigned)).unwrap(),
            None
        );

        // A verified upload-post event that is not a job's result.
        let account = r#"{"event":"account_connected","platform":"tiktok"}"#;
        let signed = upload_post_headers(&secrets().upload_post, account, now);
        let received = receive(
            Provider::UploadPost,
            &signed,
            account.as_bytes(),
            &secrets(),
            now,
        )
        .unwrap();
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert_eq!(
            stored_callback(&stored(Provider::UploadPost, &received)).unwrap(),
            None
        );
    }
}
