//! The context object (`$$`): what an execution knows about itself.
//!
//! It holds the execution input, so building it costs a copy; most payloads never read `$$`,
//! so it is built lazily, at most once per evaluation, and only when a `$$` path asks for it.

use super::path::{Path, Root};
use super::timestamp::format as format_time;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::cell::OnceCell;
use std::fmt;

/// The parts of the context object, borrowed from the interpreter's state.
#[derive(Debug, Clone, Copy)]
pub struct ContextParts<'a> {
    /// `$$.Execution.Id`
    pub execution_id: &'a str,
    /// `$$.Execution.Name`
    pub execution_name: &'a str,
    /// `$$.Execution.Input`
    pub execution_input: &'a Value,
    /// `$$.Execution.StartTime`
    pub start_time: DateTime<Utc>,
    /// `$$.StateMachine.Id`
    pub state_machine_id: &'a str,
    /// `$$.StateMachine.Name`
    pub state_machine_name: &'a str,
    /// `$$.State.Name`
    pub state_name: &'a str,
    /// `$$.State.EnteredTime`
    pub entered_time: DateTime<Utc>,
    /// `$$.State.RetryCount`
    pub retry_count: u32,
    /// `$$.Task.Token`, in a `.waitForTaskToken` task's `Parameters`.
    pub task_token: Option<&'a str>,
    /// `$$.Map.Item.Index` / `.Value`, in a Map state's `ItemSelector`.
    pub map_item: Option<(usize, &'a Value)>,
}

impl ContextParts<'_> {
    /// The context object as JSON.
    pub fn to_value(&self) -> Value {
        let mut ctx = Map::new();
        ctx.insert(
            "Execution".into(),
            json!({
                "Id": self.execution_id,
                "Name": self.execution_name,
                "Input": self.execution_input,
                "StartTime": format_time(self.start_time),
                "RedriveCount": 0,
            }),
        );
        ctx.insert(
            "StateMachine".into(),
            json!({ "Id": self.state_machine_id, "Name": self.state_machine_name }),
        );
        ctx.insert(
            "State".into(),
            json!({
                "Name": self.state_name,
                "EnteredTime": format_time(self.entered_time),
                "RetryCount": self.retry_count,
            }),
        );
        if let Some(token) = self.task_token {
            ctx.insert("Task".into(), json!({ "Token": token }));
        }
        if let Some((index, value)) = self.map_item {
            ctx.insert(
                "Map".into(),
                json!({ "Item": { "Index": index, "Value": value } }),
            );
        }
        Value::Object(ctx)
    }
}

/// A context object built on first use.
pub struct ContextObject<'a> {
    build: Option<Box<dyn Fn() -> Value + 'a>>,
    value: OnceCell<Value>,
}

impl fmt::Debug for ContextObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextObject")
            .field("value", &self.value.get())
            .finish_non_exhaustive()
    }
}

impl<'a> ContextObject<'a> {
    /// A context object that is already built.
    pub fn fixed(value: Value) -> Self {
        ContextObject {
            build: None,
            value: OnceCell::from(value),
        }
    }

    /// A context object built from `parts` when first read.
    pub fn lazy(parts: ContextParts<'a>) -> Self {
        ContextObject {
            build: Some(Box::new(move || parts.to_value())),
            value: OnceCell::new(),
        }
    }

    /// The context object's value.
    pub fn get(&self) -> &Value {
        self.value.get_or_init(|| match &self.build {
            Some(build) => build(),
            None => Value::Null,
        })
    }

    /// Evaluates `path` against `input` or, for `$$` paths, this context object.
    pub fn select(&self, path: &Path, input: &Value) -> Option<Value> {
        match path.root() {
            Root::Input => path.select(input, None),
            Root::Context => path.select(input, Some(self.get())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn builds_the_aws_shape() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let input = json!({"k": 1});
        let item = json!("v");
        let parts = ContextParts {
            execution_id: "arn:exec",
            execution_name: "run-1",
            execution_input: &input,
            start_time: t,
            state_machine_id: "arn:sm",
            state_machine_name: "sm",
            state_name: "S",
            entered_time: t,
            retry_count: 2,
            task_token: Some("tok"),
            map_item: Some((3, &item)),
        };
        let ctx = ContextObject::lazy(parts);
        let v = ctx.get();
        assert_eq!(v["Execution"]["StartTime"], "2024-01-02T03:04:05.000Z");
        assert_eq!(v["Execution"]["Input"], input);
        assert_eq!(v["State"]["RetryCount"], 2);
        assert_eq!(v["Task"]["Token"], "tok");
        assert_eq!(v["Map"]["Item"], json!({"Index": 3, "Value": "v"}));
        let p = Path::parse("$$.StateMachine.Name").unwrap();
        assert_eq!(ctx.select(&p, &Value::Null), Some(json!("sm")));
    }
}
