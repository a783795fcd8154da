//! Shotstack's Edit API v1: queue a render of a timeline (`render`) and read
//! its status (`get_render`). Auth is the `x-api-key` header. Shotstack's
//! callbacks are unsigned, so the callbacks consumer confirms a render with
//! `get_render` before trusting the URL a callback names.
//!
//! The base URL is the host (`https://api.shotstack.io`); the paths carry the
//! `v1` (production) stage. Shotstack's sandbox is the `stage` path instead,
//! which this client does not target.
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{secret_header, Api, ProviderError};
use crate::domain::Provider;

#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::{ClipSource, Output, RenderRequest, RenderState, Timeline};

pub const LIVE_BASE_URL: &str = "https://api.shotstack.io";
pub const RENDER_PATH: &str = "/edit/v1/render";

/// A render as `GET /edit/v1/render/{id}` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderStatus {
    pub id: String,
    pub status: RenderState,
    /// The rendered file, once `done`.
    pub url: Option<String>,
    /// Shotstack's message, when `failed`.
    pub error: Option<String>,
}

/// The Shotstack client; cheap to clone.
#[derive(Debug, Clone)]
pub struct ShotstackClient {
    api: Api,
    api_key: SecretString,
}

impl ShotstackClient {
    pub fn new(base_url: &str, api_key: SecretString, timeout: Duration) -> Self {
        Self {
            api: Api::new(Provider::Shotstack, base_url, timeout),
            api_key,
        }
    }

    /// Queues a render and returns its id.
    #[tracing::instrument(skip_all, fields(provider = "shotstack"))]
    pub async fn render(&self, request: &RenderRequest<'_>) -> Result<String, ProviderError> {
        let call = self
            .api
            .http
            .post(self.api.url(RENDER_PATH))
            .header(wire::API_KEY_HEADER, self.key())
            .json(request);
        let response = self.api.send(call).await?;
        let envelope: wire::Envelope<wire::Queued> = self.api.json(response).await?;
        if !envelope.success {
            return Err(self
                .api
                .decode(format!("success=false: {}", envelope.message)));
        }
        tracing::info!(provider_job_id = %envelope.response.id, "shotstack render queued");
        Ok(envelope.response.id)
    }

    /// Reads a render's status (without the echoed timeline: `data=false`).
    #[tracing::instrument(skip_all, fields(provider = "shotstack", provider_job_id = id))]
    pub async fn get_render(&self, id: &str) -> Result<RenderStatus, ProviderError> {
        let call = self
            .api
            .http
            .get(self.api.url(&format!("{RENDER_PATH}/{id}")))
            .query(&[("data", "false")])
            .header(wire::API_KEY_HEADER, self.key());
        let response = self.api.send(call).await?;
        let envelope: wire::Envelope<wire::RenderData> = self.api.json(response).await?;
        let data = envelope.response;
        Ok(RenderStatus {
            id: data.id,
            status: data.status,
            url: data.url.filter(|u| !u.is_empty()),
            error: data.error.filter(|e| !e.is_empty()),
        })
    }

    fn key(&self) -> reqwest::header::HeaderValue {
        secret_header(self.api_key.expose_secret())
    }
}
