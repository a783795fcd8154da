//! The interpreter core: one execution as a deterministic state machine over a serializable
//! [`Snapshot`].
//!
//! Nothing here waits, sleeps or does I/O. [`Snapshot::start`] and [`Snapshot::handle`] run the
//! execution as far as it can go *now* and return a [`Step`]: the history events to record and
//! the effects to perform (send a message, schedule or cancel a timer, report the end). A durable
//! driver persists the new snapshot together with the step before acting on the effects, so a
//! process killed at any point resumes where it was. The definition is not part of the snapshot
//! (the caller passes it to every call), which keeps the snapshot small enough to write on every
//! transition.

mod fanout;
mod flow;
mod frame;
mod history;
mod instant;
mod recovery;
mod run;
mod task;

pub use history::HistoryEvent;

use super::model::StateMachine;
use chrono::{DateTime, Utc};
use frame::{Frame, Timer, Wait};
use run::Run;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What an execution is started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionContext {
    /// The execution's ARN-like id (`$$.Execution.Id`).
    pub execution_id: String,
    /// The execution's name (`$$.Execution.Name`).
    pub name: String,
    /// The state machine's ARN-like id (`$$.StateMachine.Id`).
    pub state_machine_id: String,
    /// The state machine's name (`$$.StateMachine.Name`).
    pub state_machine_name: String,
    /// The execution input.
    pub input: Value,
    /// When the execution started (`$$.Execution.StartTime`).
    pub start_time: DateTime<Utc>,
    /// Put before every task token this execution issues, so that a driver
    /// can tell from a token alone which execution it belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_prefix: String,
}

/// An execution's status, named as in Step Functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Still running.
    Running,
    /// Ended with `ExecutionSucceeded`.
    Succeeded,
    /// Ended with `ExecutionFailed`.
    Failed,
    /// Stopped (`ExecutionAborted`).
    Aborted,
    /// Ran past the definition's `TimeoutSeconds` (`ExecutionTimedOut`).
    TimedOut,
}

impl ExecutionStatus {
    /// The Step Functions name: `RUNNING`, `SUCCEEDED`, `FAILED`, `ABORTED`, `TIMED_OUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Aborted => "ABORTED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
        }
    }
}

/// Something that happened to a running execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// `SendTaskSuccess`
    TaskSucceeded {
        /// The task token.
        token: String,
        /// The task's result.
        output: Value,
    },
    /// `SendTaskFailure`
    TaskFailed {
        /// The task token.
        token: String,
        /// The error name (kept absent when the worker gave none, as AWS does).
        error: Option<String>,
        /// The cause.
        cause: Option<String>,
    },
    /// `SendTaskHeartbeat`
    TaskHeartbeat {
        /// The task token.
        token: String,
    },
    /// A timer scheduled by [`Effect::ScheduleTimer`] is due.
    TimerFired {
        /// The timer's id.
        timer_id: String,
    },
    /// `StopExecution`
    Stop {
        /// The error to record.
        error: Option<String>,
        /// The cause to record.
        cause: Option<String>,
    },
}

/// What one call produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// New history events, in order.
    pub history: Vec<HistoryEvent>,
    /// Effects to perform once the snapshot and history are persisted, in order.
    pub effects: Vec<Effect>,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Send an SQS-style message; with a token, the task waits for it to be completed.
    SendMessage {
        /// `QueueUrl`
        queue_url: String,
        /// `MessageBody` (an object body is serialized to JSON text).
        message_body: String,
        /// The task token, for `.waitForTaskToken` tasks.
        task_token: Option<String>,
    },
    /// Deliver [`Event::TimerFired`] with this id at (or after) `at`.
    ScheduleTimer {
        /// Unique within the execution.
        timer_id: String,
        /// When it is due.
        at: DateTime<Utc>,
    },
    /// The timer is no longer needed (a late `TimerFired` for it is ignored anyway).
    CancelTimer {
        /// The timer's id.
        timer_id: String,
    },
    /// The execution ended.
    Finished(ExecutionResult),
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    /// The final status.
    pub status: ExecutionStatus,
    /// The output, when it succeeded.
    pub output: Option<Value>,
    /// The error, when it did not.
    pub error: Option<String>,
    /// The cause, when it did not.
    pub cause: Option<String>,
}

/// A task waiting for its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingToken {
    /// The token.
    pub token: String,
    /// The Task state's name.
    pub state_name: String,
    /// When the task times out (`TimeoutSeconds`), if it can.
    pub timeout_at: Option<DateTime<Utc>>,
    /// When the task times out unless it heartbeats (`HeartbeatSeconds`), if it can.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// Why an event was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The token was valid once, but its task is finished or was cancelled.
    #[error("the task for this token does not exist or has already completed")]
    TaskDoesNotExist,
    /// The token was never issued by this engine.
    #[error("the task token is invalid")]
    InvalidToken,
    /// The task timed out before the event arrived.
    #[error("the task has timed out")]
    TaskTimedOut,
    /// The execution has already ended.
    #[error("the execution is not running")]
    ExecutionNotRunning,
}

impl EventError {
    /// The Step Functions API error name (`TaskDoesNotExist`, `InvalidToken`, `TaskTimedOut`);
    /// for an ended execution AWS answers task calls with `TaskDoesNotExist`.
    pub fn aws_error_name(&self) -> &'static str {
        match self {
            EventError::TaskDoesNotExist | EventError::ExecutionNotRunning => "TaskDoesNotExist",
            EventError::InvalidToken => "InvalidToken",
            EventError::TaskTimedOut => "TaskTimedOut",
        }
    }
}

/// The whole mutable state of one execution, including every Parallel/Map branch, pending
/// token, retry counter and timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    context: ExecutionContext,
    status: ExecutionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<ExecutionResult>,
    /// The id the next history event gets.
    next_event_id: i64,
    /// The id of the last history event.
    last_event_id: i64,
    /// Source of frame and timer ids.
    next_id: u64,
    /// Running threads of control: the top level, and each running branch or iteration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    frames: BTreeMap<u64, Frame>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    timers: BTreeMap<String, Timer>,
    /// Token → frame waiting for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tokens: BTreeMap<String, u64>,
    /// Tokens whose task timed out (so late events get `TaskTimedOut`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    expired_tokens: Vec<String>,
}

impl Snapshot {
    /// Starts an execution and runs it as far as it can go.
    pub fn start(
        def: &StateMachine,
        ctx: ExecutionContext,
        now: DateTime<Utc>,
    ) -> (Snapshot, Step) {
        let mut snap = Snapshot {
            context: ctx,
            status: ExecutionStatus::Running,
            result: None,
            next_event_id: 1,
            last_event_id: 0,
            next_id: 1,
            frames: BTreeMap::new(),
            timers: BTreeMap::new(),
            tokens: BTreeMap::new(),
            expired_tokens: Vec::new(),
        };
        let step = Run::new(&mut snap, def, now).start();
        (snap, step)
    }

    /// Applies an event and runs the execution as far as it can go. On error nothing changed.
    pub fn handle(
        &mut self,
        def: &StateMachine,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Step, EventError> {
        if self.status != ExecutionStatus::Running {
            return match event {
                Event::TimerFired { .. } => Ok(Step::default()),
                _ => Err(EventError::ExecutionNotRunning),
            };
        }
        Run::new(self, def, now).handle(event)
    }

    /// The execution's status.
    pub fn status(&self) -> ExecutionStatus {
        self.status
    }

    /// How the execution ended, once it has.
    pub fn result(&self) -> Option<&ExecutionResult> {
        self.result.as_ref()
    }

    /// What the execution was started with.
    pub fn context(&self) -> &ExecutionContext {
        &self.context
    }

    /// Tasks waiting for a token, with their deadlines, oldest first.
    pub fn pending_tokens(&self) -> Vec<PendingToken> {
        let mut by_frame: Vec<(&String, &u64)> = self.tokens.iter().collect();
        by_frame.sort_by_key(|(_, frame)| **frame);
        by_frame
            .into_iter()
            .filter_map(|(token, id)| {
                let frame = self.frames.get(id)?;
                let Wait::Task(task) = &frame.wait else {
                    return None;
                };
                Some(PendingToken {
                    token: token.clone(),
                    state_name: frame.state.clone(),
                    timeout_at: task.timeout.as_ref().map(|d| d.at),
                    heartbeat_at: task.heartbeat.as_ref().map(|h| h.at),
                })
            })
            .collect()
    }

    /// The names of the states currently active (a Parallel or Map state and those running in
    /// its branches), without duplicates.
    pub fn current_states(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for frame in self.frames.values() {
            if !names.contains(&frame.state) {
                names.push(frame.state.clone());
            }
        }
        names
    }

    /// Timers that are due to fire, by id (a driver that lost its timer table can re-arm them
    /// from here after a restart).
    pub fn scheduled_timers(&self) -> Vec<(String, DateTime<Utc>)> {
        self.timers
            .iter()
            .map(|(id, timer)| (id.clone(), timer.at))
            .collect()
    }

    /// The id the next history event will get (so a driver can check continuity).
    pub fn next_event_id(&self) -> i64 {
        self.next_event_id
    }
}

#[cfg(test)]
mod tests;
