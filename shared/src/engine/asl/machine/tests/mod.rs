//! Whole executions driven by the in-memory driver of `asl::driver`.

mod basic;
mod fanout;
mod lifecycle;
mod recovery;
mod tasks;

use crate::engine::asl::driver::{echo_worker, Driver, SentMessage, TaskAnswer};
use crate::engine::asl::{ExecutionResult, ExecutionStatus, StateMachine};
use serde_json::{json, Value};

pub(super) const WAIT_TASK: &str = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";

pub(super) fn sm(def: Value) -> StateMachine {
    StateMachine::parse(&def).unwrap_or_else(|e| panic!("{e}"))
}

/// A Task state sending `{task, input, task_token}` and waiting for its token.
pub(super) fn task(name: &str, extra: Value) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": WAIT_TASK,
        "Parameters": {
            "QueueUrl": "https://queue/tasks",
            "MessageBody": {"task": name, "input.$": "$", "task_token.$": "$$.Task.Token"}
        }
    });
    for (k, v) in extra.as_object().expect("object").clone() {
        state[k] = v;
    }
    state
}

pub(super) fn run_echo(def: &StateMachine, input: Value) -> Driver<'_> {
    let mut d = Driver::start(def, input);
    d.run(echo_worker);
    d
}

pub(super) fn finished(d: &Driver<'_>) -> ExecutionResult {
    d.snapshot
        .result()
        .cloned()
        .expect("the execution has finished")
}

pub(super) fn assert_succeeded(d: &Driver<'_>, output: Value) {
    let r = finished(d);
    assert_eq!(
        r.status,
        ExecutionStatus::Succeeded,
        "{r:?}\n{:#?}",
        d.event_types()
    );
    assert_eq!(r.output, Some(output));
}

pub(super) fn assert_failed(d: &Driver<'_>, error: &str) -> ExecutionResult {
    let r = finished(d);
    assert_eq!(
        r.status,
        ExecutionStatus::Failed,
        "{r:?}\n{:#?}",
        d.event_types()
    );
    assert_eq!(r.error.as_deref(), Some(error), "{r:?}");
    r
}

/// The body of a sent message, as JSON.
pub(super) fn body(m: &SentMessage) -> Value {
    serde_json::from_str(&m.message_body).expect("JSON body")
}

pub(super) fn fail(error: &str, cause: &str) -> TaskAnswer {
    TaskAnswer::Failed {
        error: Some(error.into()),
        cause: Some(cause.into()),
    }
}

pub(super) fn detail<'a>(d: &'a Driver<'_>, event_type: &str) -> Vec<&'a Value> {
    d.history
        .iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| &e.details)
        .collect()
}

/// When each task was scheduled, in order.
pub(super) fn scheduled_at(d: &Driver<'_>) -> Vec<chrono::DateTime<chrono::Utc>> {
    d.history
        .iter()
        .filter(|e| e.event_type == "TaskScheduled")
        .map(|e| e.timestamp)
        .collect()
}

/// The task token of every message sent so far, in order.
pub(super) fn task_tokens(d: &Driver<'_>) -> Vec<String> {
    d.messages
        .iter()
        .map(|m| m.task_token.clone().unwrap())
        .collect()
}
