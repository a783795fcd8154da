//! The composition root: where the adapters are chosen and wired, once, at
//! start-up (`core` for every process, `llm` for the model).
//!
//! The whole stack in one process: the store, the durable local engine with
//! the persona graphs, the queues and their consumers (worker, callbacks),
//! the HTTP API and — with `PROVIDERS_MODE=mock` — the mock providers. This is
//! what `mw serve` serves, what `mw live-run` boots when no stack runs, and
//! what the integration tests start on ephemeral ports. With
//! `ENGINE=stepfunctions` the graphs run on Step Functions and the queues are
//! SQS queues that `mw worker` (or the Lambda functions) consume.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::config::{Config, EngineKind, LlmConfig};
use crate::domain::{Project, ProvidersMode};
use crate::engine::definitions::{self, substitutions};
use crate::engine::stepfunctions::StepFunctionsEngine;
use crate::engine::{self, LocalQueue};
use crate::engine::{Engine, EngineError, LocalEngine};
use crate::hitl::HitlSigner;
use crate::personas::ScriptedLlm;
use crate::pipeline::callbacks::Callbacks;
use crate::pipeline::worker::Worker;
use crate::pipeline::{Pipeline, Settings};
use crate::providers::llm::{Llm, LlmError, LlmSettings, OpenAiLlm};
use crate::providers::mock::{MockConfig, MockProviders};
use crate::providers::{ProviderClients, ProviderKeys, ProviderUrls};
use crate::queue::sqs::SqsQueue;
use crate::queue::Queue;
use crate::store::StoreError;
use crate::webhooks::WebhookSecrets;

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub bind: SocketAddr,
    /// Leave `<home>/serve.json` so CLI commands find this stack.
    pub write_serve_file: bool,
}

impl StackOptions {
    pub fn at(bind: SocketAddr) -> Self {
        Self {
            bind,
            write_serve_file: false,
        }
    }

    /// On a free loopback port.
    pub fn ephemeral() -> Self {
        Self::at(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

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

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    pub base_url: String,
    pub addr: SocketAddr,
    pub pipeline: Pipeline,
    /// The local engine, unless `ENGINE=stepfunctions`.
    pub engine: Option<LocalEngine>,
    pub mocks: Option<MockProviders>,
    serve_file: Option<PathBuf>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    stop_reconciler: tokio::sync::watch::Sender<bool>,
    reconciler: JoinHandle<()>,
}

impl Stack {
    pub async fn start(config: &Config, options: StackOptions) -> Result<Stack, StackError> {
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .map_err(|source| StackError::Bind {
                addr: options.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StackError::Bind {
            addr: options.bind,
            source,
        })?;
        let base_url = format!("http://{addr}");
        let public_base_url = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| base_url.clone());

        let (mocks, provider_urls) = start_mocks(config).await?;
        let (pipeline, engine) = core(config, public_base_url, provider_urls).await?;
        if mocks.is_some() || config.webhook_base_url.is_some() {
            register_upload_post_webhook(&pipeline).await;
        }
        match &engine {
            Some(engine) => {
                // What Step Functions' execution status events do on AWS: a
                // run whose execution ended outside its graph (timed out,
                // stopped) is recorded.
                let recorder = pipeline.clone();
                engine.on_execution_end(Arc::new(move |ended| {
                    if matches!(ended.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
                        let recorder = recorder.clone();
                        tokio::spawn(async move {
                            if let Err(e) = recorder.record_execution_end(&ended).await {
                                tracing::error!(execution = %ended.execution_arn, error = %e, "could not record the run of an ended execution");
                            }
                        });
                    }
                }));
                engine::local::consume(
                    engine,
                    &config.task_queue_url,
                    Arc::new(Worker {
                        pipeline: pipeline.clone(),
                    }),
                )
                .await?;
                engine::local::consume(
                    engine,
                    &config.callback_queue_url,
                    Arc::new(Callbacks {
                        pipeline: pipeline.clone(),
                    }),
                )
                .await?;
                pipeline
                    .resend_received_callbacks()
                    .await
                    .map_err(|e| StackError::Setup(format!("resending callbacks: {e}")))?;
            }
            None => tracing::info!(
                task_queue = %config.task_queue_url,
                callback_queue = %config.callback_queue_url,
                "the queues are SQS queues: `mw worker` (or the Lambda functions) consume them"
            ),
        }

        // Jobs whose callback is overdue are asked about in the background,
        // where this process handles the callbacks (with Step Functions, the
        // consumers of the SQS queues do: `mw worker`, the callbacks function).
        let (stop_reconciler, reconciler_stopped) = tokio::sync::watch::channel(false);
        let reconciler = match &engine {
            Some(_) => tokio::spawn(pipeline.clone().run_reconciler(reconciler_stopped)),
            None => tokio::spawn(async {}),
        };

        let state = AppState {
            pipeline: pipeline.clone(),
            api_key: config.api_key.clone(),
        };
        let router = api::router(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let run_watch = Arc::clone(&pipeline.run_watch);
        let limits = config.server;
        let server = tokio::spawn(async move {
            api::server::serve(listener, router, limits, async move {
                let _ = stopped.await;
                run_watch.close();
            })
            .await;
        });
        let serve_file = if options.write_serve_file {
            let file = ServeFile {
                url: base_url.clone(),
                pid: std::process::id(),
                store: Some(config.database.location()),
            };
            Some(
                file.write(&config.home)
                    .map_err(|e| StackError::Setup(format!("writing serve.json: {e}")))?,
            )
        } else {
            None
        };
        tracing::info!(%base_url, providers_mode = %config.providers_mode, store = pipeline.store.backend(), "stack started");
        Ok(Stack {
            base_url,
            addr,
            pipeline,
            engine,
            mocks,
            serve_file,
            stop,
            server,
            stop_reconciler,
            reconciler,
        })
    }

    /// Stops serving, lets in-flight requests finish, sends the spans not
    /// yet exported (OTLP), stops the mocks.
    pub async fn shutdown(self) {
        let _ = self.stop_reconciler.send(true);
        let _ = self.reconciler.await;
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        self.pipeline.tracer.flush().await;
        if let Some(mocks) = self.mocks {
            mocks.shutdown().await;
        }
        if let Some(file) = self.serve_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Starts the mock providers when `PROVIDERS_MODE=mock`; answers them and
/// the provider URLs to use (theirs, or the configured ones).
pub async fn start_mocks(
    config: &Config,
) -> Result<(Option<MockProviders>, ProviderUrls), StackError> {
    match config.providers_mode {
        ProvidersMode::Mock => {
            let mut mock_config = MockConfig::new(
                config.mock_latency,
                config.kieai_webhook_secret.clone(),
                config.upload_post_webhook_secret.clone(),
            );
            mock_config.faults = config.mock_faults;
            let mocks = MockProviders::start(mock_config)
                .await
                .map_err(StackError::Mocks)?;
            let urls = mocks.urls();
            Ok((Some(mocks), urls))
        }
        ProvidersMode::Live => Ok((None, config.provider_urls.clone())),
    }
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
