//! Runs whose execution ended outside their graph. A graph records its own
//! ends (RecordPublished, RecordFailure, RecordRejection); an execution that
//! times out (`TimeoutSeconds`), is stopped, or fails where no `Catch` reaches
//! (the Record task itself failing) ends without the store knowing, and its
//! run would show `running` or `awaiting_approval` for ever. Step Functions
//! reports every such end as an EventBridge "Execution Status Change" event
//! (`template.yaml` sends FAILED, TIMED_OUT and ABORTED ones to the callbacks
//! function); the local engine reports them to `LocalEngine::on_execution_end`.
//! Either way the run is recorded here: `failed` with the execution's error
//! and cause (`cancelled` when the stop was a cancellation), once. A run's
//! executions are named `RunId::execution_name`; only the run's current one
//! (`runs.execution_id`) speaks for it, so the late end of an execution a
//! redrive replaced changes nothing.
use serde::Serialize;
use serde_json::json;

use super::{Pipeline, PipelineError};
use crate::domain::{ArtifactType, NewArtifact, RunId, RunStatus};
use crate::engine::ExecutionEnded;
use crate::store::{StoreError, Transition};

/// What recording an execution's end did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionEndOutcome {
    /// The run was live: it is now failed with the execution's cause.
    RecordedFailed,
    /// The run was live and the execution was stopped by a cancellation.
    RecordedCancelled,
    /// The run had ended already (its graph recorded it): nothing to do.
    AlreadyEnded,
    /// The run's earlier execution: a redrive has started another since.
    Superseded,
    /// Not a run's execution, not an end, or a run this store does not hold.
    Ignored,
}

/// The error a stop by `cancel_run` carries (`Pipeline::cancel_run`).
const CANCELLED_ERROR: &str = "Run.Cancelled";

impl Pipeline {
    /// Records the run of an execution that ended (see the module's doc).
    /// Safe to repeat: a run that has ended is left as it is.
    pub async fn record_execution_end(
        &self,
        ended: &ExecutionEnded,
    ) -> Result<ExecutionEndOutcome, PipelineError> {
        if !matches!(ended.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
            return Ok(ExecutionEndOutcome::Ignored);
        }
        let Some((run_id, _)) = RunId::of_execution_name(&ended.name) else {
            return Ok(ExecutionEndOutcome::Ignored);
        };
        // A run changing meanwhile (its graph recording the end right now)
        // is read again.
        for _ in 0..3 {
            let Some(run) = self.store.get_run(run_id).await? else {
                return Ok(ExecutionEndOutcome::Ignored);
            };
            if run.status.is_terminal() {
                return Ok(ExecutionEndOutcome::AlreadyEnded);
            }
            // The end of an execution the run has moved on from (a redrive
            // started another): the run is the newer execution's now.
            if run
                .execution_id
                .as_deref()
                .is_some_and(|current| current != ended.execution_arn)
            {
                return Ok(ExecutionEndOutcome::Superseded);
            }
            let cancelled =
                ended.status == "ABORTED" && ended.error.as_deref() == Some(CANCELLED_ERROR);
            let error = ended.error.clone().unwrap_or_else(|| {
                match ended.status.as_str() {
                    "TIMED_OUT" => "States.Timeout",
                    "ABORTED" => "Execution.Aborted",
                    _ => "States.Runtime",
                }
                .to_owned()
            });
            let cause = ended.cause.clone().unwrap_or_else(|| {
                match ended.status.as_str() {
                    "TIMED_OUT" => "the execution ran past its TimeoutSeconds",
                    "ABORTED" => "the execution was stopped",
                    _ => "the execution failed where its graph could not record it",
                }
                .to_owned()
            });
            let details = json!({
                "error": error,
                "cause": cause,
                "execution_status": ended.status,
                "execution": ended.execution_arn,
            });
            let (to, outcome, artifact) = if cancelled {
                (
                    RunStatus::Cancelled,
                    ExecutionEndOutcome::RecordedCancelled,
                    NewArtifact::new(run_id, ArtifactType::RUN_CANCELLED, details.clone()),
                )
            } else {
                (
                    RunStatus::Failed,
                    ExecutionEndOutcome::RecordedFailed,
                    NewArtifact::new(run_id, ArtifactType::RUN_FAILED, details.clone()),
                )
            };
            let change = Transition::new(run_id, run.status, to)
                .error(format!(
                    "{error}: {cause} (the execution ended {})",
                    ended.status
                ))
                .result(details)
                .artifact(artifact);
            match self.transition_run(change).await {
                Ok(run) => {
                    tracing::warn!(run_id = %run.run_id, execution = %ended.execution_arn,
                        execution_status = %ended.status, %error, "run recorded from its execution's end");
                    crate::telemetry::metrics::count(
                        "mw_runs_ended_by_execution_total",
                        "Runs recorded from an execution that ended outside their graph, by execution status.",
                        &[("status", ended.status.as_str())],
                    );
                    crate::telemetry::metrics::count(
                        "mw_runs_ended_total",
                        "Runs ended, by project and status.",
                        &[
                            ("project", run.project.as_str()),
                            ("status", run.status.as_str()),
                        ],
                    );
                    self.end_run_spans(&run).await;
                    return Ok(outcome);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PipelineError::Conflict(format!(
            "run {run_id} kept changing while its execution's end was recorded"
        )))
    }
}
