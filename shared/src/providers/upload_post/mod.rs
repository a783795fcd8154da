//! upload-post: publish a rendered video to social platforms (`upload`),
//! read an upload's state (`status`), check the key (`me`) and register our
//! webhook URL (`set_webhook`). Auth is `Authorization: Apikey <key>`.
//!
//! Why multipart with a URL: `POST /api/upload` is documented only as
//! `multipart/form-data`, and its `video` field "can be a file upload or a
//! video URL". Sending the Shotstack CDN URL as that text field avoids
//! downloading and re-uploading the file. We always ask for `async_upload`
//! so the call returns at once, and name the upload ourselves (`request_id`,
//! also the `Idempotency-Key`): the status endpoint takes that id, and
//! sending the same upload again returns the job already made. The outcome
//! arrives by webhook, one `upload_completed` per platform, naming the
//! upload's `job_id` (which live answers to the upload also carry).
use std::time::Duration;

use reqwest::multipart::Form;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{secret_header, Api, CallKind, Client, ProviderError};
use crate::domain::Provider;

#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::Upload;

pub const LIVE_BASE_URL: &str = "https://api.upload-post.com";
/// The host the docs give for the webhook settings (every other endpoint is
/// on `api.`); live reports say it answers 405, so `set_webhook` falls back
/// to `api.` when it is refused.
pub const LIVE_APP_BASE_URL: &str = "https://app.upload-post.com";
pub const UPLOAD_PATH: &str = "/api/upload";
pub const STATUS_PATH: &str = "/api/uploadposts/status";
pub const ME_PATH: &str = "/api/uploadposts/me";
pub const NOTIFICATIONS_PATH: &str = "/api/uploadposts/users/notifications";
/// The header that makes a repeated upload return the job already made.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// What upload-post said about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    /// The upload's `request_id`: ours, echoed.
    pub request_id: String,
    /// The id upload-post's webhooks carry, when the answer gives it.
    pub job_id: Option<String>,
    /// One entry per requested platform.
    pub platforms: Vec<PlatformStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformStatus {
    pub platform: String,
    pub state: PublishState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishState {
    Pending,
    Published { url: Option<String> },
    Failed { error: String },
}

/// Which id to ask the status endpoint about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRef<'a> {
    Request(&'a str),
    Job(&'a str),
}

/// The answer of the status endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// upload-post's word for the whole upload (`pending`, `processing`,
    /// `completed`, `failed`, `not_found`, …).
    pub status: String,
    /// Whether upload-post is done with it.
    pub over: bool,
    /// The webhooks' id, when a row names it.
    pub job_id: Option<String>,
    pub platforms: Vec<PlatformStatus>,
}

/// Whose key it is (`GET /api/uploadposts/me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub email: Option<String>,
    pub plan: Option<String>,
}

/// Where the webhook was registered, and the signing secret upload-post
/// gave back, if it gives one.
#[derive(Debug, Clone)]
pub struct WebhookRegistration {
    /// The settings URL that accepted it.
    pub settings_url: String,
    pub webhook_secret: Option<SecretString>,
}

/// The upload-post client; cheap to clone.
#[derive(Debug, Clone)]
pub struct UploadPostClient {
    pub(super) api: Api,
    api_key: SecretString,
}

impl UploadPostClient {
    pub fn new(base_url: &str, api_key: SecretString, timeout: Duration) -> Self {
        Self {
            api: Api::new(Provider::UploadPost, base_url, timeout),
            api_key,
        }
    }

    /// Submits a video for publishing.
    #[tracing::instrument(skip_all, fields(provider = "upload-post", user = upload.user, request_id = upload.request_id))]
    pub async fn upload(&self, upload: &Upload<'_>) -> Result<UploadResult, ProviderError> {
        let form = || {
            let mut form = Form::new()
                .text("user", upload.user.to_owned())
                .text("title", upload.title.to_owned())
                .text("video", upload.video_url.to_owned())
                .text("async_upload", upload.async_upload.to_string())
                .text("request_id", upload.request_id.to_owned());
            if let Some(description) = upload.description {
                form = form.text("description", description.to_owned());
            }
            for platform in upload.platforms {
                form = form.text("platform[]", (*platform).to_owned());
            }
            form
        };
        // The same request id and key on every attempt: a repeat returns the
        // job the first attempt made, so submitting is safe to retry.
        let answer: wire::UploadAnswer = self
            .call(CallKind::Read, "upload", || {
                self.api
                    .http
                    .post(self.api.url(UPLOAD_PATH))
                    .header(reqwest::header::AUTHORIZATION, self.auth())
                    .header(IDEMPOTENCY_HEADER, upload.request_id)
                    .multipart(form())
            })
            .await?;
        if !answer.success {
            let message = answer.message.unwrap_or_else(|| "success=false".into());
            return Err(self.api.decode(message));
        }
        let reported = answer.results.as_ref().map(wire::platform_results);
        let platforms = upload
            .platforms
            .iter()
            .map(|platform| PlatformStatus {
                platform: (*platform).to_owned(),
                state: reported
                    .as_ref()
                    .and_then(|r| r.iter().find(|(p, _)| p == platform))
                    .map_or(PublishState::Pending, |(_, result)| state_of(result, true)),
            })
            .collect();
        let request_id = answer
            .request_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| upload.request_id.to_owned());
        tracing::info!(%request_id, job_id = ?answer.job_id, "upload-post upload accepted");
        Ok(UploadResult {
            request_id,
            job_id: answer.job_id.filter(|id| !id.is_empty()),
            platforms,
        })
    }

    /// Reads an upload's state by its `request_id` or `job_id`.
    #[tracing::instrument(skip_all, fields(provider = "upload-post"))]
    pub async fn status(&self, upload: UploadRef<'_>) -> Result<UploadStatus, ProviderError> {
        let query = match upload {
            UploadRef::Request(id) => ("request_id", id),
            UploadRef::Job(id) => ("job_id", id),
        };
        let answer: wire::StatusAnswer = self
            .api
            .retrying(CallKind::Read, "status", || async {
                let call = self
                    .api
                    .http
                    .get(self.api.url(STATUS_PATH))
                    .query(&[query])
                    .header(reqwest::header::AUTHORIZATION, self.auth());
                match self.api.send(call).await {
                    // `{"status": "not_found"}`, sent with HTTP 404.
                    Err(ProviderError::Status { status: 404, .. }) => Ok(wire::StatusAnswer {
                        status: Some("not_found".into()),
                        request_id: None,
                        job_id: None,
                        completed: None,
                        total: None,
                        results: None,
                        last_update: None,
                    }),
                    Err(error) => Err(error),
                    Ok(response) => self.api.json(response).await,
                }
            })
            .await?;
        let over = answer.is_over();
        let rows = answer
            .results
            .as_ref()
            .map(wire::platform_results)
            .unwrap_or_default();
        let job_id = answer
            .job_id
            .clone()
            .or_else(|| rows.iter().find_map(|(_, row)| row.job_id.clone()))
            .filter(|id| !id.is_empty());
        let platforms = rows
            .into_iter()
            .map(|(platform, result)| PlatformStatus {
                state: state_of(&result, over),
                platform,
            })
            .collect();
        Ok(UploadStatus {
            status: answer.status.unwrap_or_else(|| "unknown".into()),
            over,
            job_id,
            platforms,
        })
    }

    /// Whose key this is: a call that changes nothing, to check the key.
    #[tracing::instrument(skip_all, fields(provider = "upload-post"))]
    pub async fn me(&self) -> Result<Account, ProviderError> {
        let me: wire::Me = self
            .call(CallKind::Read, "me", || {
                self.api
                    .http
                    .get(self.api.url(ME_PATH))
                    .header(reqwest::header::AUTHORIZATION, self.auth())
            })
            .await?;
        if !me.success {
            return Err(self.api.decode(me.message.unwrap_or_default()));
        }
        Ok(Account {
            email: me.email,
            plan: me.plan,
        })
    }

    /// Points upload-post's webhooks at `webhook_url`, for upload results
    /// only. The settings are the account's, not an upload's. Sent to the
    /// documented host (`app.`) for the real service, then to the API host
    /// should that refuse it; a mock or fake takes it on its own base URL.
    #[tracing::instrument(skip_all, fields(provider = "upload-post"))]
    pub async fn set_webhook(
        &self,
        webhook_url: &str,
    ) -> Result<WebhookRegistration, ProviderError> {
        let body = wire::Notifications {
            channels: wire::Channels {
                webhook: true,
                telegram: false,
            },
            webhook_url,
            webhook_events: wire::WebhookEvents {
                upload_completed: true,
                social_account_connected: false,
                social_account_disconnected: false,
                social_account_reauth_required: false,
            },
        };
        let mut hosts = vec![self.api.base_url.clone()];
        if self.api.base_url == LIVE_BASE_URL {
            hosts.insert(0, LIVE_APP_BASE_URL.to_owned());
        }
        let mut last = None;
        for host in hosts {
            let settings_url = format!("{host}{NOTIFICATIONS_PATH}");
            let answer: Result<wire::NotificationsAnswer, _> = self
                .call(CallKind::Read, "notifications", || {
                    self.api
                        .http
                        .post(&settings_url)
                        .header(reqwest::header::AUTHORIZATION, self.auth())
                        .json(&body)
                })
                .await;
            match answer {
                Ok(answer) if answer.success => {
                    let webhook_secret = answer
                        .notifications
                        .and_then(|n| n.webhook_secret)
                        .filter(|s| !s.is_empty())
                        .map(SecretString::from);
                    return Ok(WebhookRegistration {
                        settings_url,
                        webhook_secret,
                    });
                }
                Ok(answer) => {
                    last = Some(self.api.decode(format!(
                        "{settings_url} answered success=false: {}",
                        answer.message.unwrap_or_default()
                    )))
                }
                Err(error) => {
                    tracing::warn!(%settings_url, error = %error, "upload-post refused the webhook settings here");
                    last = Some(error);
                }
            }
        }
        Err(last.expect("at least one host was tried"))
    }

    fn auth(&self) -> reqwest::header::HeaderValue {
        secret_header(&format!(
            "{} {}",
            wire::AUTH_SCHEME,
            self.api_key.expose_secret()
        ))
    }
}

impl Client for UploadPostClient {
    type Answer<T: DeserializeOwned> = T;

    fn api(&self) -> &Api {
        &self.api
    }

    /// upload-post sends its answers bare.
    fn read<T: DeserializeOwned>(&self, answer: T) -> Result<T, ProviderError> {
        Ok(answer)
    }

    /// upload-post's quota answers (a 429 naming a monthly `usage` or a
    /// daily cap's `violations`) are final, not throttles.
    fn failure(&self, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::Status {
                status: 429, body, ..
            } if is_quota(&body) => ProviderError::Quota {
                provider: Provider::UploadPost,
                message: quota_message(&body),
            },
            error => error,
        }
    }
}

/// Whether a 429's body is one of upload-post's quotas (the monthly limit
/// with its `usage`, a platform's daily cap with its `violations`) rather
/// than the per-minute rate limit.
fn is_quota(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("usage").is_some() || v.get("violations").is_some())
}

/// A quota answer's words: its message and each violation's.
fn quota_message(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let mut parts: Vec<String> = value
        .get("message")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    for violation in value
        .get("violations")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(message) = violation.get("message").and_then(serde_json::Value::as_str) {
            parts.push(message.to_owned());
        }
    }
    parts.join(": ")
}

/// A platform's state from its reported result. `over` says whether the
/// result is final even without a row status of its own (a webhook, a
/// synchronous answer, or a status answer that is `completed`/`failed`).
pub fn state_of(result: &wire::PlatformResult, over: bool) -> PublishState {
    let published = || PublishState::Published {
        url: result.post_address(),
    };
    let failed = || PublishState::Failed {
        error: result.failure(),
    };
    match (result.status.as_deref(), result.success) {
        (Some("completed"), Some(false)) | (Some("failed"), _) => failed(),
        (Some("completed"), _) => published(),
        (Some(_), _) => PublishState::Pending,
        (None, _) if !over => PublishState::Pending,
        (None, Some(true)) => published(),
        (None, _) => failed(),
    }
}
