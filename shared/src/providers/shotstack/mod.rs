//! Shotstack's Edit API: queue a render of a timeline (`render`) and read
//! its status (`get_render`); and its Serve API: where a finished render is
//! hosted for good (`hosted_assets`). Auth is the `x-api-key` header.
//! Shotstack's callbacks are unsigned, so the callbacks consumer confirms a
//! callback with these calls before trusting what it names.
//!
//! The base URL is the host (`https://api.shotstack.io`); every path carries
//! the stage, `v1` (production) or `stage` (the sandbox, `SHOTSTACK_ENV`).
//! Keys belong to one stage: a sandbox key is refused on `v1`.
//!
//! A render's own `url` is temporary: Shotstack deletes it after 24 hours.
//! The lasting copy is the one its hosting (the Serve API's CDN) makes a few
//! seconds later, announced by a `serve`/`copy` callback; that is the URL a
//! run keeps.
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{secret_header, Api, CallKind, Client, ProviderError};
use crate::domain::Provider;

#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::{AssetState, ClipSource, Output, RenderRequest, RenderState, Timeline};

pub const LIVE_BASE_URL: &str = "https://api.shotstack.io";

/// Where a key works: Shotstack's production stage or its sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShotstackStage {
    /// `v1`: production (watermark-free renders, paid).
    #[default]
    Production,
    /// `stage`: the sandbox (watermarked, free).
    Sandbox,
}

impl ShotstackStage {
    /// The path segment: `v1` or `stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "v1",
            Self::Sandbox => "stage",
        }
    }
}

impl std::str::FromStr for ShotstackStage {
    type Err = String;

    /// `v1` (or `production`) and `stage` (or `sandbox`), as `SHOTSTACK_ENV`
    /// takes them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "v1" | "production" => Ok(Self::Production),
            "stage" | "sandbox" => Ok(Self::Sandbox),
            other => Err(format!("{other:?} is not v1 or stage")),
        }
    }
}

/// `POST /edit/{stage}/render`.
pub fn render_path(stage: ShotstackStage) -> String {
    format!("/edit/{}/render", stage.as_str())
}

/// `GET /edit/{stage}/templates`: read-only, the key check.
pub fn templates_path(stage: ShotstackStage) -> String {
    format!("/edit/{}/templates", stage.as_str())
}

/// `GET /serve/{stage}/assets/render/{id}`: where a render is hosted.
pub fn assets_path(stage: ShotstackStage) -> String {
    format!("/serve/{}/assets/render", stage.as_str())
}

/// Whether `id` has the form Shotstack documents for render and asset ids
/// (a UUID, any version). Only such an id is ever put in a request path:
/// ids come from unsigned callbacks.
pub fn is_valid_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A render as `GET /edit/{stage}/render/{id}` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderStatus {
    pub id: String,
    pub status: RenderState,
    /// The rendered file, once `done`: temporary (24 h).
    pub url: Option<String>,
    /// Shotstack's message, when `failed`.
    pub error: Option<String>,
}

/// A hosted copy of a render, as the Serve API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostedAsset {
    pub id: String,
    pub status: AssetState,
    /// The lasting CDN URL.
    pub url: Option<String>,
    pub filename: Option<String>,
}

/// The Shotstack client; cheap to clone.
#[derive(Debug, Clone)]
pub struct ShotstackClient {
    pub(super) api: Api,
    api_key: SecretString,
    stage: ShotstackStage,
}

impl ShotstackClient {
    /// A client for the production stage; see [`ShotstackClient::on_stage`].
    pub fn new(base_url: &str, api_key: SecretString, timeout: Duration) -> Self {
        Self {
            api: Api::new(Provider::Shotstack, base_url, timeout),
            api_key,
            stage: ShotstackStage::Production,
        }
    }

    /// The same client, on `stage`.
    pub fn on_stage(mut self, stage: ShotstackStage) -> Self {
        self.stage = stage;
        self
    }

    pub fn stage(&self) -> ShotstackStage {
        self.stage
    }

    /// Queues a render and returns its id.
    #[tracing::instrument(skip_all, fields(provider = "shotstack"))]
    pub async fn render(&self, request: &RenderRequest<'_>) -> Result<String, ProviderError> {
        let path = render_path(self.stage);
        let queued: wire::Queued = self
            .call(CallKind::Submit, "render", || {
                self.api
                    .http
                    .post(self.api.url(&path))
                    .header(wire::API_KEY_HEADER, self.key())
                    .json(request)
            })
            .await?;
        if !is_valid_id(&queued.id) {
            return Err(self
                .api
                .decode(format!("render id {:?} is not a UUID", queued.id)));
        }
        tracing::info!(provider_job_id = %queued.id, "shotstack render queued");
        Ok(queued.id)
    }

    /// Reads a render's status (without the echoed timeline: `data=false`).
    #[tracing::instrument(skip_all, fields(provider = "shotstack", provider_job_id = id))]
    pub async fn get_render(&self, id: &str) -> Result<RenderStatus, ProviderError> {
        let data = self.render_data(id, false).await?;
        Ok(RenderStatus {
            id: data.id,
            status: data.status,
            url: data.url.filter(|u| !u.is_empty()),
            error: data.error.filter(|e| !e.is_empty()),
        })
    }

    /// The callback URL a render was submitted with, read from the edit its
    /// status echoes (`data=true`): what binds a render whose submission's
    /// answer was lost to the intent that named it (`pipeline::intents`).
    #[tracing::instrument(skip_all, fields(provider = "shotstack", provider_job_id = id))]
    pub async fn render_callback(&self, id: &str) -> Result<Option<String>, ProviderError> {
        let data = self.render_data(id, true).await?;
        Ok(data
            .data
            .as_ref()
            .and_then(|edit| edit.get("callback")?.as_str().map(str::to_owned)))
    }

    /// `GET /edit/{stage}/render/{id}`, with the submitted edit or without.
    async fn render_data(
        &self,
        id: &str,
        with_edit: bool,
    ) -> Result<wire::RenderData, ProviderError> {
        self.check_id(id)?;
        let path = format!("{}/{id}", render_path(self.stage));
        let data = if with_edit { "true" } else { "false" };
        self.call(CallKind::Read, "get render", || {
            self.api
                .http
                .get(self.api.url(&path))
                .query(&[("data", data)])
                .header(wire::API_KEY_HEADER, self.key())
        })
        .await
    }

    /// The hosted copies of a render (the Serve API): empty until Shotstack
    /// starts copying it, then `importing`, `ready` or `failed`.
    #[tracing::instrument(skip_all, fields(provider = "shotstack", provider_job_id = render_id))]
    pub async fn hosted_assets(&self, render_id: &str) -> Result<Vec<HostedAsset>, ProviderError> {
        self.check_id(render_id)?;
        let path = format!("{}/{render_id}", assets_path(self.stage));
        let call = || {
            self.api
                .http
                .get(self.api.url(&path))
                .header(wire::API_KEY_HEADER, self.key())
        };
        let answer: wire::AssetList = self
            .api
            .retrying(CallKind::Read, "hosted assets", || async {
                match self.api.send(call()).await {
                    // The docs show only the 200 answer; a 404 is read as
                    // "nothing hosted for this render yet".
                    Err(ProviderError::Status { status: 404, .. }) => {
                        Ok(wire::AssetList::default())
                    }
                    Err(error) => Err(error),
                    Ok(response) => self.api.json(response).await,
                }
            })
            .await?;
        Ok(answer
            .data
            .into_iter()
            .map(|asset| HostedAsset {
                id: asset.attributes.id,
                status: asset.attributes.status,
                url: asset.attributes.url.filter(|u| !u.is_empty()),
                filename: asset.attributes.filename,
            })
            .collect())
    }

    /// Lists the account's templates: a read that changes nothing, to check
    /// that the key works on this stage.
    #[tracing::instrument(skip_all, fields(provider = "shotstack"))]
    pub async fn check_key(&self) -> Result<(), ProviderError> {
        let path = templates_path(self.stage);
        let _: serde_json::Value = self
            .call(CallKind::Read, "templates", || {
                self.api
                    .http
                    .get(self.api.url(&path))
                    .header(wire::API_KEY_HEADER, self.key())
            })
            .await?;
        Ok(())
    }

    fn check_id(&self, id: &str) -> Result<(), ProviderError> {
        if is_valid_id(id) {
            Ok(())
        } else {
            Err(self.api.decode(format!(
                "{:?} is not a Shotstack id (a UUID); it was not sent",
                id.chars().take(80).collect::<String>()
            )))
        }
    }

    fn key(&self) -> reqwest::header::HeaderValue {
        secret_header(self.api_key.expose_secret())
    }
}

impl Client for ShotstackClient {
    type Answer<T: DeserializeOwned> = wire::Envelope<T>;

    fn api(&self) -> &Api {
        &self.api
    }

    /// Unwraps the `{success, message, response}` envelope.
    fn read<T: DeserializeOwned>(&self, envelope: wire::Envelope<T>) -> Result<T, ProviderError> {
        if !envelope.success {
            return Err(self
                .api
                .decode(format!("success=false: {}", envelope.message)));
        }
        Ok(envelope.response)
    }
}
