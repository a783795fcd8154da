//! The `Engine` port, shaped like the Step Functions API so that code above it
//! never knows whether the local engine or AWS Step Functions runs the graph.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::asl::machine::HistoryEvent;
use crate::store::StoreError;

/// `StartExecution`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartedExecution {
    pub execution_arn: String,
    pub start_date: DateTime<Utc>,
}

/// `DescribeExecution`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionDescription {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `ABORTED` or `TIMED_OUT`.
    pub status: String,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_date: DateTime<Utc>,
    pub stop_date: Option<DateTime<Utc>>,
}

impl ExecutionDescription {
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING"
    }
}

/// An execution that ended, as Step Functions' "Execution Status Change"
/// EventBridge event details it (its `detail`, camelCase) and as the local
/// engine reports it (`LocalEngine::on_execution_end`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEnded {
    pub execution_arn: String,
    #[serde(default)]
    pub state_machine_arn: Option<String>,
    /// The execution's name (a run's id, for the runs' executions).
    pub name: String,
    /// `SUCCEEDED`, `FAILED`, `ABORTED` or `TIMED_OUT` (`RUNNING` when it
    /// started).
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

/// The Step Functions API errors, by their API names.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("ExecutionAlreadyExists: {0}")]
    ExecutionAlreadyExists(String),
    #[error("ExecutionDoesNotExist: {0}")]
    ExecutionDoesNotExist(String),
    #[error("StateMachineDoesNotExist: {0}")]
    StateMachineDoesNotExist(String),
    #[error("InvalidName: {0}")]
    InvalidName(String),
    #[error("InvalidDefinition: {0}")]
    InvalidDefinition(String),
    #[error("InvalidToken: the task token is invalid")]
    InvalidToken,
    #[error("TaskDoesNotExist: the task for this token does not exist or has already completed")]
    TaskDoesNotExist,
    #[error("TaskTimedOut: the task has timed out")]
    TaskTimedOut,
    #[error("the engine's store failed")]
    Store(#[source] std::sync::Arc<StoreError>),
    #[error("the engine has shut down")]
    ShutDown,
    /// Any other answer of a remote engine (Step Functions): its error code
    /// and message, or `Unreachable` when it did not answer.
    #[error("{code}: {message}")]
    Service { code: String, message: String },
}

impl EngineError {
    /// The Step Functions API error name.
    pub fn aws_name(&self) -> &str {
        match self {
            Self::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            Self::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            Self::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            Self::InvalidName(_) => "InvalidName",
            Self::InvalidDefinition(_) => "InvalidDefinition",
            Self::InvalidToken => "InvalidToken",
            Self::TaskDoesNotExist => "TaskDoesNotExist",
            Self::TaskTimedOut => "TaskTimedOut",
            Self::Store(_) | Self::ShutDown => "InternalError",
            Self::Service { code, .. } => code,
        }
    }
}

impl EngineError {
    /// A refusal that says "not now" rather than "no": the service
    /// throttled the call, failed inside (5xx) or did not answer. Trying the
    /// same call again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Service { code, .. } => is_transient_code(code),
            Self::Store(_) => true,
            _ => false,
        }
    }

    /// The service throttled the call (its rate limit), as opposed to
    /// failing it.
    pub fn is_throttle(&self) -> bool {
        matches!(self, Self::Service { code, .. } if is_throttle_code(code))
    }
}

/// The error codes AWS services answer when a call is throttled.
pub fn is_throttle_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
    )
}

/// Throttles, the services' internal errors (5xx) and no answer at all
/// (`Unreachable`, a lost or timed-out response): worth another try.
pub fn is_transient_code(code: &str) -> bool {
    is_throttle_code(code)
        || matches!(
            code,
            "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "InternalFailure"
                | "InternalServerError"
                | "InternalError"
                | "InternalServerException"
                | "Unreachable"
        )
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        Self::Store(std::sync::Arc::new(err))
    }
}

#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Starts an execution. A name already used by this state machine is
    /// refused with `ExecutionAlreadyExists`, as Step Functions does;
    /// without a name one is generated.
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: &Value,
    ) -> Result<StartedExecution, EngineError>;
    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), EngineError>;
    async fn send_task_failure(
        &self,
        token: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError>;
    async fn send_task_heartbeat(&self, token: &str) -> Result<(), EngineError>;
    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError>;
    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, EngineError>;
    async fn get_execution_history(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<HistoryEvent>, EngineError>;
}

/// The name an execution starts with: `name`, checked, or a new UUID.
pub(crate) fn execution_name(name: Option<&str>) -> Result<String, EngineError> {
    match name {
        Some(name) => {
            validate_execution_name(name)?;
            Ok(name.to_owned())
        }
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

/// Checks an execution name as Step Functions does: 1-80 characters, no
/// white space, wildcards, brackets, control characters or `"#%\^|~`$&,;:/`.
pub fn validate_execution_name(name: &str) -> Result<(), EngineError> {
    const FORBIDDEN: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";
    let ok = !name.is_empty()
        && name.chars().count() <= 80
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidName(format!(
            "{name:?}: 1-80 characters without spaces, wildcards, brackets or {FORBIDDEN}"
        )))
    }
}
