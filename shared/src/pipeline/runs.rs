//! Runs: start one, find one by id or job code, cancel one, gather its
//! evidence.
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;

use super::redrive::Lineage;
use super::{Pipeline, PipelineError};
use crate::domain::{
    Artifact, ArtifactType, HitlRequest, NewArtifact, NewRun, Project, ProviderJob, Run, RunId,
    RunRef, RunStatus, Span, SpanLink, TraceId, WebhookEvent,
};
use crate::engine::asl::machine::HistoryEvent;
use crate::engine::EngineError;
use crate::store::{RunFilter, StoreError, Transition};

/// How long a run may sit `pending` without an execution before the
/// reconciler takes it for queued (its start is in progress until then).
const QUEUED_GRACE: chrono::Duration = chrono::Duration::seconds(5);
/// The most queued runs one sweep starts.
const QUEUED_SWEEP: usize = 200;

/// What starting an execution came to.
enum Launch {
    Started(Box<Run>),
    /// The engine did not take it now (throttled, or no answer).
    Queued(EngineError),
}

/// The execution's input: the run's names only. The message stays with the
/// run (the personas read it there); the history copies the input into its
/// events.
fn execution_input(run: &Run) -> serde_json::Value {
    json!({
        "run_id": run.run_id,
        "project": run.project,
        "job_code": run.job_code,
    })
}

/// How `start_execution` starts a run: plainly, or as a replay.
#[derive(Debug, Default)]
pub(super) struct Start {
    /// The span the run's graph span links to: the chat turn that asked for
    /// the run, or the graph span of the run it replays.
    pub link: Option<SpanLink>,
    /// The run it replays (its job code) and the state it starts at.
    pub replay_of: Option<(crate::domain::JobCode, String)>,
    /// The execution's input, when not the run's names only (a replay's).
    pub input: Option<serde_json::Value>,
}

/// What it takes to start a run.
#[derive(Debug, Clone)]
pub struct NewRunRequest {
    pub project: Project,
    /// The creative prompt; the project's default when absent.
    pub message: Option<String>,
    pub user_id: Option<String>,
    /// The chat turn that asked for the run, if one did: the run's graph
    /// span links to it.
    pub chat_turn: Option<SpanLink>,
    /// The client's name for this start (`Idempotency-Key`): sent again, it
    /// answers the run the first one made instead of making another.
    pub idempotency_key: Option<String>,
}

/// Everything recorded about a run: what a bug report needs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    pub run: Run,
    pub artifacts: Vec<Artifact>,
    pub webhook_events: Vec<WebhookEvent>,
    pub provider_jobs: Vec<ProviderJob>,
    pub hitl_requests: Vec<HitlRequest>,
    /// The execution's history, when the engine still has it.
    #[serde(default)]
    pub history: Vec<HistoryEvent>,
    /// The run tree: its spans, by start time (open ones included).
    #[serde(default)]
    pub spans: Vec<Span>,
    /// The run it replays, its replays and its redrives.
    #[serde(default)]
    pub lineage: Lineage,
    /// What the run cost, from the above at the stack's prices
    /// (`pipeline::cost`); absent in evidence written before it was kept.
    #[serde(default)]
    pub cost: Option<super::cost::RunCost>,
}

impl Evidence {
    /// The evidence with its cost, at `prices`; `on_aws` when the run ran on
    /// Step Functions.
    pub fn costed(mut self, prices: &super::cost::Prices, on_aws: bool) -> Self {
        self.cost = Some(super::cost::run_cost(
            super::cost::CostInputs {
                spans: &self.spans,
                jobs: &self.provider_jobs,
                artifacts: &self.artifacts,
                history: &self.history,
                webhook_events: self.webhook_events.len(),
                on_aws,
            },
            prices,
        ));
        self
    }
}

impl Pipeline {
    /// Creates the run (`pending`, with a `run.start` artifact) and starts
    /// its execution, named after the run id. If the engine throttles the
    /// start (past the adapter's retries) the run stays `pending` without an
    /// execution — queued — and the reconciler starts it later; if it
    /// refuses for good, the run is marked failed with the reason, and the
    /// error returned.
    pub async fn start_run(&self, request: NewRunRequest) -> Result<Run, PipelineError> {
        let state_machine = self.state_machine(&request.project)?.to_owned();
        let message = super::limits::message(request.message, super::limits::MESSAGE_MAX_CHARS)?
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_default();
        let user_id = request
            .user_id
            .as_deref()
            .map(super::limits::user_id)
            .transpose()?
            .map(str::to_owned);
        let mut new = NewRun::new(
            request.project.clone(),
            json!({ "message": message }),
            self.settings.providers_mode,
        );
        if let Some(key) = &request.idempotency_key {
            super::limits::idempotency_key(key)?;
            new.run_id = RunId::for_idempotency_key(user_id.as_deref(), key);
        }
        if let Some(user) = user_id {
            new = new.for_user(user);
        }
        let run_id = new.run_id;
        let run = match self.store.create_run(new).await {
            Ok(run) => run,
            Err(StoreError::Duplicate { .. }) if request.idempotency_key.is_some() => {
                // Sent again: the run the first start made (the reconciler
                // starts it if that start stopped before its execution).
                let run = self.store.get_run(run_id).await?.ok_or_else(|| {
                    PipelineError::Conflict(format!("run {run_id} is being created"))
                })?;
                if run.project != request.project || run.input["message"] != json!(message) {
                    return Err(PipelineError::Conflict(
                        "this Idempotency-Key named another start (another project or message)"
                            .into(),
                    ));
                }
                return Ok(run);
            }
            Err(e) => return Err(e.into()),
        };
        let span = crate::telemetry::run_span(&run.labels());
        let start = Start {
            link: request.chat_turn,
            ..Start::default()
        };
        self.start_execution(run, state_machine, message, start)
            .instrument(span)
            .await
    }

    /// The rest of `start_run` (and `replay_run`), once the run exists: its
    /// graph span, its `run.start` artifact and its execution.
    pub(super) async fn start_execution(
        &self,
        run: Run,
        state_machine: String,
        message: String,
        start: Start,
    ) -> Result<Run, PipelineError> {
        self.open_graph_span(&run, start.link, start.replay_of.as_ref())
            .await;
        self.store
            .append_artifact(NewArtifact::new(
                run.run_id,
                ArtifactType::RUN_START,
                json!({
                    "project": run.project,
                    "job_code": run.job_code,
                    "message": message,
                    "providers_mode": run.providers_mode,
                    // Where this run's providers are told to call back: what
                    // `mw doctor` judges, whatever the shell it runs in says.
                    "webhook_base_url": self.settings.webhook_base_url,
                    "state_machine": state_machine,
                }),
            ))
            .await?;
        // The message stays with the run (the personas read it there): the
        // execution's input, which its history copies into its events,
        // carries only the run's names.
        let input = start.input.unwrap_or_else(|| execution_input(&run));
        match self.launch(&run, &state_machine, &input).await {
            Ok(Launch::Started(run)) => Ok(*run),
            Ok(Launch::Queued(err)) => {
                // Throttled (or unanswered) past the adapter's retries: not a
                // reason to fail the run. It stays `pending` without an
                // execution — queued — and the reconciler starts it
                // (`start_queued_runs`).
                tracing::warn!(job_code = %run.job_code, error = %err,
                    "the engine did not take the run's start now; it is queued and started later");
                crate::telemetry::metrics::count(
                    "mw_runs_queued_total",
                    "Runs whose start the engine throttled, left queued for the reconciler, by project.",
                    &[("project", run.project.as_str())],
                );
                Ok(run)
            }
            Err(err) => {
                let reason = format!("the engine did not start the run: {err}");
                self.fail_unstarted(&run, RunStatus::Pending, &reason)
                    .await?;
                Err(err.into())
            }
        }
    }

    /// Marks `run` (now `from`) failed because the engine refused to start
    /// its execution, and closes its tree.
    pub(super) async fn fail_unstarted(
        &self,
        run: &Run,
        from: RunStatus,
        reason: &str,
    ) -> Result<(), PipelineError> {
        let failed = self
            .transition_run(
                Transition::new(run.run_id, from, RunStatus::Failed)
                    .error(reason)
                    .artifact(NewArtifact::new(
                        run.run_id,
                        ArtifactType::RUN_FAILED,
                        json!({ "error": reason }),
                    )),
            )
            .await?;
        self.end_run_spans(&failed).await;
        Ok(())
    }

    /// Starts the execution of `run` (named after its id) and records it on
    /// the run. An execution of that name already there (a start whose
    /// answer was lost, a second start of a queued run) is the run's. A
    /// transient refusal (a throttle, a 5xx, no answer) answers `Queued`.
    async fn launch(
        &self,
        run: &Run,
        state_machine: &str,
        input: &serde_json::Value,
    ) -> Result<Launch, EngineError> {
        let name = run.run_id.to_string();
        let started = match self
            .engine
            .start_execution(state_machine, Some(&name), input)
            .await
        {
            Ok(started) => started.execution_arn,
            Err(EngineError::ExecutionAlreadyExists(_)) => {
                let arn =
                    crate::engine::arn::execution_of(state_machine, &name).ok_or_else(|| {
                        EngineError::StateMachineDoesNotExist(format!(
                            "{state_machine} is not a state machine ARN"
                        ))
                    })?;
                match self.engine.describe_execution(&arn).await {
                    Ok(found) => found.execution_arn,
                    Err(err) if err.is_transient() => return Ok(Launch::Queued(err)),
                    Err(err) => return Err(err),
                }
            }
            Err(err) if err.is_transient() => return Ok(Launch::Queued(err)),
            Err(err) => return Err(err),
        };
        let run = match self.store.set_execution_id(run.run_id, &started).await {
            Ok(run) => run,
            // The execution runs (its tasks know the run by id); the run
            // looks queued until the reconciler's next sweep finds the
            // execution by name and records it.
            Err(err) => {
                tracing::warn!(job_code = %run.job_code, execution = %started, error = %err,
                    "run started but its execution id was not recorded; the reconciler records it");
                return Ok(Launch::Started(Box::new(run.clone())));
            }
        };
        crate::telemetry::metrics::count(
            "mw_runs_started_total",
            "Runs started, by project.",
            &[("project", run.project.as_str())],
        );
        tracing::info!(job_code = %run.job_code, execution = %started, "run started");
        Ok(Launch::Started(Box::new(run)))
    }

    /// Starts the runs left queued (`pending` without an execution) for at
    /// least `QUEUED_GRACE` — their start was throttled — oldest first, at
    /// most `QUEUED_SWEEP` per call; a run still throttled stays queued for
    /// the next sweep. Run by the reconciler (the callbacks function's
    /// schedule, `mw worker`, a local stack). Answers how many it started.
    pub async fn start_queued_runs(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, PipelineError> {
        let mut queued = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_runs(&RunFilter {
                    status: Some(RunStatus::Pending),
                    project: None,
                    limit: Some(RunFilter::MAX_LIMIT),
                    after,
                })
                .await?;
            queued.extend(
                page.runs
                    .into_iter()
                    .filter(|r| r.execution_id.is_none() && now - r.created_at >= QUEUED_GRACE),
            );
            match page.next {
                Some(next) if queued.len() < QUEUED_SWEEP => after = Some(next),
                _ => break,
            }
        }
        queued.reverse(); // oldest first
        queued.truncate(QUEUED_SWEEP);
        let mut started = 0;
        for run in queued {
            let state_machine = self.state_machine(&run.project)?.to_owned();
            let input = match self.recorded_replay_input(&run).await? {
                Some(input) => input,
                None => execution_input(&run),
            };
            let span = crate::telemetry::run_span(&run.labels());
            match self
                .launch(&run, &state_machine, &input)
                .instrument(span)
                .await
            {
                Ok(Launch::Started(_)) => started += 1,
                Ok(Launch::Queued(err)) => {
                    tracing::info!(job_code = %run.job_code, error = %err, "queued run still not taken; next sweep");
                    break; // throttled: the rest waits for the next sweep
                }
                Err(err) => {
                    tracing::error!(job_code = %run.job_code, error = %err, "queued run could not be started");
                }
            }
        }
        if started > 0 {
            tracing::info!(started, "queued runs started");
        }
        Ok(started)
    }

    /// A run by id or job code.
    pub async fn find_run(&self, key: &str) -> Result<Run, PipelineError> {
        let run_ref: RunRef = key
            .parse()
            .map_err(|e: crate::domain::ParseError| PipelineError::Invalid(e.to_string()))?;
        crate::store::find_run(self.store.as_ref(), &run_ref)
            .await?
            .ok_or_else(|| PipelineError::not_found(format!("run {key}")))
    }

    /// Stops the run's execution and marks it `cancelled` with a
    /// `run.cancelled` artifact. A finished run cannot be cancelled.
    pub async fn cancel_run(&self, key: &str, by: &str) -> Result<Run, PipelineError> {
        let run = self.find_run(key).await?;
        let span = crate::telemetry::run_span(&run.labels());
        self.cancel_found_run(run, by).instrument(span).await
    }

    async fn cancel_found_run(&self, run: Run, by: &str) -> Result<Run, PipelineError> {
        if run.status.is_terminal() {
            return Err(PipelineError::Conflict(format!(
                "run {} is already {}; only a live run can be cancelled",
                run.job_code, run.status
            )));
        }
        if let Some(execution) = &run.execution_id {
            self.engine
                .stop_execution(
                    execution,
                    Some("Run.Cancelled"),
                    Some(&format!("cancelled by {by}")),
                )
                .await?;
        }
        let artifact = NewArtifact::new(
            run.run_id,
            ArtifactType::RUN_CANCELLED,
            json!({ "by": by, "was": run.status }),
        );
        let change = Transition::new(run.run_id, run.status, RunStatus::Cancelled)
            .error(format!("cancelled by {by}"))
            .artifact(artifact);
        match self.transition_run(change).await {
            Ok(run) => {
                tracing::Span::current().record("state", run.status.as_str());
                tracing::info!(by, "run cancelled");
                self.end_run_spans(&run).await;
                crate::telemetry::metrics::count(
                    "mw_runs_ended_total",
                    "Runs ended, by project and status.",
                    &[("project", run.project.as_str()), ("status", "cancelled")],
                );
                Ok(run)
            }
            // Its execution's end (the stop) was recorded first: cancelled.
            Err(StoreError::Conflict {
                actual: RunStatus::Cancelled,
                ..
            }) => self.find_run(&run.run_id.to_string()).await,
            Err(StoreError::Conflict { actual, .. }) => Err(PipelineError::Conflict(format!(
                "run {} changed to {actual} while cancelling; try again",
                run.job_code
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The run's execution history, as far as the engine has it: none
    /// before the run started its execution, or when the engine cannot say.
    pub(super) async fn history(&self, run: &Run) -> Vec<HistoryEvent> {
        match &run.execution_id {
            Some(execution) => self
                .engine
                .get_execution_history(execution)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The run and everything recorded about it.
    pub async fn evidence(&self, key: &str) -> Result<Evidence, PipelineError> {
        let run = self.find_run(key).await?;
        let id = run.run_id;
        let history = self.history(&run).await;
        let artifacts = self.store.list_artifacts(id).await?;
        let evidence = Evidence {
            webhook_events: self.store.list_webhook_events(id).await?,
            provider_jobs: self
                .store
                .list_provider_jobs(id)
                .await?
                .into_iter()
                .filter(ProviderJob::is_evidence)
                .collect(),
            hitl_requests: self.store.list_hitl_requests(id).await?,
            lineage: Lineage::of(&artifacts),
            spans: self.store.list_spans(TraceId::of_run(id)).await?,
            artifacts,
            history,
            run,
            cost: None,
        };
        Ok(evidence.costed(&self.settings.prices, self.settings.on_aws))
    }
}
