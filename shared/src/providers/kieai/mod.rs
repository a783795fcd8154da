//! kie.ai's Veo 3 API: submit a clip (`generate`), read its state
//! (`record_info`). kie.ai answers HTTP 200 with `{code, msg, data}` for
//! most outcomes, so a `code` other than 200 is an error carrying `msg`.
//! Auth is `Authorization: Bearer <key>`. The result also arrives by callback
//! (see `crate::webhooks`); `record_info` is the authority the callbacks
//! consumer confirms against, because kie.ai's signature does not cover the
//! body.
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{secret_header, Api, CallKind, Client, ProviderError};
use crate::domain::Provider;

#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::VeoGenerate;

/// The real API host.
pub const LIVE_BASE_URL: &str = "https://api.kie.ai";
pub const GENERATE_PATH: &str = "/api/v1/veo/generate";
pub const RECORD_INFO_PATH: &str = "/api/v1/veo/record-info";
/// The account's remaining credits (docs.kie.ai, common-api).
pub const CREDIT_PATH: &str = "/api/v1/chat/credit";

/// A Veo task as `record-info` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeoTask {
    pub task_id: String,
    pub state: VeoState,
    /// The `callBackUrl` the task was submitted with, as `paramJson` echoes
    /// it: what binds a task whose submission's answer was lost to the
    /// intent that named it (`pipeline::intents`).
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VeoState {
    /// `successFlag` 0: still generating.
    Pending,
    /// `successFlag` 1.
    Succeeded { result_urls: Vec<String> },
    /// `successFlag` 2 or 3, with kie.ai's `errorCode` and `errorMessage`.
    Failed { code: Option<i64>, message: String },
}

/// The kie.ai client; cheap to clone.
#[derive(Debug, Clone)]
pub struct KieAiClient {
    pub(super) api: Api,
    api_key: SecretString,
}

impl KieAiClient {
    pub fn new(base_url: &str, api_key: SecretString, timeout: Duration) -> Self {
        Self {
            api: Api::new(Provider::KieAi, base_url, timeout),
            api_key,
        }
    }

    /// Submits a generation and returns kie.ai's `taskId`.
    #[tracing::instrument(skip_all, fields(provider = "kieai", model = request.model))]
    pub async fn generate(&self, request: &VeoGenerate<'_>) -> Result<String, ProviderError> {
        let data: wire::Submitted = self
            .call(CallKind::Submit, "generate", || {
                self.api
                    .http
                    .post(self.api.url(GENERATE_PATH))
                    .header(reqwest::header::AUTHORIZATION, self.bearer())
                    .json(request)
            })
            .await?;
        tracing::info!(provider_job_id = %data.task_id, "kie.ai task submitted");
        Ok(data.task_id)
    }

    /// Reads a task's state.
    #[tracing::instrument(skip_all, fields(provider = "kieai", provider_job_id = task_id))]
    pub async fn record_info(&self, task_id: &str) -> Result<VeoTask, ProviderError> {
        let record: wire::RecordInfo = self
            .call(CallKind::Read, "record-info", || {
                self.api
                    .http
                    .get(self.api.url(RECORD_INFO_PATH))
                    .query(&[("taskId", task_id)])
                    .header(reqwest::header::AUTHORIZATION, self.bearer())
            })
            .await?;
        let state = match record.success_flag {
            0 => VeoState::Pending,
            1 => VeoState::Succeeded {
                result_urls: record.response.map(|r| r.result_urls).unwrap_or_default(),
            },
            2 | 3 => VeoState::Failed {
                code: record.error_code,
                message: record
                    .error_message
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "generation failed".to_owned()),
            },
            other => return Err(self.api.decode(format!("unknown successFlag {other}"))),
        };
        let callback_url = record
            .param_json
            .as_deref()
            .and_then(|params| serde_json::from_str::<serde_json::Value>(params).ok())
            .and_then(|params| params.get("callBackUrl")?.as_str().map(str::to_owned));
        Ok(VeoTask {
            task_id: record.task_id,
            state,
            callback_url,
        })
    }

    /// The account's remaining credits (`GET /api/v1/chat/credit`): a call
    /// that changes nothing, to check the key.
    #[tracing::instrument(skip_all, fields(provider = "kieai"))]
    pub async fn credits(&self) -> Result<f64, ProviderError> {
        self.call(CallKind::Read, "credit", || {
            self.api
                .http
                .get(self.api.url(CREDIT_PATH))
                .header(reqwest::header::AUTHORIZATION, self.bearer())
        })
        .await
    }

    fn bearer(&self) -> reqwest::header::HeaderValue {
        secret_header(&format!("Bearer {}", self.api_key.expose_secret()))
    }
}

impl Client for KieAiClient {
    type Answer<T: DeserializeOwned> = wire::Envelope<T>;

    fn api(&self) -> &Api {
        &self.api
    }

    /// Unwraps `data` when `code` is 200; otherwise the envelope is the error.
    fn read<T: DeserializeOwned>(&self, envelope: wire::Envelope<T>) -> Result<T, ProviderError> {
        match (envelope.code, envelope.data) {
            (200, Some(data)) => Ok(data),
            (200, None) => Err(self.api.decode("code 200 without data")),
            (401, _) => Err(ProviderError::Unauthorized {
                provider: Provider::KieAi,
                status: 401,
                message: envelope.msg,
            }),
            (code, _) => Err(ProviderError::Api {
                provider: Provider::KieAi,
                code,
                message: envelope.msg,
            }),
        }
    }
}
