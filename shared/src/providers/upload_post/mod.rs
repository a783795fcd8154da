//! upload-post: publish a rendered video to social platforms (`upload`),
//! read an upload's state (`status`) and register our webhook URL
//! (`set_webhook`). Auth is `Authorization: Apikey <key>`.
//!
//! Why multipart with a URL: `POST /api/upload` is documented only as
//! `multipart/form-data`, and its `video` field "can be a file upload or a
//! video URL". Sending the Shotstack CDN URL as that text field avoids
//! downloading and re-uploading the file. We always ask for `async_upload`
//! so the call returns at once; the outcome arrives by webhook, one
//! `upload_completed` per platform, signed over the raw body.
use std::time::Duration;

use reqwest::multipart::Form;
use secrecy::{ExposeSecret, SecretString};

use super::{secret_header, Api, ProviderError};
use crate::domain::Provider;

#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::Upload;

pub const LIVE_BASE_URL: &str = "https://api.upload-post.com";
pub const UPLOAD_PATH: &str = "/api/upload";
pub const STATUS_PATH: &str = "/api/uploadposts/status";
/// The docs show this one endpoint on `app.upload-post.com`; the client sends
/// it to its base URL like the others.
pub const NOTIFICATIONS_PATH: &str = "/api/uploadposts/users/notifications";

/// What upload-post said about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    /// Returned for asynchronous uploads; `status` takes it.
    pub request_id: Option<String>,
    /// The id upload-post's webhooks carry.
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

/// The answer of the status endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// upload-post's word for the whole request (`pending`, `completed`, …).
    pub status: String,
    pub platforms: Vec<PlatformStatus>,
}

/// The upload-post client; cheap to clone.
#[derive(Debug, Clone)]
pub struct UploadPostClient {
    api: Api,
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
    #[tracing::instrument(skip_all, fields(provider = "upload-post", user = upload.user))]
    pub async fn upload(&self, upload: &Upload<'_>) -> Result<UploadResult, ProviderError> {
        let mut form = Form::new()
            .text("user", upload.user.to_owned())
            .text("title", upload.title.to_owned())
            .text("video", upload.video_url.to_owned())
            .text("async_upload", upload.async_upload.to_string());
        if let Some(description) = upload.description {
            form = form.text("description", description.to_owned());
        }
        for platform in upload.platforms {
            form = form.text("platform[]", (*platform).to_owned());
        }
        let call = self
            .api
            .http
            .post(self.api.url(UPLOAD_PATH))
            .header(reqwest::header::AUTHORIZATION, self.auth())
            .multipart(form);
        let response = self.api.send(call).await?;
        let answer: wire::UploadAnswer = self.api.json(response).await?;
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
                    .map_or(PublishState::Pending, |(_, result)| state_of(result)),
            })
            .collect();
        tracing::info!(request_id = ?answer.request_id, job_id = ?answer.job_id, "upload-post upload accepted");
        Ok(UploadResult {
            request_id: answer.request_id,
            job_id: answer.job_id,
            platforms,
        })
    }

    /// Reads an asynchronous upload's state by its `request_id`.
    #[tracing::instrument(skip_all, fields(provider = "upload-post", request_id = request_id))]
    pub async fn status(&self, request_id: &str) -> Result<UploadStatus, ProviderError> {
        let call = self
            .api
            .http
            .get(self.api.url(STATUS_PATH))
            .query(&[("request_id", request_id)])
            .header(reqwest::header::AUTHORIZATION, self.auth());
        let response = self.api.send(call).await?;
        let answer: wire::StatusAnswer = self.api.json(response).await?;
        let platforms = answer
            .results
            .as_ref()
            .map(wire::platform_results)
            .unwrap_or_default()
            .into_iter()
            .map(|(platform, result)| PlatformStatus {
                state: state_of(&result),
                platform,
            })
            .collect();
        Ok(UploadStatus {
            status: answer.status.unwrap_or_else(|| "unknown".into()),
            platforms,
        })
    }

    /// Points upload-post's webhooks at `webhook_url`, for upload results only.
    #[tracing::instrument(skip_all, fields(provider = "upload-post"))]
    pub async fn set_webhook(&self, webhook_url: &str) -> Result<(), ProviderError> {
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
        let call = self
            .api
            .http
            .post(self.api.url(NOTIFICATIONS_PATH))
            .header(reqwest::header::AUTHORIZATION, self.auth())
            .json(&body);
        self.api.send(call).await?;
        Ok(())
    }

    fn auth(&self) -> reqwest::header::HeaderValue {
        secret_header(&format!(
            "{} {}",
            wire::AUTH_SCHEME,
            self.api_key.expose_secret()
        ))
    }
}

/// A platform's state from its reported result.
pub fn state_of(result: &wire::PlatformResult) -> PublishState {
    match result.success {
        Some(true) => PublishState::Published {
            url: result.url.clone().or_else(|| result.post_url.clone()),
        },
        Some(false) => PublishState::Failed {
            error: result
                .error
                .clone()
                .unwrap_or_else(|| "upload failed".into()),
        },
        None => PublishState::Pending,
    }
}
