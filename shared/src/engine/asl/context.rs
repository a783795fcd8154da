//! The context object (`$$`): what an execution knows about itself.
//!
//! It holds the execution input, so building it costs a copy; most payloads never read `$$`,
//! so it is built lazily, at most once per evaluation, and only when a `$$` path asks for it.

use super::path::{Path, Root, Segment, Selector};
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

impl ContextParts<'_> {
    /// `$$.<group>.<name>` for the fields a task reads most (`$$.Task.Token`,
    /// the execution's and state's names, …), without building the whole
    /// object; `None` for any other field.
    fn scalar(&self, group: &str, name: &str) -> Option<Value> {
        let text = |s: &str| Some(Value::from(s));
        match (group, name) {
            ("Task", "Token") => self.task_token.and_then(text),
            ("Execution", "Id") => text(self.execution_id),
            ("Execution", "Name") => text(self.execution_name),
            ("StateMachine", "Id") => text(self.state_machine_id),
            ("StateMachine", "Name") => text(self.state_machine_name),
            ("State", "Name") => text(self.state_name),
            _ => None,
        }
    }
}

/// A context object built on first use.
pub struct ContextObject<'a> {
    parts: Option<ContextParts<'a>>,
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
            parts: None,
            value: OnceCell::from(value),
        }
    }

    /// A context object built from `parts` when first read.
    pub fn lazy(parts: ContextParts<'a>) -> Self {
        ContextObject {
            parts: Some(parts),
            value: OnceCell::new(),
        }
    }

    /// The context object's value.
    pub fn get(&self) -> &Value {
        self.value.get_or_init(|| match &self.parts {
            Some(parts) => parts.to_value(),
            None => Value::Null,
        })
    }

    /// Evaluates `path` against `input` or, for `$$` paths, this context object.
    pub fn select(&self, path: &Path, input: &Value) -> Option<Value> {
        match path.root() {
            Root::Input => path.select(input, None),
            Root::Context => {
                let scalar = match (&self.parts, path.segments()) {
                    (
                        Some(parts),
                        [Segment::Child(Selector::Name(group)), Segment::Child(Selector::Name(name))],
                    ) if self.value.get().is_none() => parts.scalar(group, name),
                    _ => None,
                };
                scalar.or_else(|| path.select(input, Some(self.get())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The parts of state "S" of execution "run-1" of "sm", with a task token.
    fn parts(input: &Value) -> ContextParts<'_> {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        ContextParts {
            execution_id: "arn:exec",
            execution_name: "run-1",
            execution_input: input,
            start_time: t,
            state_machine_id: "arn:sm",
            state_machine_name: "sm",
            state_name: "S",
            entered_time: t,
            retry_count: 0,
            task_token: Some("tok"),
            map_item: None,
        }
    }

    #[test]
    fn builds_the_aws_shape() {
        let input = json!({"k": 1});
        let item = json!("v");
        let parts = ContextParts {
            retry_count: 2,
            map_item: Some((3, &item)),
            ..parts(&input)
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

    #[test]
    fn reads_a_task_token_without_building_the_object() {
        let input = json!({"k": 1});
        let parts = parts(&input);
        let ctx = ContextObject::lazy(parts);
        let select = |p: &str| ctx.select(&Path::parse(p).unwrap(), &Value::Null);
        assert_eq!(select("$$.Task.Token"), Some(json!("tok")));
        assert_eq!(select("$$.Execution.Name"), Some(json!("run-1")));
        assert!(ctx.value.get().is_none(), "built the whole object");
        assert_eq!(select("$$.Execution.Input.k"), Some(json!(1)));
        assert_eq!(select("$$.Map.Item.Index"), None);
        let without_token = ContextObject::lazy(ContextParts {
            task_token: None,
            ..parts
        });
        let token = Path::parse("$$.Task.Token").unwrap();
        assert_eq!(without_token.select(&token, &Value::Null), None);
    }
}
