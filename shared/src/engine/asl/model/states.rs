//! From JSON to the model: one state of each type, with the rules that concern a single state.

use super::diagnostics::{state_location, Fields};
use super::parse::Builder;
use super::retry::{parse_catch, parse_retry};
use super::{
    ChoiceState, FailState, FailText, PassState, Resource, ResultHandling, Seconds, State,
    StateKind, SucceedState, TaskState, Transition, WaitFor, WaitState,
};
use crate::engine::asl::choice::parse_choices;
use crate::engine::asl::path::{FieldPath, ReferencePath, ResultPath};
use crate::engine::asl::payload::{Expr, Template};
use crate::engine::asl::timestamp;
use serde_json::Value;

const COMMON: &[&str] = &["Type", "Comment"];
const PASS: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "Result",
    "ResultPath",
    "Next",
    "End",
];
const TASK: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Resource",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "TimeoutSecondsPath",
    "HeartbeatSeconds",
    "HeartbeatSecondsPath",
    "Next",
    "End",
];
const CHOICE: &[&str] = &["InputPath", "OutputPath", "Choices", "Default"];
const WAIT: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Seconds",
    "SecondsPath",
    "Timestamp",
    "TimestampPath",
    "Next",
    "End",
];
const SUCCEED: &[&str] = &["InputPath", "OutputPath"];
const FAIL: &[&str] = &["Error", "ErrorPath", "Cause", "CausePath"];
const PARALLEL: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Branches",
    "Retry",
    "Catch",
    "Next",
    "End",
];
const MAP: &[&str] = &[
    "InputPath",
    "OutputPath",
    "ItemsPath",
    "ItemSelector",
    "Parameters",
    "ItemProcessor",
    "Iterator",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "ResultSelector",
    "ResultPath",
    "Retry",
    "Catch",
    "Next",
    "End",
];

/// The most seconds any ASL duration may have.
const MAX_SECONDS: u64 = 99_999_999;

impl Builder {
    /// Parses one state; `None` when it is too broken to take part in the graph checks.
    pub(super) fn state(&mut self, name: &str, value: &Value, prefix: &str) -> Option<State> {
        let location = state_location(prefix, name);
        let Some(obj) = value.as_object() else {
            self.diag.push(&location, "a state must be a JSON object");
            return None;
        };
        let f = Fields {
            obj,
            location: &location,
        };
        let before = self.diag_len();
        let type_name = match f.get("Type") {
            None => {
                self.diag.push(&location, "Type is missing");
                return None;
            }
            Some(Value::String(t)) => t.as_str(),
            Some(other) => {
                self.diag
                    .push(&location, format!("Type must be a string, got {other}"));
                return None;
            }
        };
        let (allowed, kind): (&[&str], Option<StateKind>) = match type_name {
            "Pass" => (PASS, self.pass(&f).map(StateKind::Pass)),
            "Task" => (TASK, self.task(&f).map(StateKind::Task)),
            "Choice" => (CHOICE, self.choice(&f).map(StateKind::Choice)),
            "Wait" => (WAIT, self.wait(&f).map(StateKind::Wait)),
            "Succeed" => (
                SUCCEED,
                Some(StateKind::Succeed(SucceedState {
                    input_path: self.field_path(&f, "InputPath"),
                    output_path: self.field_path(&f, "OutputPath"),
                })),
            ),
            "Fail" => (FAIL, Some(StateKind::Fail(self.fail(&f)))),
            "Parallel" => (PARALLEL, self.parallel(&f).map(StateKind::Parallel)),
            "Map" => (MAP, self.map(&f).map(StateKind::Map)),
            other => {
                self.diag.push(
                    &location,
                    format!("unknown state Type {other:?} (expected Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"),
                );
                return None;
            }
        };
        if matches!(type_name, "Choice" | "Succeed" | "Fail") {
            for key in ["Next", "End"] {
                if f.has(key) {
                    self.diag
                        .push(&location, format!("a {type_name} state cannot have {key}"));
                }
            }
        }
        let allowed: Vec<&str> = COMMON
            .iter()
            .chain(allowed)
            .copied()
            .filter(|k| {
                !(matches!(type_name, "Choice" | "Succeed" | "Fail")
                    && matches!(*k, "Next" | "End"))
            })
            .collect();
        f.check_known(&allowed, &format!("a {type_name} state"), &mut self.diag);
        let comment = f.string("Comment", &mut self.diag).map(str::to_owned);
        if self.diag_len() > before {
            return None;
        }
        Some(State {
            name: name.to_owned(),
            comment,
            kind: kind?,
        })
    }

    fn diag_len(&self) -> usize {
        self.diag.len()
    }

    pub(super) fn field_path(&mut self, f: &Fields<'_>, key: &str) -> FieldPath {
        FieldPath::from_json(f.get(key)).unwrap_or_else(|e| {
            self.diag.push(f.location, format!("{key}: {e}"));
            FieldPath::Whole
        })
    }

    pub(super) fn result_path(&mut self, f: &Fields<'_>) -> ResultPath {
        ResultPath::from_json(f.get("ResultPath")).unwrap_or_else(|e| {
            self.diag.push(f.location, format!("ResultPath: {e}"));
            ResultPath::Discard
        })
    }

    pub(super) fn reference_path(&mut self, f: &Fields<'_>, key: &str) -> Option<ReferencePath> {
        let text = f.string(key, &mut self.diag)?;
        ReferencePath::parse(text)
            .map_err(|e| self.diag.push(f.location, format!("{key}: {e}")))
            .ok()
    }

    pub(super) fn template(&mut self, f: &Fields<'_>, key: &str) -> Option<Template> {
        let value = f.get(key)?;
        match Template::parse(value) {
            Ok(t) => Some(t),
            Err(errors) => {
                for e in errors {
                    self.diag.push(f.location, format!("{key}: {e}"));
                }
                None
            }
        }
    }

    /// `Next` xor `End: true`.
    pub(super) fn result_handling(&mut self, f: &Fields<'_>) -> ResultHandling {
        ResultHandling {
            result_selector: self.template(f, "ResultSelector"),
            result_path: self.result_path(f),
            output_path: self.field_path(f, "OutputPath"),
            retry: parse_retry(f.get("Retry"), f.location, &mut self.diag),
            catch: parse_catch(f.get("Catch"), f.location, &mut self.diag),
        }
    }

    pub(super) fn transition(&mut self, f: &Fields<'_>) -> Option<Transition> {
        let next = f.string("Next", &mut self.diag);
        let end = match f.get("End") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.diag.push(f.location, "End must be true or false");
                return None;
            }
        };
        match (next, end) {
            (Some(n), false) => Some(Transition::Next(n.to_owned())),
            (None, true) => Some(Transition::End),
            (Some(_), true) => {
                self.diag
                    .push(f.location, "the state has both Next and End");
                None
            }
            (None, false) => {
                if !f.has("Next") {
                    self.diag
                        .push(f.location, "the state has neither Next nor End: true");
                }
                None
            }
        }
    }

    /// `key` xor `key + "Path"`.
    pub(super) fn seconds(&mut self, f: &Fields<'_>, key: &str, min: u64) -> Option<Seconds> {
        let path_key = format!("{key}Path");
        if f.has(key) && f.has(&path_key) {
            self.diag.push(
                f.location,
                format!("the state has both {key} and {path_key}"),
            );
            return None;
        }
        if f.has(&path_key) {
            return self.reference_path(f, &path_key).map(Seconds::Path);
        }
        let n = f.integer(key, min, &mut self.diag)?;
        if n > MAX_SECONDS {
            self.diag
                .push(f.location, format!("{key} must be at most {MAX_SECONDS}"));
        }
        Some(Seconds::Fixed(n))
    }

    fn pass(&mut self, f: &Fields<'_>) -> Option<PassState> {
        Some(PassState {
            input_path: self.field_path(f, "InputPath"),
            parameters: self.template(f, "Parameters"),
            result: f.get("Result").cloned(),
            result_path: self.result_path(f),
            output_path: self.field_path(f, "OutputPath"),
            transition: self.transition(f)?,
        })
    }

    fn task(&mut self, f: &Fields<'_>) -> Option<TaskState> {
        let resource = f.string("Resource", &mut self.diag).map(Resource::from_arn);
        if !f.has("Resource") {
            self.diag.push(f.location, "Resource is missing");
        }
        let timeout = self.seconds(f, "TimeoutSeconds", 1);
        let heartbeat = self.seconds(f, "HeartbeatSeconds", 1);
        if let (Some(Seconds::Fixed(t)), Some(Seconds::Fixed(h))) = (&timeout, &heartbeat) {
            if h >= t {
                self.diag.push(
                    f.location,
                    "HeartbeatSeconds must be smaller than TimeoutSeconds",
                );
            }
        }
        Some(TaskState {
            input_path: self.field_path(f, "InputPath"),
            parameters: self.template(f, "Parameters"),
            handling: self.result_handling(f),
            timeout,
            heartbeat,
            transition: self.transition(f)?,
            resource: resource?,
        })
    }

    fn choice(&mut self, f: &Fields<'_>) -> Option<ChoiceState> {
        let mut errors = Vec::new();
        let choices = parse_choices(f.get("Choices"), &mut errors);
        for e in errors {
            self.diag.push(f.location, e);
        }
        Some(ChoiceState {
            input_path: self.field_path(f, "InputPath"),
            output_path: self.field_path(f, "OutputPath"),
            default: f.string("Default", &mut self.diag).map(str::to_owned),
            choices,
        })
    }

    fn wait(&mut self, f: &Fields<'_>) -> Option<WaitState> {
        let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        if given.len() != 1 {
            self.diag.push(
                f.location,
                format!(
                    "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp or TimestampPath (found {})",
                    if given.is_empty() { "none".to_owned() } else { given.join(", ") }
                ),
            );
            return None;
        }
        let wait = match given[0] {
            "Seconds" => WaitFor::Seconds(f.integer("Seconds", 0, &mut self.diag)?),
            "SecondsPath" => WaitFor::SecondsPath(self.reference_path(f, "SecondsPath")?),
            "TimestampPath" => WaitFor::TimestampPath(self.reference_path(f, "TimestampPath")?),
            _ => {
                let text = f.string("Timestamp", &mut self.diag)?;
                match timestamp::parse(text) {
                    Some(t) => WaitFor::Timestamp(t),
                    None => {
                        self.diag.push(
                            f.location,
                            format!("Timestamp {text:?} is not an RFC 3339 timestamp such as \"2016-03-14T01:59:00Z\""),
                        );
                        return None;
                    }
                }
            }
        };
        Some(WaitState {
            input_path: self.field_path(f, "InputPath"),
            output_path: self.field_path(f, "OutputPath"),
            wait,
            transition: self.transition(f)?,
        })
    }

    fn fail_text(&mut self, f: &Fields<'_>, key: &str) -> Option<FailText> {
        let path_key = format!("{key}Path");
        if f.has(key) && f.has(&path_key) {
            self.diag.push(
                f.location,
                format!("a Fail state cannot have both {key} and {path_key}"),
            );
            return None;
        }
        if let Some(text) = f.string(&path_key, &mut self.diag) {
            return Expr::parse(text)
                .map(FailText::Dynamic)
                .map_err(|e| self.diag.push(f.location, format!("{path_key}: {e}")))
                .ok();
        }
        f.string(key, &mut self.diag)
            .map(|s| FailText::Literal(s.to_owned()))
    }

    fn fail(&mut self, f: &Fields<'_>) -> FailState {
        FailState {
            error: self.fail_text(f, "Error"),
            cause: self.fail_text(f, "Cause"),
        }
    }
}
