//! The task-queue worker: what each task of the persona graph does. Messages
//! are `{task, run_id, persona|gate, input, task_token}` (see the
//! statemachine files); every task ends by completing its token — now, or
//! for persona tasks with provider jobs, when the last job's callback arrives.
//! Messages may come more than once (queues deliver at least once): every
//! handler is safe to repeat.
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::spans::usage_attributes;
use super::{Pipeline, PipelineError};
use crate::domain::SpanEnd;
use crate::domain::{
    ArtifactType, Gate, JobStatus, NewArtifact, NewHitlRequest, Persona, Run, RunId, RunStatus,
};
use crate::engine::EngineError;
use crate::personas::agent::run_agent;
use crate::personas::{PersonaContext, ProjectSpec, ToolContext};
use crate::providers::llm::Message;
use crate::queue::{HandlerError, MessageHandler};
use crate::store::{StoreError, Transition};

/// A task message as the state machine sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskMessage {
    pub task: String,
    pub run_id: RunId,
    #[serde(default)]
    pub persona: Option<Persona>,
    #[serde(default)]
    pub gate: Option<Gate>,
    #[serde(default)]
    pub input: Value,
    pub task_token: String,
    /// Which try of the state this is (`$$.State.RetryCount`): 0 the first,
    /// more after `Worker.Transient` failures the state machine retried.
    #[serde(default)]
    pub attempt: u32,
}

/// The error a task fails with when trying it again may help; the state
/// machines retry it (`Retry` on `Worker.Transient`).
pub const TRANSIENT_ERROR: &str = crate::personas::agent::TRANSIENT;
/// The error a task fails with when its message was dead-lettered.
pub const DEAD_LETTERED_ERROR: &str = "Worker.DeadLettered";

/// The worker: a `MessageHandler` for the task queue.
#[derive(Debug, Clone)]
pub struct Worker {
    pub pipeline: Pipeline,
}

#[async_trait]
impl MessageHandler for Worker {
    async fn handle(&self, body: &str) -> Result<(), HandlerError> {
        let message: TaskMessage = serde_json::from_str(body)
            .map_err(|e| HandlerError::permanent(format!("not a task message: {e}")))?;
        self.pipeline.run_task(message).await
    }
}

/// The task queue's dead-letter queue consumer: fails the task of each
/// message with the reason (`Pipeline::dead_lettered_task`).
#[derive(Debug, Clone)]
pub struct DeadLetters {
    pub pipeline: Pipeline,
}

#[async_trait]
impl MessageHandler for DeadLetters {
    async fn handle(&self, body: &str) -> Result<(), HandlerError> {
        match serde_json::from_str::<TaskMessage>(body) {
            Ok(message) => self.pipeline.dead_lettered_task(&message, None).await,
            Err(e) => {
                // Nothing to fail: no token. Kept out of the way, and said.
                tracing::error!(error = %e, "a dead-lettered message that is not a task message; dropped");
                Ok(())
            }
        }
    }
}

impl From<PipelineError> for HandlerError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Store(_) | PipelineError::Queue(_) | PipelineError::Provider(_) => {
                HandlerError::retryable(err.to_string())
            }
            PipelineError::Engine(EngineError::Store(_) | EngineError::Service { .. }) => {
                HandlerError::retryable(err.to_string())
            }
            other => HandlerError::permanent(other.to_string()),
        }
    }
}

impl Pipeline {
    /// Runs one task; an answer that finds the token already completed (a
    /// repeated message) is not an error.
    pub async fn run_task(&self, message: TaskMessage) -> Result<(), HandlerError> {
        let Some(run) = self
            .store
            .get_run(message.run_id)
            .await
            .map_err(PipelineError::from)?
        else {
            let cause = format!("run {} does not exist", message.run_id);
            self.fail_task(&message.task_token, "Run.NotFound", &cause)
                .await?;
            return Ok(());
        };
        let span = crate::telemetry::run_span(&run.labels());
        if let Some(persona) = message.persona {
            span.record("persona", persona.as_str());
        }
        if let Some(gate) = &message.gate {
            span.record("gate", gate.as_str());
        }
        self.run_task_of(&run, &message).instrument(span).await
    }

    async fn run_task_of(&self, run: &Run, message: &TaskMessage) -> Result<(), HandlerError> {
        let outcome = match message.task.as_str() {
            "persona" => self.persona_task(run, message).await,
            "gate" => self.gate_task(run, message).await,
            "record_failure" => self.record_end(run, message, RunStatus::Failed).await,
            "record_rejection" => self.record_end(run, message, RunStatus::Rejected).await,
            "record_success" => self.record_end(run, message, RunStatus::Published).await,
            other => {
                let cause = format!("unknown task {other:?}");
                self.fail_task(&message.task_token, "Worker.UnknownTask", &cause)
                    .await?;
                return Ok(());
            }
        };
        match outcome.map_err(HandlerError::from) {
            // Trying again will not help: fail the task now, so the graph
            // records the failure instead of waiting for the task's timeout.
            Err(err) if !err.retryable => {
                tracing::error!(task = %message.task, error = %err, "task failed");
                self.fail_task(&message.task_token, "Worker.Failed", &err.message)
                    .await?;
                Ok(())
            }
            // Trying again may help (the store or a provider hiccuped): the
            // state machine is told at once, and its `Retry` on
            // `Worker.Transient` (backoff with jitter) sends the task again
            // under a new token — rather than this message waiting out the
            // queue's visibility timeout. Only when the engine cannot be told
            // either does the message itself come back (soon: see
            // `lambda::sqs_batch` and `SqsQueue::consume`).
            Err(err) => {
                tracing::warn!(task = %message.task, attempt = message.attempt, error = %err,
                    "task failed for now; the state machine tries it again");
                crate::telemetry::metrics::count(
                    "mw_tasks_transient_total",
                    "Tasks failed as Worker.Transient for the state machine to retry, by task.",
                    &[("task", message.task.as_str())],
                );
                self.fail_task(&message.task_token, TRANSIENT_ERROR, &err.message)
                    .await?;
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// A task message the queue gave up on (it failed as many times as the
    /// queue's redrive policy allows and sits in the dead-letter queue):
    /// its task is failed with the reason, so the run ends `failed` with a
    /// cause instead of waiting for the task's timeout. A token already
    /// completed is left as it is.
    pub async fn dead_lettered_task(
        &self,
        message: &TaskMessage,
        receive_count: Option<u32>,
    ) -> Result<(), HandlerError> {
        let times = receive_count
            .map(|n| format!("{n} times"))
            .unwrap_or_else(|| "too many times".to_owned());
        let what = match (&message.persona, &message.gate) {
            (Some(persona), _) => format!("persona {persona}"),
            (_, Some(gate)) => format!("gate {gate}"),
            _ => format!("task {}", message.task),
        };
        let cause = format!(
            "{what}: its task message failed {times} and was moved to the dead-letter queue \
             (the worker could not reach the store or the engine); see the worker's logs for run {}",
            message.run_id
        );
        tracing::error!(run_id = %message.run_id, task = %message.task, %cause, "dead-lettered task failed");
        crate::telemetry::metrics::count(
            "mw_tasks_dead_lettered_total",
            "Task messages found in the dead-letter queue, whose task was failed.",
            &[("task", message.task.as_str())],
        );
        self.fail_task(&message.task_token, DEAD_LETTERED_ERROR, &cause)
            .await?;
        Ok(())
    }

    /// Completes a token, treating an already-completed one as done.
    pub(crate) async fn succeed_task(
        &self,
        token: &str,
        output: &Value,
    ) -> Result<(), PipelineError> {
        match self.engine.send_task_success(token, output).await {
            Ok(()) => Ok(()),
            Err(e) if token_done(&e) => {
                tracing::info!(answer = e.aws_name(), "task already completed");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Fails a token, treating an already-completed one as done.
    pub(crate) async fn fail_task(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), PipelineError> {
        match self
            .engine
            .send_task_failure(token, Some(error), Some(cause))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if token_done(&e) => {
                tracing::info!(answer = e.aws_name(), "task already completed");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves a `pending` run to `running` (the first task does this).
    pub(crate) async fn ensure_running(&self, run: &Run) -> Result<(), PipelineError> {
        if run.status != RunStatus::Pending {
            return Ok(());
        }
        match self
            .transition_run(Transition::new(
                run.run_id,
                RunStatus::Pending,
                RunStatus::Running,
            ))
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. }) => {
                tracing::Span::current().record("state", RunStatus::Running.as_str());
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A gate: record the request with its token, and wait for a human.
    async fn gate_task(&self, run: &Run, message: &TaskMessage) -> Result<(), PipelineError> {
        let gate = message
            .gate
            .clone()
            .ok_or_else(|| PipelineError::Invalid("a gate task without a gate".into()))?;
        if run.status.is_terminal() {
            return self
                .fail_task(
                    &message.task_token,
                    "Run.Ended",
                    &format!("run is {}", run.status),
                )
                .await;
        }
        self.ensure_running(run).await?;
        // The span opens first: a decision may come the moment the request
        // is recorded, and closes it.
        self.open_gate_span(run, &gate).await;
        let link = self.signed_link(run.run_id, &gate);
        let artifact = NewArtifact::new(
            run.run_id,
            ArtifactType::HITL_REQUEST,
            json!({ "gate": gate, "expires_at": link.expires_at, "approve": format!("mw hitl approve {} {gate}", run.job_code),
                    "review": super::GateReview::from_state(&message.input) }),
        )
        .url(link.url);
        // One write: the request, its link and the run `awaiting_approval`.
        let request = NewHitlRequest {
            run_id: run.run_id,
            gate: gate.clone(),
            task_token: Some(message.task_token.clone()),
            artifact: Some(artifact),
        };
        match self.record_hitl_request(request).await {
            Ok(_) => {}
            Err(StoreError::Refused(reason)) => {
                // Decided already: this task is the gate's task tried again
                // (a retry under a new token, a message delivered twice). The
                // decision stands, and goes to this task.
                let decided = self
                    .store
                    .list_hitl_requests(run.run_id)
                    .await?
                    .into_iter()
                    .find(|r| r.gate == gate && r.decision.is_some());
                let Some(decided) = decided else {
                    return Err(PipelineError::Conflict(reason));
                };
                tracing::info!(gate = %gate, decision = ?decided.decision,
                    "the gate's task came again after its decision: the decision goes to it");
                let request = crate::domain::HitlRequest {
                    task_token: Some(message.task_token.clone()),
                    ..decided
                };
                self.deliver_decision(run, request, None).await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::Span::current().record("state", RunStatus::AwaitingApproval.as_str());
        tracing::info!("run awaits approval");
        Ok(())
    }

    /// The end of a run: published (with its result), failed (with the
    /// error and cause the state machine caught) or rejected.
    async fn record_end(
        &self,
        run: &Run,
        message: &TaskMessage,
        to: RunStatus,
    ) -> Result<(), PipelineError> {
        let current = self
            .store
            .get_run(run.run_id)
            .await?
            .unwrap_or_else(|| run.clone());
        if current.status.is_terminal() {
            // Already recorded (a repeated message), or cancelled meanwhile.
            return self
                .succeed_task(&message.task_token, &json!({ "status": current.status }))
                .await;
        }
        let change = Transition::new(run.run_id, current.status, to);
        let change = match to {
            RunStatus::Published => change.result(published_result(&message.input)),
            RunStatus::Failed | RunStatus::Rejected => {
                let error = message
                    .input
                    .get("Error")
                    .and_then(Value::as_str)
                    .unwrap_or("States.TaskFailed");
                let cause = message
                    .input
                    .get("Cause")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let failed_state = failed_persona(cause);
                let result = json!({ "error": error, "cause": cause, "persona": failed_state });
                let artifact =
                    NewArtifact::new(run.run_id, ArtifactType::RUN_FAILED, result.clone());
                let artifact = match failed_state.and_then(|p| p.parse::<Persona>().ok()) {
                    Some(persona) => artifact.persona(persona),
                    None => artifact,
                };
                let change = change.error(format!("{error}: {cause}")).result(result);
                if to == RunStatus::Failed {
                    change.artifact(artifact)
                } else {
                    change
                }
            }
            _ => change,
        };
        // A refused change is not papered over: a conflict (the run changed
        // meanwhile) is retried with a fresh read; an illegal one fails this
        // task, so the graph records the failure.
        let ended = match self.transition_run(change).await {
            Ok(run) => {
                tracing::Span::current().record("state", run.status.as_str());
                tracing::info!(status = %run.status, "run ended");
                crate::telemetry::metrics::count(
                    "mw_runs_ended_total",
                    "Runs ended, by project and status.",
                    &[
                        ("project", run.project.as_str()),
                        ("status", run.status.as_str()),
                    ],
                );
                run
            }
            Err(StoreError::IllegalTransition { from, to }) => {
                let cause = format!("run {} cannot go from {from} to {to}", run.job_code);
                return self
                    .fail_task(&message.task_token, "Run.IllegalTransition", &cause)
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        self.succeed_task(&message.task_token, &json!({ "status": to }))
            .await?;
        // After the execution is told: the tree is closed as the run ends,
        // without holding the graph up.
        self.end_run_spans(&ended).await;
        Ok(())
    }
}

impl Pipeline {
    /// A persona: run its agent (LLM + allowlisted tools), mark it done, and
    /// complete the task — now when it submitted no provider job, else when
    /// the last job settles (`complete_persona_if_done`, also called by the
    /// callbacks consumer). The tools are idempotent, so a repeated message
    /// re-runs the agent without submitting the same work twice.
    async fn persona_task(&self, run: &Run, message: &TaskMessage) -> Result<(), PipelineError> {
        let persona = message
            .persona
            .ok_or_else(|| PipelineError::Invalid("a persona task without a persona".into()))?;
        let token = &message.task_token;
        if run.status.is_terminal() {
            return Ok(()); // cancelled meanwhile: the execution was stopped
        }
        self.ensure_running(run).await?;
        // A redriven execution's steps continue a run that failed: like a
        // retry, under a new token.
        let redriven = super::redrive::is_redriven(&message.input);
        if message.attempt > 0 || redriven {
            // A retry runs under a new token: what the earlier tries
            // submitted (and the tools will not submit again) completes it.
            let rebound = self
                .store
                .rebind_persona_jobs(run.run_id, persona, token)
                .await?;
            tracing::info!(
                attempt = message.attempt,
                redriven,
                rebound,
                "persona step tried again"
            );
        }
        let mut done_before = self
            .store
            .list_artifacts_of(run.run_id, &[ArtifactType::PERSONA_COMPLETED.as_str()])
            .await?
            .iter()
            .any(|a| a.is_persona_completed(persona));
        if done_before && redriven {
            // The step that failed on a provider's job: its agent runs
            // again, and its tools submit what failed (and only that).
            done_before = !self
                .store
                .list_provider_jobs(run.run_id)
                .await?
                .iter()
                .any(|j| j.persona == persona && j.status == JobStatus::Failed);
        }
        if done_before {
            return self
                .complete_persona_if_done(run.run_id, persona, token)
                .await;
        }
        let project = ProjectSpec::load(run.project.as_str())
            .map_err(|e| PipelineError::Invalid(format!("project {}: {e}", run.project)))?;
        let Some(spec) = project.persona(persona) else {
            let cause = format!(
                "persona {persona}: project {} has no spec for it",
                run.project
            );
            return self.fail_task(token, "Agent.NoSpec", &cause).await;
        };
        // Before it spends: a run past its budget stops here, its cause
        // recorded as the run's failure.
        if let Some(cause) = self.over_budget(run, &project, persona).await? {
            tracing::warn!(%cause, "run over budget: persona not started");
            crate::telemetry::metrics::count(
                "mw_runs_over_budget_total",
                "Runs stopped before a persona because they had spent their budget, by project.",
                &[("project", run.project.as_str())],
            );
            return self
                .fail_task(token, super::spend::BUDGET_EXCEEDED, &cause)
                .await;
        }
        let mut context = PersonaContext::new(
            run.run_id,
            &project,
            run.input.get("message").and_then(Value::as_str),
        );
        for earlier in Persona::ALL {
            if let Some(output) = message.input.get(earlier.as_str()) {
                context = context.with_output(*earlier, output.clone());
            }
        }
        if let Some(Value::Object(gates)) = message.input.get("gates") {
            context.gates = gates.clone();
        }
        let tool_context = ToolContext::run(
            run.run_id,
            run.project.clone(),
            persona,
            Some(token.clone()),
        );
        let input = [Message::user(context.to_user_message())];
        tracing::info!("persona started");
        let started = std::time::Instant::now();
        let observer = self
            .open_persona_span(run, persona, token, &message.input)
            .await;
        let outcome = run_agent(
            spec,
            &self.persona_tools(),
            self.llm.as_ref(),
            &tool_context,
            &input,
            &self.counting_spend(&observer, run),
        )
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(error = %err, "persona failed");
                tokio::join!(
                    observer.flush(),
                    self.close_persona_span(
                        run.run_id,
                        persona,
                        token,
                        SpanEnd::error(err.to_string()),
                    )
                );
                return self.fail_task(token, err.code(), &err.to_string()).await;
            }
        };
        let tools: Map<String, Value> = outcome
            .tool_results
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| (r.name.clone(), r.args.clone()))
            .collect();
        // The calls' spans and the completion record, issued together (one
        // commit on SQLite).
        let (completed, ()) = tokio::join!(
            self.store.append_artifact(
                NewArtifact::new(
                    run.run_id,
                    ArtifactType::PERSONA_COMPLETED,
                    json!({ "summary": outcome.summary, "tools": tools.keys().collect::<Vec<_>>(),
                            "turns": outcome.turns, "usage": outcome.usage }),
                )
                .persona(persona),
            ),
            observer.flush()
        );
        completed?;
        tracing::info!(turns = outcome.turns, "persona finished");
        crate::telemetry::metrics::observe_seconds(
            "mw_persona_step_seconds",
            "How long a persona's agent took, by persona.",
            &[("persona", persona.as_str())],
            started.elapsed().as_secs_f64(),
        );
        let jobs = self.store.list_task_jobs(run.run_id, token).await?;
        if !jobs.is_empty() {
            self.complete_persona_with(run.run_id, persona, token, jobs)
                .await
        } else {
            // What the persona wrote, flattened: Iggy's `record_ideas`
            // arguments become `state.iggy.{title, ideas, hook}`.
            let mut output = Map::new();
            for args in tools.into_values() {
                if let Value::Object(fields) = args {
                    output.extend(fields);
                }
            }
            output.insert("summary".into(), Value::from(outcome.summary));
            let output = Value::Object(output);
            let usage = serde_json::to_value(outcome.usage).ok();
            let end = usage_attributes(SpanEnd::ok(Some(output.clone())), usage.as_ref());
            self.close_persona_span_and_succeed(run.run_id, persona, token, end, &output)
                .await
        }
    }
}

/// The engine's answer to completing a token that is done: completed before
/// (a repeated message, or a re-send whose first answer was lost), timed
/// out, or of an execution that has moved on — Step Functions answers
/// `InvalidToken` for a token no running execution holds. Tokens reach the
/// worker only from the state machine, never from a user, so none is forged.
fn token_done(err: &EngineError) -> bool {
    matches!(
        err,
        EngineError::TaskDoesNotExist | EngineError::TaskTimedOut | EngineError::InvalidToken
    )
}

/// `runs.result` of a published run: the clips, the render and the publish
/// URLs, from the state the graph accumulated.
fn published_result(state: &Value) -> Value {
    json!({
        "clips": state.pointer("/riley/clips").cloned().unwrap_or(Value::Null),
        "render_url": state.pointer("/alex/render_url").cloned().unwrap_or(Value::Null),
        "publish_urls": state.pointer("/quinn/publish_urls").cloned().unwrap_or(Value::Null),
        "caption": state.pointer("/quinn/caption").cloned().unwrap_or(Value::Null),
    })
}

/// The persona a failure cause names (`persona <name>: …`), if any.
fn failed_persona(cause: &str) -> Option<&str> {
    let rest = cause.strip_prefix("persona ")?;
    rest.split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .filter(|p| !p.is_empty())
}
