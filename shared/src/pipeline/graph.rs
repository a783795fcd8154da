//! A run's state machine as something to draw: the definition it runs (the
//! `statemachine/<project>.asl.json` both engines execute), one step per state
//! entered, read from the execution history, and the states it is in now. The
//! dashboard draws the graph and the persona timeline from this.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Pipeline, PipelineError};
use crate::domain::{JobCode, Project, RunId, RunStatus};
use crate::engine::asl::machine::HistoryEvent;
use crate::engine::definitions;

/// How a step went, so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Entered and not left: the run is here now.
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// Left unfinished because the execution ended (stopped, failed
    /// elsewhere).
    Aborted,
}

/// One visit of one state: when it was entered, when its task was handed to
/// the worker, when it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    /// The state's name in the definition (`Iggy`, `GateIdeate`, …).
    pub state: String,
    /// The state's type as history names it (`Task`, `Fail`, `Choice`, …).
    pub state_type: String,
    pub status: StepStatus,
    pub entered_at: DateTime<Utc>,
    /// When the (last) task attempt was scheduled, for Task states.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When the task succeeded, failed or timed out, or the state was left.
    pub ended_at: Option<DateTime<Utc>>,
    /// Task attempts scheduled (more than one after retries).
    pub attempts: u32,
    /// The error of the last failed attempt (`States.Timeout`, …).
    pub error: Option<String>,
}

/// The graph of a run: its definition, its steps, where it is now.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunGraph {
    pub run_id: RunId,
    pub job_code: JobCode,
    pub project: Project,
    pub status: RunStatus,
    /// The state machine's name: the definition file's name.
    pub state_machine: String,
    /// The ASL definition as written in `statemachine/`, placeholders
    /// (`${TaskQueueUrl}`) left as they are.
    pub definition: Value,
    /// Every state entered, in the order entered.
    pub steps: Vec<Step>,
    /// The states the run is in now (more than one inside a Parallel).
    pub current: Vec<String>,
}

impl Pipeline {
    /// The definition run `key` executes and where its execution is.
    pub async fn graph(&self, key: &str) -> Result<RunGraph, PipelineError> {
        let run = self.find_run(key).await?;
        let name = run.project.as_str().to_owned();
        let text = definitions::EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| PipelineError::not_found(format!("state machine {name}")))?;
        let definition: Value = serde_json::from_str(text).map_err(|e| {
            PipelineError::Invalid(format!("statemachine/{name}.asl.json is not JSON: {e}"))
        })?;
        let history = self.history(&run).await;
        let steps = steps(&history);
        let current = steps
            .iter()
            .filter(|s| s.status == StepStatus::Running)
            .map(|s| s.state.clone())
            .collect();
        Ok(RunGraph {
            run_id: run.run_id,
            job_code: run.job_code,
            project: run.project,
            status: run.status,
            state_machine: name,
            definition,
            steps,
            current,
        })
    }
}

/// The steps an execution history records. Task events belong to the state
/// whose `…StateEntered` event their `previous_event_id` chain leads back
/// to, so the branches of a Parallel or the iterations of a Map keep apart.
pub fn steps(history: &[HistoryEvent]) -> Vec<Step> {
    let mut events: Vec<&HistoryEvent> = history.iter().collect();
    events.sort_by_key(|e| e.id);
    let mut steps: Vec<Step> = Vec::new();
    // Which step each event belongs to, by event id (none after an exit).
    let mut owner: HashMap<i64, Option<usize>> = HashMap::new();
    let mut execution_ended = false;
    for event in events {
        let name = event.details.get("name").and_then(Value::as_str);
        let inherited = owner.get(&event.previous_event_id).copied().flatten();
        let kind = event.event_type.as_str();
        let mine = if let (Some(state_type), Some(name)) = (kind.strip_suffix("StateEntered"), name)
        {
            steps.push(Step {
                state: name.to_owned(),
                state_type: state_type.to_owned(),
                status: StepStatus::Running,
                entered_at: event.timestamp,
                scheduled_at: None,
                ended_at: None,
                attempts: 0,
                error: None,
            });
            Some(steps.len() - 1)
        } else if let (Some(_), Some(name)) = (kind.strip_suffix("StateExited"), name) {
            let index = inherited
                .filter(|i| steps[*i].state == name)
                .or_else(|| last_open(&steps, name));
            if let Some(step) = index.map(|i| &mut steps[i]) {
                if step.status == StepStatus::Running {
                    step.status = StepStatus::Succeeded;
                }
                step.ended_at.get_or_insert(event.timestamp);
            }
            owner.insert(event.id, None);
            continue;
        } else if kind.starts_with("Execution") {
            execution_ended |= kind != "ExecutionStarted";
            None
        } else {
            inherited
        };
        owner.insert(event.id, mine);
        let Some(step) = mine.map(|i| &mut steps[i]) else {
            continue;
        };
        match kind {
            "TaskScheduled" => {
                step.attempts += 1;
                step.scheduled_at = Some(event.timestamp);
                step.status = StepStatus::Running;
                step.ended_at = None;
            }
            "TaskSucceeded" => step.ended_at = Some(event.timestamp),
            "TaskFailed" | "TaskTimedOut" => {
                step.status = if kind == "TaskFailed" {
                    StepStatus::Failed
                } else {
                    StepStatus::TimedOut
                };
                step.ended_at = Some(event.timestamp);
                step.error = event
                    .details
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            _ => {}
        }
    }
    if execution_ended {
        for step in steps.iter_mut().filter(|s| s.status == StepStatus::Running) {
            step.status = if step.state_type == "Fail" {
                StepStatus::Failed
            } else {
                StepStatus::Aborted
            };
        }
    }
    steps
}

/// The latest visit of `state` that has not been left.
fn last_open(steps: &[Step], state: &str) -> Option<usize> {
    steps
        .iter()
        .rposition(|s| s.state == state && s.ended_at.is_none())
        .or_else(|| steps.iter().rposition(|s| s.state == state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, second).unwrap()
    }

    /// A history built like the engines build it: each event follows the
    /// previous one of its state.
    struct History(Vec<HistoryEvent>);

    impl History {
        fn new() -> Self {
            let mut h = History(Vec::new());
            h.push(0, 0, "ExecutionStarted", json!({}));
            h
        }

        fn push(&mut self, previous: i64, second: u32, kind: &str, details: Value) -> i64 {
            let id = self.0.len() as i64 + 1;
            self.0.push(HistoryEvent {
                id,
                previous_event_id: previous,
                timestamp: at(second),
                event_type: kind.to_owned(),
                details,
            });
            id
        }

        fn last(&self) -> i64 {
            self.0.len() as i64
        }

        /// Enters `state` and schedules its task; returns the last event id.
        fn task(&mut self, second: u32, state: &str) -> i64 {
            let p = self.last();
            let e = self.push(p, second, "TaskStateEntered", json!({ "name": state }));
            let s = self.push(e, second, "TaskScheduled", json!({}));
            self.push(s, second, "TaskStarted", json!({}))
        }
    }

    #[test]
    fn a_finished_task_and_a_waiting_one() {
        let mut h = History::new();
        let t = h.task(1, "Iggy");
        let s = h.push(t, 4, "TaskSucceeded", json!({}));
        h.push(s, 4, "TaskStateExited", json!({ "name": "Iggy" }));
        h.task(5, "GateIdeate");

        let steps = steps(&h.0);
        assert_eq!(steps.len(), 2);
        let iggy = &steps[0];
        assert_eq!(
            (iggy.state.as_str(), iggy.state_type.as_str()),
            ("Iggy", "Task")
        );
        assert_eq!(iggy.status, StepStatus::Succeeded);
        assert_eq!(
            (iggy.entered_at, iggy.scheduled_at, iggy.ended_at),
            (at(1), Some(at(1)), Some(at(4)))
        );
        assert_eq!(iggy.attempts, 1);
        let gate = &steps[1];
        assert_eq!(gate.state, "GateIdeate");
        assert_eq!(gate.status, StepStatus::Running);
        assert_eq!(gate.ended_at, None);
    }

    #[test]
    fn a_retried_task_counts_its_attempts_and_a_caught_failure_moves_on() {
        let mut h = History::new();
        let t = h.task(1, "Riley");
        let f = h.push(t, 2, "TaskFailed", json!({ "error": "Worker.Transient" }));
        let s = h.push(f, 4, "TaskScheduled", json!({}));
        let f = h.push(s, 6, "TaskFailed", json!({ "error": "States.TaskFailed" }));
        h.push(f, 6, "TaskStateExited", json!({ "name": "Riley" }));
        let t = h.task(7, "RecordFailure");
        let s = h.push(t, 7, "TaskSucceeded", json!({}));
        let x = h.push(s, 7, "TaskStateExited", json!({ "name": "RecordFailure" }));
        let e = h.push(x, 8, "FailStateEntered", json!({ "name": "Failed" }));
        h.push(
            e,
            8,
            "ExecutionFailed",
            json!({ "error": "States.TaskFailed" }),
        );

        let steps = steps(&h.0);
        let names: Vec<(&str, StepStatus)> =
            steps.iter().map(|s| (s.state.as_str(), s.status)).collect();
        assert_eq!(
            names,
            [
                ("Riley", StepStatus::Failed),
                ("RecordFailure", StepStatus::Succeeded),
                ("Failed", StepStatus::Failed),
            ]
        );
        assert_eq!(steps[0].attempts, 2);
        assert_eq!(steps[0].scheduled_at, Some(at(4)));
        assert_eq!(steps[0].error.as_deref(), Some("States.TaskFailed"));
        assert_eq!(steps[0].ended_at, Some(at(6)));
    }

    #[test]
    fn a_stopped_execution_leaves_no_state_running() {
        let mut h = History::new();
        let t = h.task(1, "GateIdeate");
        h.push(t, 9, "ExecutionAborted", json!({}));
        let steps = steps(&h.0);
        assert_eq!(steps[0].status, StepStatus::Aborted);
    }

    #[test]
    fn parallel_branches_keep_their_own_tasks() {
        let mut h = History::new();
        let p = h.push(1, 1, "ParallelStateEntered", json!({ "name": "Both" }));
        let a = h.push(p, 1, "TaskStateEntered", json!({ "name": "A" }));
        let b = h.push(p, 1, "TaskStateEntered", json!({ "name": "B" }));
        let sa = h.push(a, 2, "TaskScheduled", json!({}));
        let sb = h.push(b, 2, "TaskScheduled", json!({}));
        let ok = h.push(sb, 3, "TaskSucceeded", json!({}));
        h.push(ok, 3, "TaskStateExited", json!({ "name": "B" }));
        h.push(sa, 5, "TaskFailed", json!({ "error": "Boom" }));

        let steps = steps(&h.0);
        let by_name = |n: &str| steps.iter().find(|s| s.state == n).unwrap();
        assert_eq!(by_name("B").status, StepStatus::Succeeded);
        assert_eq!(by_name("B").ended_at, Some(at(3)));
        assert_eq!(by_name("A").status, StepStatus::Failed);
        assert_eq!(by_name("A").error.as_deref(), Some("Boom"));
        assert_eq!(by_name("Both").status, StepStatus::Running);
    }
}
