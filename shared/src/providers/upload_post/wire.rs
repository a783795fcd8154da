//! upload-post's wire format, from docs.upload-post.com: "Upload Video"
//! (`api/upload-video`), "Upload Status" (`api/upload-status`), "Avoid
//! Timeouts with Asynchronous Uploads" (`guides/async-uploads`), "Webhooks &
//! Notifications" (`api/webhooks`), "Current User" (`api/current-user`),
//! "Rate limits" and "Limit of uploads" (`guides/…`). The answers and
//! webhooks as documented (and as integrators saw them live, where the docs
//! are silent) are the fixtures under `shared/fixtures/providers/upload_post/`,
//! which the client and the mock are tested against.
//!
//! Per-platform results come as a map keyed by platform (a synchronous
//! upload) or as a list with a `platform` field (the status endpoint); both
//! are read. A row's `success` is not a publishing signal on its own: the
//! documented in-progress row says `success: true, "Queued"`; its `status`
//! (or the whole answer's being over) says when it is final.
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// What to publish. Sent as `multipart/form-data` (the documented form),
/// with `video` as a text field holding the URL: the docs say `video` "can be
/// a file upload or a video URL", so the rendered file never passes through
/// us.
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    pub video_url: &'a str,
    /// The default title/caption (`title`, required).
    pub title: &'a str,
    /// The longer text some platforms show (`description`).
    pub description: Option<&'a str>,
    /// The upload-post profile (`user`).
    pub user: &'a str,
    /// `platform[]`, e.g. `tiktok`, `instagram`, `youtube`.
    pub platforms: &'a [&'a str],
    /// `async_upload`: answer at once with the `request_id` (the default here).
    pub async_upload: bool,
    /// Our own id for the upload: sent as `request_id` (echoed by every answer
    /// and taken by the status endpoint) and as the `Idempotency-Key` header,
    /// so sending the same upload again returns the job already made instead
    /// of publishing twice.
    pub request_id: &'a str,
}

impl<'a> Upload<'a> {
    /// An asynchronous upload without a description.
    pub fn new(
        video_url: &'a str,
        title: &'a str,
        user: &'a str,
        platforms: &'a [&'a str],
        request_id: &'a str,
    ) -> Self {
        Self {
            video_url,
            title,
            description: None,
            user,
            platforms,
            async_upload: true,
            request_id,
        }
    }
}

// The answers below repeat their optional fields' serde attributes field by
// field on purpose: each says how that documented field is read and whether
// the mock writes it when absent, as its fixture shows it.
/// The answer to `POST /api/upload`: `request_id` for an asynchronous upload
/// (the docs promise no more; live answers also carry the `job_id` webhooks
/// name), per-platform `results` for a synchronous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadAnswer {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_platforms: Option<u32>,
    /// Per-platform results of a synchronous upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// The answer to `GET /api/uploadposts/status?request_id=…` (or `job_id=…`):
/// `pending`, `queued`, `processing`, `in_progress`, then `completed` or
/// `failed`; `not_found` with HTTP 404.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusAnswer {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
}

impl StatusAnswer {
    /// Whether upload-post is done with the whole upload (each row then says
    /// how its platform ended).
    pub fn is_over(&self) -> bool {
        matches!(self.status.as_deref(), Some("completed" | "failed"))
    }
}

/// The answer to `GET /api/uploadposts/me`: the key is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub success: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
}

/// The answer to registering the webhook: the saved settings; newer
/// accounts also get the secret their deliveries are signed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationsAnswer {
    pub success: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub notifications: Option<SavedNotifications>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedNotifications {
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// `POST /api/uploadposts/users/notifications`: where upload-post sends its
/// webhooks. Webhooks are configured per account, not per upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notifications<'a> {
    pub channels: Channels,
    pub webhook_url: &'a str,
    pub webhook_events: WebhookEvents,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Channels {
    pub webhook: bool,
    pub telegram: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WebhookEvents {
    pub upload_completed: bool,
    pub social_account_connected: bool,
    pub social_account_disconnected: bool,
    pub social_account_reauth_required: bool,
}

/// The `upload_completed` webhook body: one per platform, success or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadCompleted {
    pub event: String,
    /// Present "only when the upload was triggered via the API with a
    /// job_id" (the docs); live async uploads carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    #[serde(default)]
    pub profile_username: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub result: Option<PlatformResult>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// One platform's outcome, as webhooks, upload answers and status rows
/// carry it (each has some of these fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// A status row's own state: `queued`, `processing`, `completed`,
    /// `failed` or `retryable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_post_id: Option<String>,
    /// Webhooks and upload answers.
    #[serde(default)]
    pub error: Option<String>,
    /// Status and history rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl PlatformResult {
    /// The post's address, under whichever name this result gives it.
    pub fn post_address(&self) -> Option<String> {
        [&self.post_url, &self.url]
            .into_iter()
            .flatten()
            .find(|u| !u.is_empty())
            .cloned()
    }

    /// Why the platform failed, under whichever name this result gives it.
    pub fn failure(&self) -> String {
        let reason = [&self.error_message, &self.error, &self.message]
            .into_iter()
            .flatten()
            .find(|e| !e.is_empty())
            .cloned()
            .unwrap_or_else(|| "upload failed".into());
        match &self.error_code {
            Some(code) if !code.is_empty() => format!("{reason} ({code})"),
            _ => reason,
        }
    }
}

/// The auth header scheme: `Authorization: Apikey <key>`.
pub const AUTH_SCHEME: &str = "Apikey";
/// The webhook signature headers.
pub const SIGNATURE_HEADER: &str = "x-upload-post-signature";
pub const TIMESTAMP_HEADER: &str = "x-upload-post-timestamp";
pub const EVENT_HEADER: &str = "x-upload-post-event";
pub const DELIVERY_HEADER: &str = "x-upload-post-delivery";

/// Reads per-platform results from either documented shape.
pub fn platform_results(results: &Value) -> Vec<(String, PlatformResult)> {
    match results {
        Value::Object(map) => map
            .iter()
            .filter_map(|(platform, value)| {
                let result = serde_json::from_value(value.clone()).ok()?;
                Some((platform.clone(), result))
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|value| {
                let result: PlatformResult = serde_json::from_value(value.clone()).ok()?;
                Some((result.platform.clone()?, result))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `X-Upload-Post-Signature` value for `body` sent at `timestamp`:
/// `sha256=` and the hex of HMAC-SHA256 over `timestamp.body`.
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let mac = signature_mac(secret, &timestamp.to_string(), body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The MAC `sign` encodes, to check a received signature in constant time.
pub fn signature_mac(secret: &SecretString, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    super::super::signature::dotted_hmac(secret, timestamp.as_bytes(), body)
}
