//! The private parts of a snapshot: frames (threads of control) and timers.
//!
//! A frame is the top level of the execution, one Parallel branch or one Map iteration. It sits
//! in exactly one state, holds that state's raw input (needed for `ResultPath`, retries and
//! `Catch`) and says what, if anything, it is waiting for.

use crate::engine::asl::model::ScopeId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Frame {
    /// Which list of states the frame runs in.
    pub(super) scope: ScopeId,
    /// The Parallel/Map frame this one is a branch or iteration of, and its index there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) parent: Option<(u64, usize)>,
    /// The current state.
    pub(super) state: String,
    pub(super) entered_at: DateTime<Utc>,
    /// The id of the `…StateEntered` event (AWS quotes it in error causes).
    pub(super) entered_event: i64,
    /// The id of the frame's latest event (the `previousEventId` of its next one).
    pub(super) last_event: i64,
    /// Retries of the current state so far (`$$.State.RetryCount`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) retry_count: u32,
    /// Attempts used per retrier of the current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) attempts: Vec<u64>,
    /// The current state's raw input.
    pub(super) input: Value,
    #[serde(default, skip_serializing_if = "Wait::is_none")]
    pub(super) wait: Wait,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a frame is waiting for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(super) enum Wait {
    /// Nothing: it is being worked on.
    #[default]
    None,
    /// A task token.
    Task(TaskWait),
    /// A Wait state's timer.
    Timer(String),
    /// The interval before a retry.
    Retry(String),
    /// Its Parallel branches or Map iterations.
    Children(Children),
}

impl Wait {
    pub(super) fn is_none(&self) -> bool {
        matches!(self, Wait::None)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TaskWait {
    pub(super) token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timeout: Option<Deadline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) heartbeat: Option<Heartbeat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Deadline {
    pub(super) timer: String,
    pub(super) at: DateTime<Utc>,
    pub(super) seconds: u64,
}

pub(super) type Heartbeat = Deadline;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Children {
    /// Running children: index → frame id.
    pub(super) running: BTreeMap<usize, u64>,
    /// Results by index (`null` until a child completes).
    pub(super) results: Vec<Value>,
    /// Children not yet completed.
    pub(super) remaining: usize,
    /// Map only: inputs of iterations not yet started, for indices `next_index..`.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub(super) pending: VecDeque<Value>,
    #[serde(default)]
    pub(super) next_index: usize,
    /// Map only: how many iterations may run at once (0: no limit).
    #[serde(default)]
    pub(super) max_concurrency: usize,
}

/// A scheduled timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Timer {
    /// The frame it belongs to (`None` for the execution timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) frame: Option<u64>,
    pub(super) kind: TimerKind,
    pub(super) at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum TimerKind {
    ExecutionTimeout,
    Wait,
    Retry,
    TaskTimeout,
    Heartbeat,
}

impl TimerKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            TimerKind::ExecutionTimeout => "execution-timeout",
            TimerKind::Wait => "wait",
            TimerKind::Retry => "retry",
            TimerKind::TaskTimeout => "task-timeout",
            TimerKind::Heartbeat => "heartbeat",
        }
    }
}
