//! Payload templates: `Parameters`, `ItemSelector` and `ResultSelector`.
//!
//! A template is JSON in which a key ending in `.$` takes its value from a path or an intrinsic
//! call, evaluated against the effective input (`$`) and the context object (`$$`). Templates are
//! parsed once with the definition; the parts without any `.$` key are kept as plain JSON so
//! evaluating them is a clone.

use super::context::ContextObject;
use super::error::StatesError;
use super::intrinsics::{Call, IntrinsicSyntaxError};
use super::path::{Path, PathSyntaxError};
use serde_json::{Map, Value};

/// A dynamic value: a path or an intrinsic call.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `$.…` or `$$.…`
    Path(Path),
    /// `States.…(…)`
    Call(Call),
}

/// Why the value of a `.$` key is not an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprSyntaxError {
    #[error(transparent)]
    Path(#[from] PathSyntaxError),
    #[error(transparent)]
    Call(#[from] IntrinsicSyntaxError),
    #[error("{0:?} is neither a path (starting with '$') nor an intrinsic function call")]
    Neither(String),
}

impl Expr {
    /// Parses the value of a `.$` key (or of `ErrorPath`/`CausePath`).
    pub fn parse(text: &str) -> Result<Expr, ExprSyntaxError> {
        if text.starts_with('$') {
            Ok(Expr::Path(Path::parse(text)?))
        } else if Call::looks_like_call(text) {
            Ok(Expr::Call(Call::parse(text)?))
        } else {
            Err(ExprSyntaxError::Neither(text.to_owned()))
        }
    }

    /// Evaluates the expression; `field` names the key for the error message.
    pub fn eval(
        &self,
        input: &Value,
        context: &ContextObject<'_>,
        field: &str,
    ) -> Result<Value, StatesError> {
        match self {
            Expr::Path(path) => context.select(path, input).ok_or_else(|| {
                StatesError::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
                    serde_json::to_string(input).unwrap_or_default()
                ))
            }),
            Expr::Call(call) => call.eval(input, context),
        }
    }
}

/// A parsed payload template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Node);

#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// A subtree without `.$` keys.
    Static(Value),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// The value of a `.$` key; the string is the key as written, for error messages.
    Dynamic(String, Expr),
}

impl Template {
    /// Parses a template, collecting every malformed `.$` value (each message names its key).
    pub fn parse(value: &Value) -> Result<Template, Vec<String>> {
        let mut errors = Vec::new();
        let node = parse_node(value, &mut errors);
        if errors.is_empty() {
            Ok(Template(node))
        } else {
            Err(errors)
        }
    }

    /// Evaluates the template against `input` and `context`.
    pub fn eval(&self, input: &Value, context: &ContextObject<'_>) -> Result<Value, StatesError> {
        eval_node(&self.0, input, context)
    }
}

fn parse_node(value: &Value, errors: &mut Vec<String>) -> Node {
    match value {
        Value::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            for (key, v) in map {
                if let Some(name) = key.strip_suffix(".$") {
                    let node = match v {
                        Value::String(text) => match Expr::parse(text) {
                            Ok(expr) => Node::Dynamic(key.clone(), expr),
                            Err(e) => {
                                errors.push(format!("field {key:?}: {e}"));
                                Node::Static(Value::Null)
                            }
                        },
                        _ => {
                            errors.push(format!(
                                "field {key:?}: the value of a key ending in \".$\" must be a string"
                            ));
                            Node::Static(Value::Null)
                        }
                    };
                    fields.push((name.to_owned(), node));
                } else {
                    fields.push((key.clone(), parse_node(v, errors)));
                }
            }
            if fields.iter().all(|(_, n)| matches!(n, Node::Static(_))) {
                Node::Static(value.clone())
            } else {
                Node::Object(fields)
            }
        }
        Value::Array(items) => {
            let nodes: Vec<Node> = items.iter().map(|v| parse_node(v, errors)).collect();
            if nodes.iter().all(|n| matches!(n, Node::Static(_))) {
                Node::Static(value.clone())
            } else {
                Node::Array(nodes)
            }
        }
        other => Node::Static(other.clone()),
    }
}

fn eval_node(
    node: &Node,
    input: &Value,
    context: &ContextObject<'_>,
) -> Result<Value, StatesError> {
    Ok(match node {
        Node::Static(v) => v.clone(),
        Node::Dynamic(key, expr) => expr.eval(input, context, key)?,
        Node::Object(fields) => {
            let mut map = Map::new();
            for (key, child) in fields {
                map.insert(key.clone(), eval_node(child, input, context)?);
            }
            Value::Object(map)
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|n| eval_node(n, input, context))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ContextObject<'static> {
        ContextObject::fixed(json!({"Task": {"Token": "tok"}, "Execution": {"Id": "e1"}}))
    }

    #[test]
    fn evaluates_nested_templates() {
        let t = Template::parse(&json!({
            "static": {"a": [1, 2]},
            "name.$": "$.name",
            "token.$": "$$.Task.Token",
            "greeting.$": "States.Format('hi {}', $.name)",
            "nested": {"list": [{"id.$": "$.id"}, "plain"], "keep": true},
            "whole.$": "$"
        }))
        .unwrap();
        let input = json!({"name": "Riley", "id": 7});
        assert_eq!(
            t.eval(&input, &ctx()).unwrap(),
            json!({
                "static": {"a": [1, 2]},
                "name": "Riley",
                "token": "tok",
                "greeting": "hi Riley",
                "nested": {"list": [{"id": 7}, "plain"], "keep": true},
                "whole": input
            })
        );
    }

    #[test]
    fn static_templates_stay_plain() {
        let v = json!({"a": {"b": [1, {"c": "d"}]}});
        let t = Template::parse(&v).unwrap();
        assert_eq!(t, Template(Node::Static(v.clone())));
        assert_eq!(t.eval(&Value::Null, &ctx()).unwrap(), v);
    }

    #[test]
    fn missing_path_is_a_runtime_error_naming_the_field() {
        let t = Template::parse(&json!({"JobName.$": "$.JobName"})).unwrap();
        let err = t.eval(&json!({}), &ctx()).unwrap_err();
        assert_eq!(err.name(), Some("States.Runtime"));
        assert_eq!(
            err.cause.as_deref(),
            Some("The JSONPath '$.JobName' specified for the field 'JobName.$' could not be found in the input '{}'")
        );
    }

    #[test]
    fn collects_every_malformed_value() {
        let errors = Template::parse(&json!({
            "a.$": "not a path",
            "b": {"c.$": 3},
            "d.$": "States.Nope()",
            "e.$": "$.ok"
        }))
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("\"a.$\"")));
        assert!(errors.iter().any(|e| e.contains("\"c.$\"")));
    }
}
