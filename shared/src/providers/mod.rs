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
pub use retry::{CallKind, RetryPolicy};

pub mod check;
#[cfg(test)]
mod contract;
pub mod kieai;
pub mod llm;
#[cfg(feature = "mocks")]
pub mod mock;
pub mod mock_faults;
pub mod retry;
pub mod shotstack;
pub mod signature;
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
    /// 401 or 403: a wrong key, a key for another environment (Shotstack's
    /// stages), or an account that may not do this (upload-post's plans).
    #[error("{provider}: HTTP {status}, the API key was refused or may not do this: {message}")]
    Unauthorized {
        provider: Provider,
        status: u16,
        /// The start of the provider's answer.
        message: String,
    },
    /// A quota of the account is used up (upload-post's monthly limit or a
    /// platform's daily cap): trying again soon will not help.
    #[error("{provider}: quota used up: {message}")]
    Quota { provider: Provider, message: String },
    #[error("{provider}: HTTP {status}: {body}")]
    Status {
        provider: Provider,
        status: u16,
        /// The start of the response body, for the operator.
        body: String,
        /// The wait the answer asked for (`Retry-After`), if any.
        retry_after: Option<Duration>,
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

impl ProviderError {
    /// Whether a call that failed this way may be tried again, and after
    /// how long the provider asked to wait: `Some(hint)` when it may.
    /// Reads repeat after any transient failure; a submission repeats only
    /// when the provider said it did not take the work (HTTP or envelope
    /// 429, 503, kie.ai's 455 "service unavailable", or no connection at
    /// all), because one that timed out or failed after arriving may have
    /// been accepted.
    pub fn retry(&self, kind: CallKind) -> Option<Option<Duration>> {
        let not_taken = match self {
            Self::Status {
                status: 429 | 503,
                retry_after,
                ..
            } => return Some(*retry_after),
            Self::Api {
                code: 429 | 455, ..
            } => return Some(None),
            Self::Transport { source, .. } => source.is_connect(),
            _ => false,
        };
        (not_taken || (kind == CallKind::Read && self.is_transient())).then_some(None)
    }

    /// Whether a submission that failed this way may have been accepted all
    /// the same: it went out and its answer did not come back (a timeout, a
    /// connection ended mid-answer, a gateway's 500, 502 or 504). What the
    /// provider said it did not take (`retry`), or refused for good, was not.
    pub fn may_have_been_accepted(&self) -> bool {
        self.is_transient() && self.retry(CallKind::Submit).is_none()
    }

    /// Whether trying again later may succeed: a timeout, a connection
    /// failure, a throttle or a server-side error. Past the client's own
    /// retries such a failure reaches the state machine as
    /// `Worker.Transient`; any other one is the provider's final word.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            // kie.ai's envelope codes: 429 rate limited, 455 service
            // unavailable, 500 server error.
            Self::Api { code, .. } => matches!(code, 429 | 455 | 500),
            Self::Unauthorized { .. } | Self::Quota { .. } | Self::Decode { .. } => false,
        }
    }
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
    /// Shotstack's stage (`SHOTSTACK_ENV`): production or the sandbox.
    pub shotstack_stage: shotstack::ShotstackStage,
    pub upload_post: String,
}

impl ProviderUrls {
    /// The real services (Shotstack's production stage).
    pub fn live() -> Self {
        Self {
            kieai: kieai::LIVE_BASE_URL.to_owned(),
            shotstack: shotstack::LIVE_BASE_URL.to_owned(),
            shotstack_stage: shotstack::ShotstackStage::Production,
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
            shotstack: ShotstackClient::new(&urls.shotstack, keys.shotstack, timeout)
                .on_stage(urls.shotstack_stage),
            upload_post: UploadPostClient::new(&urls.upload_post, keys.upload_post, timeout),
        }
    }

    /// The same clients, retrying as `policy` says (every client starts
    /// with [`RetryPolicy::DEFAULT`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.kieai.api.retry = policy;
        self.shotstack.api.retry = policy;
        self.upload_post.api.retry = policy;
        self
    }
}

/// A provider's client, as its calls share it: the `Api` it calls through
/// and how it reads an answer into a result.
trait Client {
    /// An answer holding a `T` as the provider sends it: its envelope, or
    /// `T` itself.
    type Answer<T: DeserializeOwned>: DeserializeOwned;

    fn api(&self) -> &Api;

    /// The result an answer holds: its envelope checked and unwrapped.
    fn read<T: DeserializeOwned>(&self, answer: Self::Answer<T>) -> Result<T, ProviderError>;

    /// A refused or failed request as this provider means it (by default,
    /// as it is).
    fn failure(&self, error: ProviderError) -> ProviderError {
        error
    }

    /// One call, retried as its kind allows: the request `build` makes, its
    /// JSON answer read.
    async fn call<T: DeserializeOwned>(
        &self,
        kind: CallKind,
        name: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, ProviderError> {
        let api = self.api();
        api.retrying(kind, name, || async {
            let response = api.send(build()).await.map_err(|e| self.failure(e))?;
            self.read(api.json(response).await?)
        })
        .await
    }
}

/// What every client shares: a base URL, an HTTP client with the timeout set,
/// the retry policy, and the mapping of transport and status failures to
/// `ProviderError`.
#[derive(Debug, Clone)]
struct Api {
    provider: Provider,
    base_url: String,
    timeout: Duration,
    http: reqwest::Client,
    retry: RetryPolicy,
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
            retry: RetryPolicy::DEFAULT,
        }
    }

    /// Runs one `attempt` of a call (request, answer, its reading) until it
    /// succeeds, fails in a way `kind` may not repeat, or the retry policy
    /// runs out; answers the last failure then.
    async fn retrying<T, F, Fut>(
        &self,
        kind: CallKind,
        call: &'static str,
        mut attempt: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut failed = 0;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            failed += 1;
            let Some(wait) = error
                .retry(kind)
                .and_then(|hint| self.retry.delay(failed, hint))
            else {
                return Err(error);
            };
            tracing::warn!(
                provider = %self.provider,
                call,
                attempt = failed,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "provider call failed; trying again"
            );
            crate::telemetry::metrics::count(
                "mw_provider_retries_total",
                "Provider calls tried again after a transient failure, by provider and call.",
                &[("provider", self.provider.as_str()), ("call", call)],
            );
            tokio::time::sleep(wait).await;
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
            let body = response.text().await.unwrap_or_default();
            return Err(ProviderError::Unauthorized {
                provider: self.provider,
                status: status.as_u16(),
                message: body.trim().chars().take(300).collect(),
            });
        }
        if let Err(source) = response.error_for_status_ref() {
            let retry_after = retry::retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            return Err(ProviderError::Status {
                provider: self.provider,
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
                retry_after,
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
