//! The OpenAI-compatible adapter: `POST {base}/chat/completions` with tool
//! calling. OpenAI, Azure-style gateways, vLLM, Ollama and LM Studio all speak
//! this format, so one small client reaches them all.
//!
//! The key goes in an `Authorization: Bearer` header marked sensitive and is
//! scrubbed from any provider message we surface, so neither logs nor errors
//! can carry it.
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{Llm, LlmError, LlmRequest, LlmResponse};
use crate::providers::retry::RetryPolicy;

#[cfg(test)]
pub(crate) mod fake_server;
#[cfg(test)]
mod tests;
mod wire;

use wire::{reply_from_wire, ChatRequest, ChatResponse, ErrorEnvelope};

/// A client for one OpenAI-compatible endpoint and model.
#[derive(Debug, Clone)]
pub struct OpenAiLlm {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
    retry: RetryPolicy,
}

impl OpenAiLlm {
    /// `base_url` is the API root, e.g. `https://api.openai.com/v1`; the
    /// timeout bounds each whole request, body included.
    pub fn new(
        base_url: &str,
        api_key: Option<SecretString>,
        model: &str,
        timeout: Duration,
    ) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(LlmError::Transport)?;
        Ok(Self {
            http,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            model: model.to_owned(),
            timeout,
            retry: RetryPolicy::DEFAULT,
        })
    }

    /// The same client, retrying as `policy` says.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    fn transport_error(&self, error: reqwest::Error) -> LlmError {
        if error.is_timeout() {
            LlmError::Timeout {
                after: self.timeout,
            }
        } else {
            LlmError::Transport(error)
        }
    }

    /// A provider message, trimmed and with our key removed should the
    /// provider have echoed it.
    fn scrub(&self, message: &str) -> String {
        let mut message: String = message.trim().chars().take(500).collect();
        if let Some(key) = &self.api_key {
            let key = key.expose_secret();
            if !key.is_empty() {
                message = message.replace(key, "[redacted]");
            }
        }
        message
    }
}

#[async_trait]
impl Llm for OpenAiLlm {
    /// One completion, asked again after a timeout, a lost connection, a
    /// throttle or a server error (waiting what the provider asks, within
    /// the retry policy); a used-up quota, a refusal or a cut-off answer is
    /// final.
    async fn chat(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let mut failed = 0;
        loop {
            let error = match self.chat_once(request).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            failed += 1;
            let wait = error
                .is_transient()
                .then(|| self.retry.delay(failed, error.retry_after()))
                .flatten();
            let Some(wait) = wait else {
                return Err(error);
            };
            tracing::warn!(
                model = %self.model,
                attempt = failed,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "llm call failed; trying again"
            );
            crate::telemetry::metrics::count(
                "mw_llm_retries_total",
                "LLM calls tried again after a transient failure.",
                &[],
            );
            tokio::time::sleep(wait).await;
        }
    }
}

impl OpenAiLlm {
    async fn chat_once(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let mut builder = self
            .http
            .post(&self.endpoint)
            .json(&ChatRequest::new(&self.model, request));
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose_secret());
        }
        let response = builder.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let retry_after = crate::providers::retry::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        tracing::debug!(
            model = %self.model,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "llm chat completion"
        );
        if !status.is_success() {
            let (message, code) = serde_json::from_slice::<ErrorEnvelope>(&body)
                .map(|envelope| envelope.error.into_parts())
                .unwrap_or_else(|_| (String::from_utf8_lossy(&body).into_owned(), None));
            let message = match self.scrub(&message) {
                m if m.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
                m => m,
            };
            return Err(LlmError::Status {
                status: status.as_u16(),
                message,
                code,
                retry_after,
            });
        }
        let completion: ChatResponse = serde_json::from_slice(&body)
            .map_err(|e| LlmError::Malformed(format!("not a chat completion: {e}")))?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Malformed("no choices in the completion".to_owned()))?;
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
            return Err(LlmError::Unusable(format!(
                "the model refused: {}",
                self.scrub(&refusal)
            )));
        }
        match choice.finish_reason.as_deref() {
            Some("length") => {
                return Err(LlmError::Unusable(
                    "the answer was cut off at the token limit (finish_reason length)".into(),
                ))
            }
            Some("content_filter") => return Err(LlmError::Unusable(
                "the provider's content filter withheld the answer (finish_reason content_filter)"
                    .into(),
            )),
            _ => {}
        }
        Ok(LlmResponse {
            message: reply_from_wire(choice.message.content, choice.message.tool_calls),
            usage: completion.usage.map(Into::into),
            model: completion.model.unwrap_or_else(|| self.model.clone()),
        })
    }
}
