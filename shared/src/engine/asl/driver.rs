//! The in-memory driver of the interpreter core, and the project's *echo worker*
//! answer (`echo_answer`, which `engine::local::spawn_echo_worker` serves).
//!
//! Public (not `cfg(test)`) so that other crates' tests and `mw statemachine run` can execute a
//! definition end to end without a store or a queue: the driver answers task messages with a
//! worker function, fires timers at once by advancing a fake clock, and round-trips the
//! snapshot through JSON after every step, as a durable driver would persist it.

use super::machine::{
    Effect, Event, EventError, ExecutionContext, ExecutionResult, ExecutionStatus, HistoryEvent,
    Snapshot, Step,
};
use super::model::StateMachine;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// How a worker completes a task token.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAnswer {
    /// `SendTaskSuccess` with this output.
    Succeeded(Value),
    /// `SendTaskFailure` with this error and cause.
    Failed {
        /// The error name.
        error: Option<String>,
        /// The cause.
        cause: Option<String>,
    },
}

impl TaskAnswer {
    /// The interpreter event that delivers this answer for `token`.
    pub fn into_event(self, token: String) -> Event {
        match self {
            TaskAnswer::Succeeded(output) => Event::TaskSucceeded { token, output },
            TaskAnswer::Failed { error, cause } => Event::TaskFailed {
                token,
                error,
                cause,
            },
        }
    }
}

/// The echo worker, the project-wide convention for test runs: the message body is parsed as
/// JSON; a body with a `"fail": {"error": E, "cause": C}` field fails the task with `E`/`C`;
/// any other object succeeds with the body minus its `task_token` field; a non-object body
/// (or text that is not JSON) succeeds with the body as is.
pub fn echo_answer(message_body: &str) -> TaskAnswer {
    let body: Value = serde_json::from_str(message_body)
        .unwrap_or_else(|_| Value::String(message_body.to_owned()));
    let Value::Object(mut map) = body else {
        return TaskAnswer::Succeeded(body);
    };
    if let Some(fail) = map.get("fail") {
        let text = |key: &str| fail.get(key).and_then(Value::as_str).map(str::to_owned);
        return TaskAnswer::Failed {
            error: text("error"),
            cause: text("cause"),
        };
    }
    map.remove("task_token");
    TaskAnswer::Succeeded(Value::Object(map))
}

/// A message the execution sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// `QueueUrl`
    pub queue_url: String,
    /// `MessageBody`
    pub message_body: String,
    /// The task token, for `.waitForTaskToken` tasks.
    pub task_token: Option<String>,
}

/// A worker for the driver: an answer for a message's token, or `None` to leave it pending.
pub trait Worker: FnMut(&SentMessage) -> Option<TaskAnswer> {}
impl<F: FnMut(&SentMessage) -> Option<TaskAnswer>> Worker for F {}

/// The echo worker as a [`Worker`].
pub fn echo_worker(message: &SentMessage) -> Option<TaskAnswer> {
    Some(echo_answer(&message.message_body))
}

/// The fixed start time of test executions: 2024-01-01T00:00:00Z.
pub fn test_start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// An execution context for tests, named `test`/`exec-1`.
pub fn test_context(input: Value) -> ExecutionContext {
    ExecutionContext {
        execution_id: "arn:aws:states:local:000000000000:execution:test:exec-1".into(),
        name: "exec-1".into(),
        state_machine_id: "arn:aws:states:local:000000000000:stateMachine:test".into(),
        state_machine_name: "test".into(),
        input,
        start_time: test_start_time(),
        token_prefix: String::new(),
    }
}

/// Drives one execution in memory with a fake clock.
#[derive(Debug)]
pub struct Driver<'d> {
    def: &'d StateMachine,
    /// The execution's snapshot.
    pub snapshot: Snapshot,
    /// The fake clock.
    pub now: DateTime<Utc>,
    /// Every history event so far.
    pub history: Vec<HistoryEvent>,
    /// Every message sent so far.
    pub messages: Vec<SentMessage>,
    /// Scheduled timers: id → due time.
    pub timers: BTreeMap<String, DateTime<Utc>>,
    /// Answers waiting to be delivered.
    events: VecDeque<Event>,
}

impl<'d> Driver<'d> {
    /// Starts an execution with [`test_context`] and no worker (call [`Driver::run`]).
    pub fn start(def: &'d StateMachine, input: Value) -> Self {
        Self::start_with(def, test_context(input))
    }

    /// Starts an execution with the given context; the clock starts at its start time.
    pub fn start_with(def: &'d StateMachine, ctx: ExecutionContext) -> Self {
        let now = ctx.start_time;
        let (snapshot, step) = Snapshot::start(def, ctx, now);
        let mut driver = Driver {
            def,
            snapshot,
            now,
            history: Vec::new(),
            messages: Vec::new(),
            timers: BTreeMap::new(),
            events: VecDeque::new(),
        };
        driver.apply(step);
        driver
    }

    fn apply(&mut self, step: Step) {
        self.history.extend(step.history);
        for effect in step.effects {
            match effect {
                Effect::SendMessage {
                    queue_url,
                    message_body,
                    task_token,
                } => self.messages.push(SentMessage {
                    queue_url,
                    message_body,
                    task_token,
                }),
                Effect::ScheduleTimer { timer_id, at } => {
                    self.timers.insert(timer_id, at);
                }
                Effect::CancelTimer { timer_id } => {
                    self.timers.remove(&timer_id);
                }
                Effect::Finished(_) => {}
            }
        }
        // Persist and reload, as a durable driver would.
        let json = serde_json::to_string(&self.snapshot).unwrap_or_default();
        if let Ok(reloaded) = serde_json::from_str(&json) {
            self.snapshot = reloaded;
        }
    }

    /// Delivers an event now.
    pub fn send(&mut self, event: Event) -> Result<(), EventError> {
        let step = self.snapshot.handle(self.def, event, self.now)?;
        self.apply(step);
        Ok(())
    }

    /// Advances the clock to the earliest timer and fires it; `false` when there is none.
    pub fn fire_next_timer(&mut self) -> bool {
        let Some((id, at)) = self
            .timers
            .iter()
            .min_by_key(|(id, at)| (**at, (*id).clone()))
            .map(|(id, at)| (id.clone(), *at))
        else {
            return false;
        };
        self.timers.remove(&id);
        self.now = self.now.max(at);
        let _ = self.send(Event::TimerFired { timer_id: id });
        true
    }

    /// Runs until the execution ends or waits for tokens the worker left pending: every new
    /// message with a token is offered to `worker`, answers are delivered in order, and when
    /// nothing else is pending the next timer fires.
    pub fn run(&mut self, mut worker: impl Worker) -> Option<&ExecutionResult> {
        let mut offered = 0;
        while self.snapshot.status() == ExecutionStatus::Running {
            while offered < self.messages.len() {
                let message = self.messages[offered].clone();
                offered += 1;
                if let Some(token) = message.task_token.clone() {
                    if let Some(answer) = worker(&message) {
                        self.events.push_back(answer.into_event(token));
                    }
                }
            }
            if let Some(event) = self.events.pop_front() {
                let _ = self.send(event);
            } else if !self.fire_next_timer() {
                break;
            }
        }
        self.snapshot.result()
    }

    /// The event types of the history, in order.
    pub fn event_types(&self) -> Vec<&str> {
        self.history.iter().map(|e| e.event_type.as_str()).collect()
    }
}

/// Runs `def` on `input` to the end (or until only unanswered tokens remain), answering task
/// messages with `worker` and firing timers at once.
pub fn run_to_completion<'d>(
    def: &'d StateMachine,
    input: Value,
    worker: impl Worker,
) -> Driver<'d> {
    let mut driver = Driver::start(def, input);
    driver.run(worker);
    driver
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_worker_convention() {
        assert_eq!(
            echo_answer(r#"{"task": "ideate", "task_token": "t", "input": {"a": 1}}"#),
            TaskAnswer::Succeeded(json!({"task": "ideate", "input": {"a": 1}}))
        );
        assert_eq!(
            echo_answer(
                r#"{"fail": {"error": "Provider.Down", "cause": "503"}, "task_token": "t"}"#
            ),
            TaskAnswer::Failed {
                error: Some("Provider.Down".into()),
                cause: Some("503".into())
            }
        );
        assert_eq!(
            echo_answer(r#"{"fail": {}}"#),
            TaskAnswer::Failed {
                error: None,
                cause: None
            }
        );
        assert_eq!(echo_answer("[1,2]"), TaskAnswer::Succeeded(json!([1, 2])));
        assert_eq!(
            echo_answer("plain text"),
            TaskAnswer::Succeeded(json!("plain text"))
        );
        assert_eq!(
            TaskAnswer::Succeeded(json!(1)).into_event("tok".into()),
            Event::TaskSucceeded {
                token: "tok".into(),
                output: json!(1)
            }
        );
    }
}
