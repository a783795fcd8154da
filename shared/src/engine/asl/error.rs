//! Run-time errors as Step Functions names them.
//!
//! Every failure a state can report is an error *name* plus an optional *cause*; `Retry` and
//! `Catch` match on the name, so the names (and the wildcard rules of `States.ALL` and
//! `States.TaskFailed`) must be exactly those of AWS for a definition to behave the same in both
//! engines.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// The predefined error names (`States.*`).
pub mod names {
    /// Matches every error except `States.Runtime` and `States.DataLimitExceeded`.
    pub const ALL: &str = "States.ALL";
    /// Unrecoverable: bad input/output processing, unsupported resources. Never retried or caught.
    pub const RUNTIME: &str = "States.Runtime";
    /// A payload exceeded a quota; never matched by `States.ALL`.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// A task ran longer than `TimeoutSeconds` (or the execution did).
    pub const TIMEOUT: &str = "States.Timeout";
    /// In `ErrorEquals`: a task that did not heartbeat within `HeartbeatSeconds`
    /// (reported as `States.Timeout`).
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// In `ErrorEquals`: any error except the timeouts.
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A Choice state matched no rule and has no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// An intrinsic function failed.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    /// `ResultPath` cannot be applied to the state's input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// A Parallel branch failed (documented name; the branch's own error is what is reported).
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
}

/// An error reported by a state: a name (absent when a worker failed a task without one) and a
/// cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct StatesError {
    /// The error name, e.g. `States.Timeout` or a worker's own `Provider.Unavailable`.
    pub error: Option<String>,
    /// Human-readable detail.
    pub cause: Option<String>,
    /// A heartbeat timeout: AWS reports it as `States.Timeout`, yet
    /// `ErrorEquals: ["States.HeartbeatTimeout"]` catches it too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub heartbeat: bool,
}

impl fmt::Display for StatesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error.as_deref().unwrap_or("(no error name)"))?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl StatesError {
    /// An error with a name and a cause.
    pub fn new(error: &str, cause: impl Into<String>) -> Self {
        StatesError {
            error: Some(error.to_owned()),
            cause: Some(cause.into()),
            heartbeat: false,
        }
    }

    /// A `States.Runtime` error.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }

    /// A task's heartbeat timeout, named as AWS reports it.
    pub fn heartbeat_timeout(cause: impl Into<String>) -> Self {
        StatesError {
            heartbeat: true,
            ..Self::new(names::TIMEOUT, cause)
        }
    }

    /// A `States.IntrinsicFailure` error.
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, cause)
    }

    /// The error name, if any.
    pub fn name(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether this error may be retried or caught at all (`States.Runtime` may not).
    pub fn is_recoverable(&self) -> bool {
        self.name() != Some(names::RUNTIME)
    }

    /// The error output a `Catch` hands to `ResultPath`: `{"Error": …, "Cause": …}`.
    pub fn to_catch_output(&self) -> Value {
        json!({ "Error": self.error, "Cause": self.cause })
    }

    /// Prefixes the cause the way AWS reports input/output processing failures.
    pub(crate) fn in_state(mut self, state: &str, entered_event_id: i64) -> Self {
        let detail = self.cause.take().unwrap_or_default();
        self.cause = Some(format!(
            "An error occurred while executing the state '{state}' (entered at the event id #{entered_event_id}). {detail}"
        ));
        self
    }
}

/// Whether one `ErrorEquals` entry matches a reported error, following AWS's rules:
/// `States.Runtime` is never matched; `States.ALL` matches everything else except
/// `States.DataLimitExceeded`; `States.TaskFailed` matches everything except the timeouts;
/// `States.Timeout` also matches `States.HeartbeatTimeout`; any other name matches itself.
pub fn error_matches(pattern: &str, error: Option<&str>) -> bool {
    if error == Some(names::RUNTIME) {
        return false;
    }
    match pattern {
        names::ALL => error != Some(names::DATA_LIMIT_EXCEEDED),
        names::TASK_FAILED => !matches!(
            error,
            Some(names::TIMEOUT | names::HEARTBEAT_TIMEOUT | names::DATA_LIMIT_EXCEEDED)
        ),
        names::TIMEOUT => matches!(error, Some(names::TIMEOUT | names::HEARTBEAT_TIMEOUT)),
        other => error == Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_aws() {
        assert!(error_matches("States.ALL", Some("Foo")));
        assert!(error_matches("States.ALL", None));
        assert!(error_matches("States.ALL", Some("States.Timeout")));
        assert!(!error_matches("States.ALL", Some("States.Runtime")));
        assert!(!error_matches(
            "States.ALL",
            Some("States.DataLimitExceeded")
        ));
        assert!(error_matches("States.TaskFailed", Some("Foo")));
        assert!(!error_matches("States.TaskFailed", Some("States.Timeout")));
        assert!(!error_matches(
            "States.TaskFailed",
            Some("States.HeartbeatTimeout")
        ));
        assert!(error_matches(
            "States.Timeout",
            Some("States.HeartbeatTimeout")
        ));
        assert!(!error_matches("States.Runtime", Some("States.Runtime")));
        assert!(error_matches("Foo", Some("Foo")));
        assert!(!error_matches("Foo", Some("Bar")));
        assert!(!error_matches("Foo", None));
    }

    #[test]
    fn catch_output_and_display() {
        let e = StatesError::new("X", "boom");
        assert_eq!(e.to_catch_output(), json!({"Error": "X", "Cause": "boom"}));
        assert_eq!(e.to_string(), "X: boom");
        let e = StatesError::runtime("bad").in_state("S", 3);
        assert_eq!(
            e.cause.as_deref(),
            Some(
                "An error occurred while executing the state 'S' (entered at the event id #3). bad"
            )
        );
        assert!(!e.is_recoverable());
    }
}
