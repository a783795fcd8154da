//! The whole stack in one process: the store, the durable local engine with
//! the persona graphs, the queues and their consumers (worker, callbacks),
//! the HTTP API and — with `PROVIDERS_MODE=mock` — the mock providers. This is
//! what `mw serve` serves, what `mw live-run` boots when no stack runs, and
//! what the integration tests start on ephemeral ports. With
//! `ENGINE=stepfunctions` the graphs run on Step Functions and the queues are
//! SQS queues that `mw worker` (or the Lambda functions) consume.
//!
//! The laptop build only (feature `local`): a Lambda function builds `core`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{core, register_upload_post_webhook, ServeFile, StackError};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::domain::ProvidersMode;
use crate::engine::{self, LocalEngine};
use crate::pipeline::callbacks::Callbacks;
use crate::pipeline::worker::Worker;
use crate::pipeline::Pipeline;
use crate::providers::mock::{MockConfig, MockProviders};
use crate::providers::ProviderUrls;

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
