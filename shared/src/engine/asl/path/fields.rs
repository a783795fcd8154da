//! The path-valued state fields and what each does with a missing value:
//! `InputPath`/`OutputPath` select (absent → `$`, `null` → `{}`, no match → `States.Runtime`),
//! `ResultPath` writes a result into the state input (absent → `$`, `null` → discard the result).

use super::{Path, PathSyntaxError, Root, Segment, Selector};
use crate::engine::asl::context::ContextObject;
use crate::engine::asl::error::{names, StatesError};
use serde_json::{Map, Value};

/// Why a path field's JSON is not a path that field can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathFieldError {
    #[error("must be a string or null")]
    NotAString,
    #[error(transparent)]
    Syntax(#[from] PathSyntaxError),
    #[error("{0:?} cannot write to the context object")]
    WritesContext(String),
    #[error("{0:?} cannot use a negative index")]
    NegativeIndex(String),
}

/// A path that identifies at most one node: only field names and single indices.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferencePath(Path);

impl ReferencePath {
    /// Parses and checks that the path is a reference path.
    pub fn parse(text: &str) -> Result<ReferencePath, PathSyntaxError> {
        let path = Path::parse(text)?;
        if !path.is_definite() {
            return Err(PathSyntaxError {
                path: text.to_owned(),
                message: "a reference path may only use field names and single indices".into(),
            });
        }
        Ok(ReferencePath(path))
    }

    /// The underlying path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The single node, if present.
    pub fn select(&self, input: &Value, context: &ContextObject<'_>) -> Option<Value> {
        context.select(&self.0, input)
    }
}

/// `InputPath` or `OutputPath`.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum FieldPath {
    /// Absent: the whole value (`$`).
    #[default]
    Whole,
    /// `null`: an empty object.
    Empty,
    /// A path to select.
    Select(Path),
}

impl FieldPath {
    /// Reads the field's JSON (`None` when the field is absent).
    pub fn from_json(value: Option<&Value>) -> Result<FieldPath, PathFieldError> {
        match value {
            None => Ok(FieldPath::Whole),
            Some(Value::Null) => Ok(FieldPath::Empty),
            Some(Value::String(s)) => Ok(FieldPath::Select(Path::parse(s)?)),
            Some(_) => Err(PathFieldError::NotAString),
        }
    }

    /// Applies the selection; a definite path that matches nothing is a `States.Runtime` error.
    pub fn apply(&self, value: Value, context: &ContextObject<'_>) -> Result<Value, StatesError> {
        match self {
            FieldPath::Whole => Ok(value),
            FieldPath::Empty => Ok(Value::Object(Map::new())),
            FieldPath::Select(path) => context.select(path, &value).ok_or_else(|| {
                StatesError::runtime(format!(
                    "Invalid path '{path}' : No results for path: {}",
                    path.normalized()
                ))
            }),
        }
    }
}

/// `ResultPath`.
#[derive(Clone, Debug, PartialEq)]
pub enum ResultPath {
    /// `null`: keep the input, discard the result.
    Discard,
    /// Where to put the result (`$` replaces the input).
    At(ReferencePath),
}

impl Default for ResultPath {
    fn default() -> Self {
        ResultPath::At(ReferencePath(Path {
            text: "$".into(),
            root: Root::Input,
            segments: Vec::new(),
            definite: true,
        }))
    }
}

impl ResultPath {
    /// Reads the field's JSON (`None` when the field is absent).
    pub fn from_json(value: Option<&Value>) -> Result<ResultPath, PathFieldError> {
        let text = match value {
            None => return Ok(ResultPath::default()),
            Some(Value::Null) => return Ok(ResultPath::Discard),
            Some(Value::String(s)) => s,
            Some(_) => return Err(PathFieldError::NotAString),
        };
        let path = ReferencePath::parse(text)?;
        if path.0.root() == Root::Context {
            return Err(PathFieldError::WritesContext(text.clone()));
        }
        if path
            .0
            .segments()
            .iter()
            .any(|s| matches!(s, Segment::Child(Selector::Index(i)) if *i < 0))
        {
            return Err(PathFieldError::NegativeIndex(text.clone()));
        }
        Ok(ResultPath::At(path))
    }

    /// Combines the state's input with its result.
    pub fn apply(&self, input: Value, result: Value) -> Result<Value, StatesError> {
        let path = match self {
            ResultPath::Discard => return Ok(input),
            ResultPath::At(path) => path,
        };
        let mut output = input;
        if set(&mut output, path.0.segments(), result).is_err() {
            return Err(StatesError::new(
                names::RESULT_PATH_MATCH_FAILURE,
                format!(
                    "Unable to apply ReferencePath {} to input {}",
                    path.0,
                    serde_json::to_string(&output).unwrap_or_default()
                ),
            ));
        }
        Ok(output)
    }
}

/// Writes `result` at `segments` under `target`, creating missing intermediate objects.
/// Fails (leaving `target` unchanged) when a step meets a non-object, or an index out of range.
fn set(target: &mut Value, segments: &[Segment], result: Value) -> Result<(), ()> {
    if !can_set(target, segments) {
        return Err(());
    }
    let mut slot = target;
    for segment in segments {
        slot = match segment {
            Segment::Child(Selector::Name(n)) => slot
                .as_object_mut()
                .ok_or(())?
                .entry(n.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Segment::Child(Selector::Index(i)) => slot
                .as_array_mut()
                .ok_or(())?
                .get_mut(*i as usize)
                .ok_or(())?,
            _ => return Err(()),
        };
    }
    *slot = result;
    Ok(())
}

fn can_set(mut node: &Value, segments: &[Segment]) -> bool {
    for segment in segments {
        let next = match (segment, node) {
            (Segment::Child(Selector::Name(n)), Value::Object(map)) => map.get(n),
            (Segment::Child(Selector::Index(i)), Value::Array(items)) => {
                match items.get(*i as usize) {
                    Some(v) => Some(v),
                    None => return false,
                }
            }
            _ => return false,
        };
        match next {
            Some(v) => node = v,
            None => return true, // created from here on
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rp(text: &str) -> ResultPath {
        ResultPath::from_json(Some(&json!(text))).unwrap()
    }

    #[test]
    fn result_path_merges() {
        let input = json!({"a": 1});
        assert_eq!(rp("$").apply(input.clone(), json!(5)).unwrap(), json!(5));
        assert_eq!(
            rp("$.r").apply(input.clone(), json!(5)).unwrap(),
            json!({"a": 1, "r": 5})
        );
        assert_eq!(
            rp("$.x.y.z").apply(input.clone(), json!(5)).unwrap(),
            json!({"a": 1, "x": {"y": {"z": 5}}})
        );
        assert_eq!(
            ResultPath::Discard.apply(input.clone(), json!(5)).unwrap(),
            input
        );
        assert_eq!(
            ResultPath::from_json(None)
                .unwrap()
                .apply(input, json!(7))
                .unwrap(),
            json!(7)
        );
        assert_eq!(
            rp("$.l[1]").apply(json!({"l": [0, 0]}), json!(9)).unwrap(),
            json!({"l": [0, 9]})
        );
    }

    #[test]
    fn result_path_failures() {
        let err = rp("$.a.b")
            .apply(json!({"a": "str"}), json!(1))
            .unwrap_err();
        assert_eq!(err.name(), Some("States.ResultPathMatchFailure"));
        assert_eq!(
            err.cause.as_deref(),
            Some("Unable to apply ReferencePath $.a.b to input {\"a\":\"str\"}")
        );
        assert!(rp("$.x").apply(json!("foo"), json!(1)).is_err());
        assert!(rp("$.l[5]").apply(json!({"l": []}), json!(1)).is_err());
        assert!(ResultPath::from_json(Some(&json!("$.a[*]"))).is_err());
        assert!(ResultPath::from_json(Some(&json!("$$.a"))).is_err());
        assert!(ResultPath::from_json(Some(&json!("$.a[-1]"))).is_err());
        assert!(ResultPath::from_json(Some(&json!(3))).is_err());
    }

    #[test]
    fn field_paths() {
        let ctx = ContextObject::fixed(json!({"Execution": {"Id": "x"}}));
        let input = json!({"a": {"b": 1}});
        let fp = |v: Value| FieldPath::from_json(Some(&v)).unwrap();
        assert_eq!(FieldPath::Whole.apply(input.clone(), &ctx).unwrap(), input);
        assert_eq!(
            fp(Value::Null).apply(input.clone(), &ctx).unwrap(),
            json!({})
        );
        assert_eq!(
            fp(json!("$.a")).apply(input.clone(), &ctx).unwrap(),
            json!({"b": 1})
        );
        assert_eq!(
            fp(json!("$$.Execution.Id"))
                .apply(input.clone(), &ctx)
                .unwrap(),
            json!("x")
        );
        let err = fp(json!("$.nope")).apply(input, &ctx).unwrap_err();
        assert_eq!(err.name(), Some("States.Runtime"));
        assert_eq!(
            err.cause.as_deref(),
            Some("Invalid path '$.nope' : No results for path: $['nope']")
        );
        assert!(FieldPath::from_json(Some(&json!("nope"))).is_err());
    }
}
