//! The composition root: where the adapters are chosen and wired, once, at
//! start-up (`core` for every process, `llm` for the model); `Stack`, the
//! whole stack in one process, in `stack`.
#[cfg(feature = "local")]
mod stack;
#[cfg(feature = "local")]
pub use stack::{start_mocks, Stack, StackOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, EngineKind, LlmConfig};
use crate::domain::Project;
use crate::engine::definitions::{self, substitutions};
use crate::engine::stepfunctions::StepFunctionsEngine;
use crate::engine::LocalQueue;
use crate::engine::{Engine, EngineError, LocalEngine};
use crate::hitl::HitlSigner;
use crate::personas::ScriptedLlm;
use crate::pipeline::{Pipeline, Settings};
use crate::providers::llm::{Llm, LlmError, LlmSettings, OpenAiLlm};
use crate::providers::{ProviderClients, ProviderKeys, ProviderUrls};
use crate::queue::sqs::SqsQueue;
use crate::queue::Queue;
use crate::store::StoreError;
use crate::webhooks::WebhookSecrets;

/// Why the stack did not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("state machine definitions: {0}")]
    Definitions(#[from] definitions::DefinitionError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("mock providers: {0}")]
    Mocks(std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// upload-post calls back the one webhook URL registered for the account:
/// registers ours (with the mocks, and with a live account when
/// `WEBHOOK_BASE_URL` is set).
pub async fn register_upload_post_webhook(pipeline: &Pipeline) {
    let url = format!(
        "{}/v1/webhooks/upload-post",
        pipeline.settings.webhook_base_url
    );
    match pipeline.providers.upload_post.set_webhook(&url).await {
        Ok(registration) => {
            tracing::info!(webhook_url = %url, settings_url = %registration.settings_url, "upload-post webhook registered")
        }
        Err(e) => tracing::error!(
            error = %e,
            webhook_url = %url,
            "could not register the upload-post webhook: publishing settles only by asking upload-post \
             (the reconciler); `mw providers check` says more"
        ),
    }
}

/// The pipeline core on the store and engine `config` names, the persona
/// graphs registered (local engine) or found (Step Functions), providers at
/// `provider_urls`: what the stack serves, what `mw worker` runs and what
/// each Lambda function builds once per cold start. The local engine is
/// returned too, when it is the one.
pub async fn core(
    config: &Config,
    public_base_url: String,
    provider_urls: ProviderUrls,
) -> Result<(Pipeline, Option<LocalEngine>), StackError> {
    let backend = crate::store::open(&config.database).await?;
    let project = |name: &str| -> Result<Project, StackError> {
        name.parse()
            .map_err(|e| StackError::Setup(format!("state machine {name}: {e}")))
    };
    let mut state_machines = HashMap::new();
    let (engine, queue, local): (Arc<dyn Engine>, Arc<dyn Queue>, _) = match &config.engine {
        EngineKind::Local => {
            let engine = LocalEngine::start(backend.engine_store()?).await?;
            for (name, text) in definitions::embedded(&substitutions(&config.task_queue_url))? {
                let arn = engine.register_state_machine(&name, &text)?;
                state_machines.insert(project(&name)?, arn);
            }
            (
                Arc::new(engine.clone()),
                Arc::new(LocalQueue::new(engine.clone())),
                Some(engine),
            )
        }
        EngineKind::StepFunctions {
            state_machine_arns,
            name_prefix,
        } => {
            let sdk = crate::aws::sdk_config().await;
            let engine = StepFunctionsEngine::new(&sdk);
            let names: Vec<&str> = definitions::EMBEDDED.iter().map(|(n, _)| *n).collect();
            for (name, arn) in engine
                .resolve(&names, state_machine_arns, name_prefix)
                .await?
            {
                state_machines.insert(project(&name)?, arn);
            }
            (Arc::new(engine), Arc::new(SqsQueue::new(&sdk)), None)
        }
    };
    let webhook_base_url = config
        .webhook_base_url
        .clone()
        .unwrap_or_else(|| public_base_url.clone());
    let providers = ProviderClients::new(&provider_urls, provider_keys(config), PROVIDER_TIMEOUT);
    let llm = llm(&llm_settings(&config.llm)).map_err(|e| StackError::Setup(e.to_string()))?;
    let pipeline = Pipeline {
        store: Arc::clone(&backend.store),
        engine,
        queue,
        hitl: Arc::new(HitlSigner::new(config.hitl_secret.clone())),
        settings: Arc::new(Settings {
            public_base_url,
            webhook_base_url,
            providers_mode: config.providers_mode,
            task_queue_url: config.task_queue_url.clone(),
            callback_queue_url: config.callback_queue_url.clone(),
            reconcile: config.reconcile,
            prices: config.prices.clone(),
            budget_usd: config.budget_usd,
            on_aws: config.engine != EngineKind::Local,
        }),
        state_machines: Arc::new(state_machines),
        providers: Arc::new(providers),
        llm,
        webhook_secrets: Arc::new(WebhookSecrets::from_config(config)),
        run_watch: Arc::default(),
        tracer: crate::telemetry::spans::Tracer::new(
            Arc::clone(&backend.store),
            config
                .otlp
                .as_ref()
                .map(crate::telemetry::otlp::OtlpExporter::start),
        ),
    };
    Ok((pipeline, local))
}

/// How long a provider call may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);

/// The provider keys: the configured ones (required in live mode), or a
/// stand-in the mocks accept.
pub fn provider_keys(config: &Config) -> ProviderKeys {
    let key = |k: &Option<secrecy::SecretString>| {
        k.clone()
            .unwrap_or_else(|| secrecy::SecretString::from("mock-provider-key".to_owned()))
    };
    ProviderKeys {
        kieai: key(&config.kieai_api_key),
        shotstack: key(&config.shotstack_api_key),
        upload_post: key(&config.upload_post_api_key),
    }
}

/// Picks the `Llm` adapter once, at start-up: no base URL means the
/// scripted brain.
pub fn llm(settings: &LlmSettings) -> Result<Arc<dyn Llm>, LlmError> {
    Ok(match &settings.base_url {
        None => Arc::new(ScriptedLlm::new()),
        Some(base) => Arc::new(OpenAiLlm::new(
            base,
            settings.api_key.clone(),
            &settings.model,
            settings.timeout,
        )?),
    })
}

fn llm_settings(llm: &LlmConfig) -> LlmSettings {
    match llm {
        LlmConfig::Scripted => LlmSettings::default(),
        LlmConfig::OpenAi {
            base_url,
            api_key,
            model,
        } => LlmSettings {
            base_url: Some(base_url.clone()),
            api_key: api_key.clone(),
            model: model.clone(),
            ..LlmSettings::default()
        },
    }
}

/// Where a local `mw serve` can be reached: `<home>/serve.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeFile {
    pub url: String,
    pub pid: u32,
    /// The store it serves (`DatabaseConfig::location`).
    #[serde(default)]
    pub store: Option<String>,
}

impl ServeFile {
    pub fn path(home: &Path) -> PathBuf {
        home.join("serve.json")
    }

    pub fn read(home: &Path) -> Option<ServeFile> {
        let text = std::fs::read_to_string(Self::path(home)).ok()?;
        serde_json::from_str(&text).ok()
    }

    #[cfg(feature = "local")]
    fn write(&self, home: &Path) -> std::io::Result<PathBuf> {
        crate::private_files::create_dir(home)?;
        let path = Self::path(home);
        crate::private_files::write(&path, serde_json::to_string(self)?)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_base_url_means_the_scripted_brain() {
        let llm = llm(&LlmSettings::default()).unwrap();
        assert!(format!("{llm:?}").contains("Scripted"));
    }
}
