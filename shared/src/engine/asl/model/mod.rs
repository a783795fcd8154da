//! The typed model of a state machine definition.
//!
//! Parsing produces this model only when the whole definition is valid, so the interpreter never
//! re-checks anything: a `Next` always names a state of the same scope, a path always parses, a
//! retrier's numbers are in range. Nested scopes (Parallel branches, Map processors) are
//! flattened into one list addressed by [`ScopeId`], which keeps the interpreter's snapshot small:
//! a running branch is a scope id and a state name.

mod branches;
mod diagnostics;
mod parse;
mod retry;
mod states;

pub use diagnostics::{ValidationError, ValidationErrors};
pub use retry::{Catcher, Jitter, Retrier};

use super::choice::ChoiceRule;
use super::path::{FieldPath, ReferencePath, ResultPath};
use super::payload::{Expr, Template};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A validated state machine definition.
#[derive(Clone, Debug)]
pub struct StateMachine {
    pub(crate) comment: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) timeout_seconds: Option<u64>,
    pub(crate) scopes: Vec<Scope>,
}

/// Identifies a list of states: the top level (`ScopeId::ROOT`), a Parallel branch or a Map
/// processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeId(pub(crate) u32);

impl ScopeId {
    /// The top-level states.
    pub const ROOT: ScopeId = ScopeId(0);
}

/// `StartAt` and `States` of one level.
#[derive(Clone, Debug)]
pub struct Scope {
    pub(crate) start_at: String,
    pub(crate) states: BTreeMap<String, State>,
}

/// One state.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) name: String,
    pub(crate) comment: Option<String>,
    pub(crate) kind: StateKind,
}

/// The state types and their fields.
#[derive(Clone, Debug)]
pub enum StateKind {
    /// `Pass`
    Pass(PassState),
    /// `Task`
    Task(TaskState),
    /// `Choice`
    Choice(ChoiceState),
    /// `Wait`
    Wait(WaitState),
    /// `Succeed`
    Succeed(SucceedState),
    /// `Fail`
    Fail(FailState),
    /// `Parallel`
    Parallel(ParallelState),
    /// `Map`
    Map(MapState),
}

impl StateKind {
    /// How the state handles its work's result and errors: Task, Parallel
    /// and Map states have work; the others do not.
    pub(crate) fn result_handling(&self) -> Option<&ResultHandling> {
        match self {
            StateKind::Task(s) => Some(&s.handling),
            StateKind::Parallel(s) => Some(&s.handling),
            StateKind::Map(s) => Some(&s.handling),
            _ => None,
        }
    }
}

/// Where a state goes when it is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// `Next`
    Next(String),
    /// `End: true`
    End,
}

/// A `Pass` state.
#[derive(Clone, Debug)]
pub struct PassState {
    pub(crate) input_path: FieldPath,
    pub(crate) parameters: Option<Template>,
    pub(crate) result: Option<Value>,
    pub(crate) result_path: ResultPath,
    pub(crate) output_path: FieldPath,
    pub(crate) transition: Transition,
}

/// The service integrations the local engine implements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `arn:aws:states:::sqs:sendMessage`
    SqsSendMessage,
    /// `arn:aws:states:::sqs:sendMessage.waitForTaskToken`
    SqsSendMessageWaitForTaskToken,
    /// Anything else: fails with `States.Runtime` when the state runs.
    Unsupported(String),
}

impl Resource {
    /// The ARN for SQS `sendMessage`.
    pub const SQS_SEND_MESSAGE: &'static str = "arn:aws:states:::sqs:sendMessage";
    /// The ARN for SQS `sendMessage` with a callback token.
    pub const SQS_SEND_MESSAGE_WAIT: &'static str =
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken";

    fn from_arn(arn: &str) -> Resource {
        match arn {
            Self::SQS_SEND_MESSAGE => Resource::SqsSendMessage,
            Self::SQS_SEND_MESSAGE_WAIT => Resource::SqsSendMessageWaitForTaskToken,
            other => Resource::Unsupported(other.to_owned()),
        }
    }

    /// The ARN as written.
    pub fn arn(&self) -> &str {
        match self {
            Resource::SqsSendMessage => Self::SQS_SEND_MESSAGE,
            Resource::SqsSendMessageWaitForTaskToken => Self::SQS_SEND_MESSAGE_WAIT,
            Resource::Unsupported(arn) => arn,
        }
    }
}

/// A number of seconds, fixed or read from the input.
#[derive(Clone, Debug, PartialEq)]
pub enum Seconds {
    /// `…Seconds`
    Fixed(u64),
    /// `…SecondsPath`
    Path(ReferencePath),
}

/// What a Task, Parallel or Map state does when its work ends: how the
/// result becomes the output (`ResultSelector`, `ResultPath`, `OutputPath`)
/// and how an error is retried or caught (`Retry`, `Catch`).
#[derive(Clone, Debug)]
pub struct ResultHandling {
    pub(crate) result_selector: Option<Template>,
    pub(crate) result_path: ResultPath,
    pub(crate) output_path: FieldPath,
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
}

/// A `Task` state.
#[derive(Clone, Debug)]
pub struct TaskState {
    pub(crate) resource: Resource,
    pub(crate) input_path: FieldPath,
    pub(crate) parameters: Option<Template>,
    pub(crate) handling: ResultHandling,
    pub(crate) timeout: Option<Seconds>,
    pub(crate) heartbeat: Option<Seconds>,
    pub(crate) transition: Transition,
}

/// A `Choice` state.
#[derive(Clone, Debug)]
pub struct ChoiceState {
    pub(crate) input_path: FieldPath,
    pub(crate) output_path: FieldPath,
    pub(crate) choices: Vec<ChoiceRule>,
    pub(crate) default: Option<String>,
}

/// How long a `Wait` state waits.
#[derive(Clone, Debug, PartialEq)]
pub enum WaitFor {
    /// `Seconds`
    Seconds(u64),
    /// `SecondsPath`
    SecondsPath(ReferencePath),
    /// `Timestamp`
    Timestamp(DateTime<FixedOffset>),
    /// `TimestampPath`
    TimestampPath(ReferencePath),
}

/// A `Wait` state.
#[derive(Clone, Debug)]
pub struct WaitState {
    pub(crate) input_path: FieldPath,
    pub(crate) output_path: FieldPath,
    pub(crate) wait: WaitFor,
    pub(crate) transition: Transition,
}

/// A `Succeed` state.
#[derive(Clone, Debug)]
pub struct SucceedState {
    pub(crate) input_path: FieldPath,
    pub(crate) output_path: FieldPath,
}

/// `Error`/`ErrorPath` or `Cause`/`CausePath` of a `Fail` state.
#[derive(Clone, Debug, PartialEq)]
pub enum FailText {
    /// A fixed string.
    Literal(String),
    /// A path or intrinsic call evaluated against the state input.
    Dynamic(Expr),
}

/// A `Fail` state.
#[derive(Clone, Debug)]
pub struct FailState {
    pub(crate) error: Option<FailText>,
    pub(crate) cause: Option<FailText>,
}

/// A `Parallel` state.
#[derive(Clone, Debug)]
pub struct ParallelState {
    pub(crate) input_path: FieldPath,
    pub(crate) parameters: Option<Template>,
    pub(crate) branches: Vec<ScopeId>,
    pub(crate) handling: ResultHandling,
    pub(crate) transition: Transition,
}

/// How many Map iterations may run at once (`0`: no limit).
#[derive(Clone, Debug, PartialEq)]
pub enum MaxConcurrency {
    /// `MaxConcurrency`
    Fixed(u64),
    /// `MaxConcurrencyPath`
    Path(ReferencePath),
}

/// An inline `Map` state.
#[derive(Clone, Debug)]
pub struct MapState {
    pub(crate) input_path: FieldPath,
    pub(crate) items_path: Option<ReferencePath>,
    pub(crate) item_selector: Option<Template>,
    pub(crate) processor: ScopeId,
    pub(crate) max_concurrency: MaxConcurrency,
    pub(crate) handling: ResultHandling,
    pub(crate) transition: Transition,
}

/// A Task state whose `Resource` the local engine cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedResource {
    /// Where the state is, e.g. `state "Map1" > state "Inner"`.
    pub state: String,
    /// The resource ARN.
    pub resource: String,
}

impl StateMachine {
    /// Parses and validates a definition, reporting every problem found.
    pub fn parse(definition: &Value) -> Result<StateMachine, ValidationErrors> {
        parse::parse_machine(definition)
    }

    /// Parses and validates a definition given as JSON text.
    pub fn from_json_str(text: &str) -> Result<StateMachine, ValidationErrors> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ValidationErrors::single(format!("the definition is not valid JSON: {e}"))
        })?;
        Self::parse(&value)
    }

    /// The top-level `Comment`.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The top-level `Version`.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The execution-level `TimeoutSeconds`.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.timeout_seconds
    }

    /// The top-level `StartAt`.
    pub fn start_at(&self) -> &str {
        &self.scope(ScopeId::ROOT).start_at
    }

    /// The names of the top-level states, sorted.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.scope(ScopeId::ROOT).states.keys().map(String::as_str)
    }

    /// A top-level state by name.
    pub fn state(&self, name: &str) -> Option<&State> {
        self.scope(ScopeId::ROOT).states.get(name)
    }

    /// Task states, at any depth, whose resource the local engine cannot run; a caller can warn
    /// before starting an execution that would fail when it reaches them.
    pub fn unsupported_resources(&self) -> Vec<UnsupportedResource> {
        let mut out = Vec::new();
        self.collect_unsupported(ScopeId::ROOT, "", &mut out);
        out
    }

    fn collect_unsupported(
        &self,
        scope: ScopeId,
        prefix: &str,
        out: &mut Vec<UnsupportedResource>,
    ) {
        for (name, state) in &self.scope(scope).states {
            let location = diagnostics::state_location(prefix, name);
            match &state.kind {
                StateKind::Task(TaskState {
                    resource: Resource::Unsupported(arn),
                    ..
                }) => out.push(UnsupportedResource {
                    state: location,
                    resource: arn.clone(),
                }),
                StateKind::Parallel(p) => {
                    for (i, branch) in p.branches.iter().enumerate() {
                        self.collect_unsupported(*branch, &format!("{location} > branch {i}"), out);
                    }
                }
                StateKind::Map(m) => self.collect_unsupported(m.processor, &location, out),
                _ => {}
            }
        }
    }

    pub(crate) fn scope(&self, id: ScopeId) -> &Scope {
        &self.scopes[id.0 as usize]
    }

    /// A state of a scope; `None` only if the snapshot does not belong to this definition.
    pub(crate) fn lookup(&self, scope: ScopeId, name: &str) -> Option<&State> {
        self.scopes.get(scope.0 as usize)?.states.get(name)
    }
}

impl Scope {
    /// `StartAt`
    pub fn start_at(&self) -> &str {
        &self.start_at
    }
}

impl State {
    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state's `Comment`.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The state's type and fields.
    pub fn kind(&self) -> &StateKind {
        &self.kind
    }

    /// The `Type` as written (`Task`, `Map`, …); also the prefix of its history event names.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            StateKind::Pass(_) => "Pass",
            StateKind::Task(_) => "Task",
            StateKind::Choice(_) => "Choice",
            StateKind::Wait(_) => "Wait",
            StateKind::Succeed(_) => "Succeed",
            StateKind::Fail(_) => "Fail",
            StateKind::Parallel(_) => "Parallel",
            StateKind::Map(_) => "Map",
        }
    }
}

#[cfg(test)]
mod tests;
