//! The external services a run submits work to: kie.ai (Veo 3 clips),
//! Shotstack (edit and render) and upload-post (publishing), as small HTTP
//! clients built once at start-up, plus mock servers that speak the same wire
//! formats so a whole run works offline (`PROVIDERS_MODE=mock`).
//!
//! Why one module: the clients, the mocks and `crate::webhooks` share each
//! provider's wire types (`<provider>::wire`), so the request we send, the
//! request the mock parses and the callback we verify are spelled once.
//! Every client takes its base URL, timeout and key from the caller, so tests
//! point them at a mock on an ephemeral port and `live` at the real host.
//! Errors never carry a key: keys go in sensitive headers only.
use std::time::Duration;

use reqwest::{RequestBuilder, Response};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::domain::Provider;

pub mod kieai;
pub mod llm;
pub mod mock;
pub mod shotstack;
pub mod upload_post;

pub use kieai::KieAiClient;
pub use shotstack::ShotstackClient;
pub use upload_post::UploadPostClient;

/// A provider call that did not produce a usable answer. Messages name the
/// provider and what went wrong; they never contain an API key.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider}: no answer within {timeout:?}")]
    Timeout {
        provider: Provider,
        timeout: Duration,
    },
    #[error("{provider}: request failed")]
    Transport {
        provider: Provider,
        #[source]
        source: reqwest::Error,
    },
    #[error("{provider}: the API key was refused (HTTP {status})")]
    Unauthorized { provider: Provider, status: u16 },
    #[error("{provider}: HTTP {status}: {body}")]
    Status {
        provider: Provider,
        status: u16,
        /// The start of the response body, for the operator.
        body: String,
        #[source]
        source: reqwest::Error,
    },
    /// The provider answered with its own error envelope (kie.ai `code`).
    #[error("{provider}: error {code}: {message}")]
    Api {
        provider: Provider,
        code: i64,
        message: String,
    },
    #[error("{provider}: unexpected response: {detail}")]
    Decode { provider: Provider, detail: String },
}

/// The API keys of the three providers.
#[derive(Debug, Clone)]
pub struct ProviderKeys {
    pub kieai: SecretString,
    pub shotstack: SecretString,
    pub upload_post: SecretString,
}

/// Where each provider's API lives: the real hosts, or a mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrls {
    pub kieai: String,
    pub shotstack: String,
    pub upload_post: String,
}

impl ProviderUrls {
    /// The real services.
    pub fn live() -> Self {
        Self {
            kieai: kieai::LIVE_BASE_URL.to_owned(),
            shotstack: shotstack::LIVE_BASE_URL.to_owned(),
            upload_post: upload_post::LIVE_BASE_URL.to_owned(),
        }
    }
}

/// The three clients, built once and shared by every persona tool.
#[derive(Debug, Clone)]
pub struct ProviderClients {
    pub kieai: KieAiClient,
    pub shotstack: ShotstackClient,
    pub upload_post: UploadPostClient,
}

impl ProviderClients {
    pub fn new(urls: &ProviderUrls, keys: ProviderKeys, timeout: Duration) -> Self {
        Self {
            kieai: KieAiClient::new(&urls.kieai, keys.kieai, timeout),
            shotstack: ShotstackClient::new(&urls.shotstack, keys.shotstack, timeout),
            upload_post: UploadPostClient::new(&urls.upload_post, keys.upload_post, timeout),
        }
    }
}

/// What every client shares: a base URL, an HTTP client with the timeout set,
/// and the mapping of transport and status failures to `ProviderError`.
#[derive(Debug, Clone)]
struct Api {
    provider: Provider,
    base_url: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl Api {
    fn new(provider: Provider, base_url: &str, timeout: Duration) -> Self {
        // Building fails only when no TLS backend can start; `send` sets the
        // timeout on each request as well, so the fallback keeps it.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            provider,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends and checks the status (`error_for_status`), keeping the start of
    /// an error body for the message.
    async fn send(&self, request: RequestBuilder) -> Result<Response, ProviderError> {
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ProviderError::Unauthorized {
                provider: self.provider,
                status: status.as_u16(),
            });
        }
        if let Err(source) = response.error_for_status_ref() {
            let body = response.text().await.unwrap_or_default();
            return Err(ProviderError::Status {
                provider: self.provider,
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
                source,
            });
        }
        Ok(response)
    }

    async fn json<T: DeserializeOwned>(&self, response: Response) -> Result<T, ProviderError> {
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.decode(e.to_string()))
    }

    fn transport(&self, source: reqwest::Error) -> ProviderError {
        if source.is_timeout() {
            ProviderError::Timeout {
                provider: self.provider,
                timeout: self.timeout,
            }
        } else {
            ProviderError::Transport {
                provider: self.provider,
                source,
            }
        }
    }

    fn decode(&self, detail: impl Into<String>) -> ProviderError {
        ProviderError::Decode {
            provider: self.provider,
            detail: detail.into(),
        }
    }
}

/// A header value that reqwest and tracing treat as sensitive. A key that is
/// not a valid header value is sent empty, so the provider refuses it (401).
fn secret_header(value: &str) -> reqwest::header::HeaderValue {
    let mut header = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}
