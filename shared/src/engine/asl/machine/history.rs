//! History events, named and shaped as Step Functions names and shapes them.
//!
//! `details` holds the fields of the matching `…EventDetails` structure of the Step Functions
//! API (`name`, `input`, `output`, `error`, `cause`, `resourceType`, …), with `input`/`output`
//! as JSON text like AWS returns them; [`HistoryEvent::details_key`] names that structure.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryEvent {
    /// 1, 2, 3, … within the execution.
    pub id: i64,
    /// The event this one follows from (0 for the first).
    pub previous_event_id: i64,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// `ExecutionStarted`, `TaskStateEntered`, `TaskScheduled`, …
    pub event_type: String,
    /// The event's details (see the module documentation).
    pub details: Value,
}

impl HistoryEvent {
    /// The name of the Step Functions details structure for this event type, e.g.
    /// `stateEnteredEventDetails` for `TaskStateEntered`, or `None` for events without details.
    pub fn details_key(&self) -> Option<&'static str> {
        let t = self.event_type.as_str();
        Some(match t {
            _ if t.ends_with("StateEntered") => "stateEnteredEventDetails",
            _ if t.ends_with("StateExited") => "stateExitedEventDetails",
            "ExecutionStarted" => "executionStartedEventDetails",
            "ExecutionSucceeded" => "executionSucceededEventDetails",
            "ExecutionFailed" => "executionFailedEventDetails",
            "ExecutionAborted" => "executionAbortedEventDetails",
            "ExecutionTimedOut" => "executionTimedOutEventDetails",
            "TaskScheduled" => "taskScheduledEventDetails",
            "TaskStarted" => "taskStartedEventDetails",
            "TaskSubmitted" => "taskSubmittedEventDetails",
            "TaskSucceeded" => "taskSucceededEventDetails",
            "TaskFailed" => "taskFailedEventDetails",
            "TaskTimedOut" => "taskTimedOutEventDetails",
            "MapStateStarted" => "mapStateStartedEventDetails",
            "MapIterationStarted" => "mapIterationStartedEventDetails",
            "MapIterationSucceeded" => "mapIterationSucceededEventDetails",
            "MapIterationFailed" => "mapIterationFailedEventDetails",
            "MapIterationAborted" => "mapIterationAbortedEventDetails",
            _ => return None,
        })
    }
}

/// JSON text of a value, as history details carry it.
pub(super) fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Builds a details object from `(key, value)` pairs, leaving out `null`s.
pub(super) fn details<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        if !v.is_null() {
            map.insert(k.to_owned(), v);
        }
    }
    Value::Object(map)
}
