//! Redrive and replay: a run continued, or run again, from a state of its
//! graph with the context it had recorded there.
//!
//! Both start an execution at the graph's entry `Choice` (`Resume`), which
//! goes to the state `resume_at` names. The context is the input that state
//! was last entered with (its `TaskStateEntered` event in the run's
//! execution history, read through the `Engine` port on either engine).
//! Step Functions' own `RedriveExecution` is not used: the local engine and
//! moto have none, and one mechanism on both is what the tests can hold to
//! (docs/aws.md).
//!
//! - **Redrive** (`redrive_run`): a failed run continues from the state
//!   that failed, as the same run: `failed → running` (`Transition::redrive`,
//!   compare-and-set, so of two redrives one starts), a `run.redriven`
//!   artifact, and a new execution named `RunId::execution_name`. Its steps
//!   run like retries: they take over their earlier jobs, and the one that
//!   failed on a provider's job runs its agent again, submitting only the
//!   work that failed (`Store::rebind_persona_jobs`,
//!   `Pipeline::pending_submissions`).
//! - **Replay** (`replay_run`): a new run (id, job code) that starts at a
//!   chosen state with the origin's context there, an input merged over it,
//!   linked both ways (`run.replay_of` on it, `run.replayed` on the origin)
//!   and from its graph span to the origin's.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::{Pipeline, PipelineError};
use crate::domain::{
    Artifact, ArtifactType, JobCode, NewArtifact, NewRun, NewSpan, Run, RunId, RunStatus, SpanId,
    SpanLink, TraceId,
};
use crate::engine::asl::machine::HistoryEvent;
use crate::store::{StoreError, Transition};
use crate::telemetry::spans::attr;

/// The input field naming the state an execution starts at (the graphs'
/// `Resume` choice).
pub const RESUME_AT: &str = "resume_at";
/// The input field that marks a redriven execution: `{n, from}`.
pub const REDRIVE: &str = "redrive";
/// The input field of a replay's execution naming its origin.
pub const REPLAY_OF: &str = "replay_of";
/// What a recorded context holds that is about the execution it came from,
/// not the run's work.
const EXECUTION_FIELDS: [&str; 4] = [RESUME_AT, REDRIVE, REPLAY_OF, "failure"];
/// States that record a run's end: never continued or replayed from.
const ENDINGS: [&str; 2] = ["RecordFailure", "RecordRejection"];

/// Whether a task's input is that of a redriven execution.
pub(crate) fn is_redriven(input: &Value) -> bool {
    input.get(REDRIVE).is_some()
}

/// Another run this one is linked to, and the state the replay started at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunLink {
    pub run_id: RunId,
    pub job_code: JobCode,
    pub from: String,
}

/// One redrive of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Redrive {
    /// The state it continued from (none: from the start).
    pub from: Option<String>,
    /// The name of the execution it started.
    pub execution_name: String,
    pub at: DateTime<Utc>,
}

/// A run's links: the run it replays, its replays, its redrives. Derived
/// from its artifacts (`run.replay_of`, `run.replayed`, `run.redriven`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lineage {
    #[serde(default)]
    pub replay_of: Option<RunLink>,
    #[serde(default)]
    pub replays: Vec<RunLink>,
    #[serde(default)]
    pub redrives: Vec<Redrive>,
}

impl Lineage {
    /// The artifact types a lineage is read from.
    pub const ARTIFACT_TYPES: &'static [&'static str] =
        &["run.replay_of", "run.replayed", "run.redriven"];

    /// The links `artifacts` (a run's, in order) record; others are passed over.
    pub fn of(artifacts: &[Artifact]) -> Self {
        let link = |a: &Artifact| serde_json::from_value::<RunLink>(a.metadata.clone()).ok();
        let mut lineage = Lineage::default();
        for a in artifacts {
            match a.artifact_type.as_str() {
                t if t == ArtifactType::RUN_REPLAY_OF.as_str() => lineage.replay_of = link(a),
                t if t == ArtifactType::RUN_REPLAYED.as_str() => {
                    lineage.replays.extend(link(a));
                }
                t if t == ArtifactType::RUN_REDRIVEN.as_str() => lineage.redrives.push(Redrive {
                    from: a.metadata["from"].as_str().map(str::to_owned),
                    execution_name: a.metadata["execution_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    at: a.created_at,
                }),
                _ => {}
            }
        }
        lineage
    }

    /// One line per link, as `mw runs show`, `mw trace` and the evidence
    /// bundle print them: `replay of TVG-ABC123 from Quinn`, …
    pub fn lines(&self) -> Vec<String> {
        let from = |state: &Option<String>| state.as_deref().unwrap_or("the start").to_owned();
        let mut lines = Vec::new();
        if let Some(origin) = &self.replay_of {
            lines.push(format!(
                "replay of {} from {}",
                origin.job_code, origin.from
            ));
        }
        for replay in &self.replays {
            lines.push(format!(
                "replayed as {} from {}",
                replay.job_code, replay.from
            ));
        }
        for redrive in &self.redrives {
            lines.push(format!(
                "redriven from {} (execution {})",
                from(&redrive.from),
                redrive.execution_name
            ));
        }
        lines
    }
}

/// What a replay starts from.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// The state to start at: one the origin entered.
    pub from: String,
    /// Merged over the recorded context (and, for `message`, the run's
    /// input): a new message, a caption hint, another persona's output.
    pub input: Option<Value>,
}

/// A recorded `TaskStateEntered` event's state name and input.
fn entered(event: &HistoryEvent) -> Option<(&str, Value)> {
    if event.event_type != "TaskStateEntered" {
        return None;
    }
    let name = event.details.get("name")?.as_str()?;
    let input = match event.details.get("input")? {
        Value::String(text) => serde_json::from_str(text).ok()?,
        other => other.clone(),
    };
    Some((name, input))
}

/// `context` without the fields of the execution it was recorded in, with
/// the run's names and `extra` set.
fn execution_input(context: Value, run: &Run, extra: Map<String, Value>) -> Value {
    let mut input = match context {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for field in EXECUTION_FIELDS {
        input.remove(field);
    }
    input.insert("run_id".into(), json!(run.run_id));
    input.insert("project".into(), json!(run.project));
    input.insert("job_code".into(), json!(run.job_code));
    input.extend(extra);
    Value::Object(input)
}

impl Pipeline {
    /// How many times the run was redriven (its `run.redriven` artifacts).
    async fn redrives(&self, run_id: RunId) -> Result<u32, PipelineError> {
        let redriven = self
            .store
            .list_artifacts_of(run_id, &[ArtifactType::RUN_REDRIVEN.as_str()])
            .await?;
        Ok(redriven.len() as u32)
    }

    /// The histories of the run's executions, newest first: its current
    /// one, then those its redrives replaced (found by name).
    async fn histories(&self, run: &Run) -> Result<Vec<Vec<HistoryEvent>>, PipelineError> {
        let state_machine = self.state_machine(&run.project)?;
        let redrives = self.redrives(run.run_id).await?;
        let mut arns: Vec<String> = run.execution_id.iter().cloned().collect();
        for n in (0..=redrives).rev() {
            let name = run.run_id.execution_name(n);
            if let Some(arn) = crate::engine::arn::execution_of(state_machine, &name) {
                if !arns.contains(&arn) {
                    arns.push(arn);
                }
            }
        }
        let mut histories = Vec::new();
        for arn in arns {
            match self.engine.get_execution_history(&arn).await {
                Ok(history) => histories.push(history),
                Err(crate::engine::EngineError::ExecutionDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(histories)
    }

    /// Continues a failed run from the state that failed (see the module's
    /// doc). `Conflict` when the run is not `failed`, or its execution has
    /// not ended yet, or another redrive started it first.
    pub async fn redrive_run(&self, key: &str, by: &str) -> Result<Run, PipelineError> {
        let run = self.find_run(key).await?;
        let span = crate::telemetry::run_span(&run.labels());
        self.redrive_found_run(run, by).instrument(span).await
    }

    async fn redrive_found_run(&self, run: Run, by: &str) -> Result<Run, PipelineError> {
        if !run.status.can_be_redriven() {
            return Err(PipelineError::Conflict(format!(
                "run {} is {}: only a failed run can be redriven",
                run.job_code, run.status
            )));
        }
        let state_machine = self.state_machine(&run.project)?.to_owned();
        if let Some(execution) = &run.execution_id {
            // Its end is recorded after the run's failure: a redrive before
            // it would have that end fail the redriven run.
            let running = match self.engine.describe_execution(execution).await {
                Ok(found) => found.is_running(),
                // Gone from the engine (it keeps histories only so long): ended.
                Err(crate::engine::EngineError::ExecutionDoesNotExist(_)) => false,
                Err(e) => return Err(e.into()),
            };
            if running {
                return Err(PipelineError::Conflict(format!(
                    "run {}'s execution is still ending; redrive it in a moment",
                    run.job_code
                )));
            }
        }
        let failed_at = self
            .histories(&run)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default()
            .iter()
            .rev()
            .filter_map(entered)
            .find(|(name, _)| !ENDINGS.contains(name))
            .map(|(name, input)| (name.to_owned(), input));
        let redrive = self.redrives(run.run_id).await? + 1;
        let name = run.run_id.execution_name(redrive);
        let from = failed_at.as_ref().map(|(state, _)| state.clone());
        let mut extra = Map::new();
        extra.insert(REDRIVE.into(), json!({ "n": redrive, "from": from }));
        if let Some(state) = &from {
            extra.insert(RESUME_AT.into(), json!(state));
        }
        let context = failed_at.map(|(_, input)| input).unwrap_or(Value::Null);
        let input = execution_input(context, &run, extra);
        let artifact = NewArtifact::new(
            run.run_id,
            ArtifactType::RUN_REDRIVEN,
            json!({ "from": from, "execution_name": name, "n": redrive, "by": by,
                    "failed_with": run.error }),
        );
        let run = match self
            .transition_run(Transition::redrive(run.run_id).artifact(artifact))
            .await
        {
            Ok(run) => run,
            Err(StoreError::Conflict { actual, .. }) => {
                return Err(PipelineError::Conflict(format!(
                    "run {} is {actual} now: another redrive started it",
                    run.job_code
                )))
            }
            Err(e) => return Err(e.into()),
        };
        self.open_redrive_span(&run, redrive, from.as_deref(), &name)
            .await;
        match self
            .engine
            .start_execution(&state_machine, Some(&name), &input)
            .await
        {
            Ok(started) => {
                tracing::info!(from = ?from, execution = %started.execution_arn, by, "run redriven");
                crate::telemetry::metrics::count(
                    "mw_runs_redriven_total",
                    "Failed runs continued from the state that failed, by project.",
                    &[("project", run.project.as_str())],
                );
                Ok(self
                    .store
                    .set_execution_id(run.run_id, &started.execution_arn)
                    .await?)
            }
            Err(err) => {
                let reason = format!("the engine did not start the redrive: {err}");
                self.fail_unstarted(&run, RunStatus::Running, &reason)
                    .await?;
                Err(err.into())
            }
        }
    }

    /// `<project>:redrive` under the run's graph span: the redrive's steps
    /// come after it in the run tree.
    async fn open_redrive_span(&self, run: &Run, n: u32, from: Option<&str>, execution: &str) {
        let span = NewSpan::in_run(run.run_id, format!("{}:redrive", run.project))
            .id(SpanId::derived(&format!("{}/redrive/{n}", run.run_id)))
            .parent(SpanId::graph(run.run_id))
            .attr(attr::PROJECT, run.project.as_str())
            .attr("myloware.redrive.from", from.unwrap_or("the start"))
            .attr("myloware.redrive.execution", execution);
        self.tracer.open(span).await;
    }

    /// Starts a new run from `request.from` with the context `key`'s run
    /// had recorded there (see the module's doc). `Invalid` when the origin
    /// never entered that state, or the input is not a JSON object.
    pub async fn replay_run(
        &self,
        key: &str,
        request: ReplayRequest,
    ) -> Result<Run, PipelineError> {
        let origin = self.find_run(key).await?;
        let state_machine = self.state_machine(&origin.project)?.to_owned();
        let overrides = match request.input {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(PipelineError::Invalid(format!(
                    "the replay's input must be a JSON object, not {other}"
                )))
            }
        };
        let histories = self.histories(&origin).await?;
        let recorded = histories
            .iter()
            .flat_map(|history| history.iter().rev().filter_map(entered))
            .find(|(name, _)| *name == request.from && !ENDINGS.contains(name));
        let Some((_, context)) = recorded else {
            let mut states: Vec<&str> = histories
                .iter()
                .flatten()
                .filter(|e| e.event_type == "TaskStateEntered")
                .filter_map(|e| e.details.get("name").and_then(Value::as_str))
                .filter(|name| !ENDINGS.contains(name))
                .collect();
            states.sort_unstable();
            states.dedup();
            return Err(PipelineError::Invalid(format!(
                "run {} never entered state {:?}; it can be replayed from: {}",
                origin.job_code,
                request.from,
                if states.is_empty() {
                    "no state (no recorded history)".to_owned()
                } else {
                    states.join(", ")
                }
            )));
        };
        let mut run_input = match &origin.input {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        if let Some(message) = overrides.get("message") {
            let message = message.as_str().ok_or_else(|| {
                PipelineError::Invalid("the replay's input message must be text".into())
            })?;
            super::limits::message(Some(message.to_owned()), super::limits::MESSAGE_MAX_CHARS)?;
            run_input.insert("message".into(), json!(message));
        }
        let mut new = NewRun::new(
            origin.project.clone(),
            Value::Object(run_input),
            self.settings.providers_mode,
        );
        if let Some(user) = &origin.user_id {
            new = new.for_user(user.clone());
        }
        let run = self.store.create_run(new).await?;
        let link = |run: &Run| json!({ "run_id": run.run_id, "job_code": run.job_code, "from": request.from });
        let mut extra = overrides;
        extra.insert(RESUME_AT.into(), json!(request.from));
        extra.insert(REPLAY_OF.into(), link(&origin));
        let input = execution_input(context, &run, extra);
        // Both ends of the link, then the run's own start.
        self.store
            .append_artifact(NewArtifact::new(
                run.run_id,
                ArtifactType::RUN_REPLAY_OF,
                json!({ "run_id": origin.run_id, "job_code": origin.job_code,
                        "from": request.from, "input": input }),
            ))
            .await?;
        self.store
            .append_artifact(NewArtifact::new(
                origin.run_id,
                ArtifactType::RUN_REPLAYED,
                link(&run),
            ))
            .await?;
        let origin_span = SpanLink {
            trace_id: TraceId::of_run(origin.run_id),
            span_id: SpanId::graph(origin.run_id),
        };
        let message = run.input["message"].as_str().unwrap_or_default().to_owned();
        let span = crate::telemetry::run_span(&run.labels());
        tracing::info!(origin = %origin.job_code, from = %request.from, replay = %run.job_code, "run replayed");
        self.start_execution(
            run,
            state_machine,
            message,
            super::runs::Start {
                link: Some(origin_span),
                replay_of: Some((origin.job_code.clone(), request.from.clone())),
                input: Some(input),
            },
        )
        .instrument(span)
        .await
    }

    /// The execution input of a run started again by the reconciler (its
    /// first start was throttled): a replay's is on its `run.replay_of`.
    pub(super) async fn recorded_replay_input(
        &self,
        run: &Run,
    ) -> Result<Option<Value>, PipelineError> {
        Ok(self
            .store
            .list_artifacts_of(run.run_id, &[ArtifactType::RUN_REPLAY_OF.as_str()])
            .await?
            .pop()
            .map(|a| a.metadata["input"].clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, details: Value) -> HistoryEvent {
        HistoryEvent {
            id: 1,
            previous_event_id: 0,
            timestamp: Utc::now(),
            event_type: event_type.into(),
            details,
        }
    }

    #[test]
    fn a_state_entered_gives_its_name_and_input_text_or_json() {
        let text = event(
            "TaskStateEntered",
            json!({ "name": "Alex", "input": "{\"riley\":{\"clips\":[1]}}" }),
        );
        assert_eq!(
            entered(&text),
            Some(("Alex", json!({ "riley": { "clips": [1] } })))
        );
        let object = event(
            "TaskStateEntered",
            json!({ "name": "Quinn", "input": {"a": 1} }),
        );
        assert_eq!(entered(&object), Some(("Quinn", json!({ "a": 1 }))));
        let choice = event(
            "ChoiceStateEntered",
            json!({ "name": "Resume", "input": "{}" }),
        );
        assert_eq!(entered(&choice), None);
        assert_eq!(
            entered(&event("TaskScheduled", json!({ "name": "Alex" }))),
            None
        );
    }

    #[test]
    fn the_execution_input_drops_the_old_executions_fields_and_names_the_run() {
        let run = Run {
            run_id: RunId::new(),
            project: "test-video-gen".parse().unwrap(),
            status: RunStatus::Failed,
            job_code: JobCode::generate(&"test-video-gen".parse().unwrap()),
            user_id: None,
            input: json!({}),
            result: None,
            execution_id: None,
            providers_mode: crate::domain::ProvidersMode::Mock,
            error: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let context = json!({ "run_id": "old", "resume_at": "Riley", "redrive": {"n": 1},
                              "failure": {"Error": "x"}, "riley": {"clips": []} });
        let mut extra = Map::new();
        extra.insert(RESUME_AT.into(), json!("Alex"));
        let input = execution_input(context, &run, extra);
        assert_eq!(input["run_id"], json!(run.run_id));
        assert_eq!(input["job_code"], json!(run.job_code));
        assert_eq!(input["resume_at"], "Alex");
        assert_eq!(input["riley"], json!({ "clips": [] }));
        assert!(input.get("failure").is_none() && input.get("redrive").is_none());
    }

    #[test]
    fn lineage_reads_the_artifact_types_it_names() {
        let named = [
            ArtifactType::RUN_REPLAY_OF,
            ArtifactType::RUN_REPLAYED,
            ArtifactType::RUN_REDRIVEN,
        ];
        for (t, name) in named.iter().zip(Lineage::ARTIFACT_TYPES) {
            assert_eq!(t.as_str(), *name);
        }
    }

    #[test]
    fn lineage_reads_the_links_and_says_them() {
        let origin = RunId::new();
        let mut replay_of = Artifact {
            id: uuid::Uuid::new_v4(),
            run_id: RunId::new(),
            artifact_type: ArtifactType::RUN_REPLAY_OF,
            provider: None,
            persona: None,
            url: None,
            checksum: None,
            metadata: json!({ "run_id": origin, "job_code": "TVG-ABC123", "from": "Quinn", "input": {} }),
            created_at: Utc::now(),
        };
        let lineage = Lineage::of(std::slice::from_ref(&replay_of));
        assert_eq!(lineage.replay_of.as_ref().unwrap().run_id, origin);
        assert_eq!(lineage.lines(), ["replay of TVG-ABC123 from Quinn"]);
        replay_of.artifact_type = ArtifactType::RUN_REDRIVEN;
        replay_of.metadata = json!({ "from": "Alex", "execution_name": "x-r1" });
        assert_eq!(
            Lineage::of(&[replay_of]).lines(),
            ["redriven from Alex (execution x-r1)"]
        );
    }
}
