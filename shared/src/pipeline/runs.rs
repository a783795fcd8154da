//! Runs: start one, find one by id or job code, cancel one, gather its
//! evidence.
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;

use super::{Pipeline, PipelineError};
use crate::domain::{
    Artifact, ArtifactType, HitlRequest, NewArtifact, NewRun, Project, ProviderJob, Run, RunRef,
    RunStatus, Span, SpanLink, TraceId, WebhookEvent,
};
use crate::engine::asl::machine::HistoryEvent;
use crate::store::{StoreError, Transition};

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
}

impl Pipeline {
    /// Creates the run (`pending`, with a `run.start` artifact) and starts
    /// its execution, named after the run id. If the engine refuses, the run
    /// is marked failed with the reason, and the error returned.
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
        if let Some(user) = user_id {
            new = new.for_user(user);
        }
        let run = self.store.create_run(new).await?;
        let span = crate::telemetry::run_span(&run.labels());
        self.start_execution(run, state_machine, message, request.chat_turn)
            .instrument(span)
            .await
    }

    /// The rest of `start_run`, once the run exists: its graph span, its
    /// `run.start` artifact and its execution.
    async fn start_execution(
        &self,
        run: Run,
        state_machine: String,
        message: String,
        chat_turn: Option<SpanLink>,
    ) -> Result<Run, PipelineError> {
        self.open_graph_span(&run, chat_turn).await;
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
        let input = json!({
            "run_id": run.run_id,
            "project": run.project,
            "job_code": run.job_code,
        });
        let name = run.run_id.to_string();
        match self
            .engine
            .start_execution(&state_machine, Some(&name), &input)
            .await
        {
            Ok(started) => {
                let run = self
                    .store
                    .set_execution_id(run.run_id, &started.execution_arn)
                    .await?;
                crate::telemetry::metrics::count(
                    "mw_runs_started_total",
                    "Runs started, by project.",
                    &[("project", run.project.as_str())],
                );
                tracing::info!(job_code = %run.job_code, execution = %started.execution_arn, "run started");
                Ok(run)
            }
            Err(err) => {
                let reason = format!("the engine did not start the run: {err}");
                let failed = self
                    .transition_run(
                        Transition::new(run.run_id, RunStatus::Pending, RunStatus::Failed)
                            .error(&reason)
                            .artifact(NewArtifact::new(
                                run.run_id,
                                ArtifactType::RUN_FAILED,
                                json!({ "error": reason }),
                            )),
                    )
                    .await?;
                self.end_run_spans(&failed).await;
                Err(err.into())
            }
        }
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
            Err(StoreError::Conflict { actual, .. }) => Err(PipelineError::Conflict(format!(
                "run {} changed to {actual} while cancelling; try again",
                run.job_code
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The run and everything recorded about it.
    pub async fn evidence(&self, key: &str) -> Result<Evidence, PipelineError> {
        let run = self.find_run(key).await?;
        let id = run.run_id;
        let history = match &run.execution_id {
            Some(execution) => self
                .engine
                .get_execution_history(execution)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Evidence {
            artifacts: self.store.list_artifacts(id).await?,
            webhook_events: self.store.list_webhook_events(id).await?,
            provider_jobs: self.store.list_provider_jobs(id).await?,
            hitl_requests: self.store.list_hitl_requests(id).await?,
            spans: self.store.list_spans(TraceId::of_run(id)).await?,
            history,
            run,
        })
    }
}
