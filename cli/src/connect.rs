//! Which stack a command talks to: `--api-base`/`MW_API_BASE`; else a local
//! `mw serve` (it leaves its address in `<home>/serve.json`); else the
//! embedded stack, booted in this process for as long as the command runs.
use anyhow::Context;
use myloware::wiring::{ServeFile, Stack, StackOptions};
use myloware::Config;

use crate::client::ApiClient;
use crate::output::noteln;

/// A client to a stack, and the embedded stack if this process runs it.
#[derive(Debug)]
pub struct Connection {
    pub client: ApiClient,
    pub embedded: Option<Stack>,
}

impl Connection {
    /// Stops the embedded stack, if any, cleanly.
    pub async fn close(self) {
        if let Some(stack) = self.embedded {
            stack.shutdown().await;
        }
    }
}

/// A running stack the CLI can reach without booting one: `--api-base`,
/// or a local `mw serve` that answers `/health`.
pub async fn running_stack(
    config: &Config,
    api_base: Option<&str>,
) -> anyhow::Result<Option<ApiClient>> {
    if let Some(base) = api_base {
        noteln!("→ the stack at {base} (--api-base)");
        return Ok(Some(ApiClient::new(base, config.api_key.clone())?));
    }
    let Some(serve) = ServeFile::read(&config.home) else {
        return Ok(None);
    };
    let client = ApiClient::new(&serve.url, config.api_key.clone())?;
    if client.get::<serde_json::Value>("/health").await.is_err() {
        return Ok(None);
    }
    let here = config.database.location();
    match serve.store.as_deref() {
        Some(served) if served != here => eprintln!(
            "note: the running `mw serve` at {} (pid {}) uses the store {served}, but the \
             DATABASE_URL here names {here}; this command talks to the running stack \
             (stop it, or give --api-base, to choose)",
            serve.url, serve.pid
        ),
        Some(served) => noteln!(
            "→ mw serve at {} (pid {}), store {served}",
            serve.url,
            serve.pid
        ),
        None => noteln!("→ mw serve at {} (pid {})", serve.url, serve.pid),
    }
    Ok(Some(client))
}

/// A connection to a running stack, or to an embedded one booted now.
pub async fn connect(config: &Config, api_base: Option<&str>) -> anyhow::Result<Connection> {
    if let Some(client) = running_stack(config, api_base).await? {
        return Ok(Connection {
            client,
            embedded: None,
        });
    }
    noteln!(
        "→ no running stack: one starts in this process, store {}",
        config.database.location()
    );
    let stack = Stack::start(config, StackOptions::ephemeral())
        .await
        .context("starting the embedded stack")?;
    let client = ApiClient::new(&stack.base_url, config.api_key.clone())?;
    Ok(Connection {
        client,
        embedded: Some(stack),
    })
}

/// Reading runs: through a running stack's API, or straight from the store.
#[derive(Debug)]
pub enum Reader {
    Api(ApiClient),
    /// The store, Step Functions when it runs the graphs (the executions'
    /// histories live there), and the prices runs are costed with.
    Store(
        myloware::store::Backend,
        Option<myloware::engine::stepfunctions::StepFunctionsEngine>,
        Box<myloware::pipeline::cost::Prices>,
    ),
}

impl Reader {
    pub async fn open(config: &Config, api_base: Option<&str>) -> anyhow::Result<Self> {
        if let Some(client) = running_stack(config, api_base).await? {
            return Ok(Self::Api(client));
        }
        crate::commands::store_exists(config)?;
        noteln!(
            "→ no running stack: reading the store {}",
            config.database.location()
        );
        let backend = myloware::store::open(&config.database)
            .await
            .with_context(|| format!("opening the store at {}", config.database))?;
        let remote = match config.engine {
            myloware::config::EngineKind::StepFunctions { .. } => {
                Some(myloware::engine::stepfunctions::StepFunctionsEngine::new(
                    &myloware::aws::sdk_config().await,
                ))
            }
            myloware::config::EngineKind::Local => None,
        };
        Ok(Self::Store(
            backend,
            remote,
            Box::new(config.prices.clone()),
        ))
    }

    pub async fn list(
        &self,
        filter: &myloware::store::RunFilter,
    ) -> anyhow::Result<myloware::store::RunPage> {
        match self {
            Self::Api(client) => {
                let mut query = vec![format!("limit={}", filter.limit.unwrap_or(20))];
                if let Some(s) = filter.status {
                    query.push(format!("status={s}"));
                }
                if let Some(p) = &filter.project {
                    query.push(format!("project={p}"));
                }
                if let Some(a) = filter.after {
                    query.push(format!("after={a}"));
                }
                client.get(&format!("/v1/runs?{}", query.join("&"))).await
            }
            Self::Store(backend, ..) => Ok(backend.store.list_runs(filter).await?),
        }
    }

    /// The run `key` (id or job code) and its spans.
    pub async fn run_tree(&self, key: &str) -> anyhow::Result<myloware::pipeline::RunTree> {
        match self {
            Self::Api(client) => client.get(&format!("/v1/runs/{key}/spans")).await,
            Self::Store(backend, _, prices) => {
                let store = backend.store.as_ref();
                let run = crate::commands::runs::find_run(store, key).await?;
                let trace_id = myloware::domain::TraceId::of_run(run.run_id);
                let jobs = store.list_provider_jobs(run.run_id).await?;
                let artifacts = store.list_artifacts(run.run_id).await?;
                let tree = myloware::pipeline::RunTree {
                    lineage: myloware::pipeline::Lineage::of(&artifacts),
                    spans: store.list_spans(trace_id).await?,
                    trace_id,
                    run,
                    costs: Vec::new(),
                };
                Ok(tree.costed(&jobs, &artifacts, prices))
            }
        }
    }

    /// The chat turn `trace_id` and the runs it started.
    pub async fn chat_tree(
        &self,
        trace_id: myloware::domain::TraceId,
    ) -> anyhow::Result<myloware::pipeline::ChatTree> {
        match self {
            Self::Api(client) => client.get(&format!("/v1/traces/{trace_id}")).await,
            Self::Store(backend, ..) => {
                Ok(myloware::pipeline::chat_tree(backend.store.as_ref(), trace_id).await?)
            }
        }
    }

    /// The run `key` (id or job code) with everything recorded about it.
    pub async fn evidence(&self, key: &str) -> anyhow::Result<myloware::pipeline::Evidence> {
        match self {
            Self::Api(client) => client.get(&format!("/v1/runs/{key}/evidence")).await,
            Self::Store(backend, remote, prices) => {
                let store = backend.store.as_ref();
                let run = crate::commands::runs::find_run(store, key).await?;
                let id = run.run_id;
                let history = match (&run.execution_id, remote, &backend.engine) {
                    (Some(arn), Some(remote), _) => {
                        use myloware::engine::Engine;
                        remote.get_execution_history(arn).await?
                    }
                    (Some(arn), None, Some(engine)) => engine
                        .history(arn)
                        .await?
                        .into_iter()
                        .map(|r| myloware::engine::asl::machine::HistoryEvent {
                            id: r.event_id,
                            previous_event_id: r.previous_event_id,
                            timestamp: r.timestamp,
                            event_type: r.event_type,
                            details: serde_json::from_str(&r.details).unwrap_or_default(),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let artifacts = store.list_artifacts(id).await?;
                Ok(myloware::pipeline::Evidence {
                    lineage: myloware::pipeline::Lineage::of(&artifacts),
                    artifacts,
                    webhook_events: store.list_webhook_events(id).await?,
                    provider_jobs: store
                        .list_provider_jobs(id)
                        .await?
                        .into_iter()
                        .filter(myloware::domain::ProviderJob::is_evidence)
                        .collect(),
                    hitl_requests: store.list_hitl_requests(id).await?,
                    spans: store
                        .list_spans(myloware::domain::TraceId::of_run(id))
                        .await?,
                    history,
                    run,
                    cost: None,
                }
                .costed(prices, remote.is_some()))
            }
        }
    }
}
