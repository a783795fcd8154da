//! upload-post's wire format, from docs.upload-post.com: "Upload Video"
//! (`api/upload-video`), "Avoid Timeouts with Asynchronous Uploads"
//! (`guides/async-uploads`), "Webhooks & Notifications" (`api/webhooks`).
//! The per-platform result shapes are read leniently (a map keyed by
//! platform or a list with a `platform` field), because the docs show both.
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// `async_upload`: answer at once with a `request_id` (the default here).
    pub async_upload: bool,
}

impl<'a> Upload<'a> {
    /// An asynchronous upload without a description.
    pub fn new(
        video_url: &'a str,
        title: &'a str,
        user: &'a str,
        platforms: &'a [&'a str],
    ) -> Self {
        Self {
            video_url,
            title,
            description: None,
            user,
            platforms,
            async_upload: true,
        }
    }
}

/// The answer to `POST /api/upload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadAnswer {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Per-platform results of a synchronous upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Value>,
}

/// The answer to `GET /api/uploadposts/status?request_id=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusAnswer {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Value>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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

/// One platform's outcome, as webhooks and results carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
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
    #[serde(default)]
    pub error: Option<String>,
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
