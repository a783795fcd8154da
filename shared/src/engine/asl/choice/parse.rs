//! Reading `Choices` from JSON, collecting every mistake.

use super::{ChoiceRule, Kind, Op, Operand, Rule, Test, TypeTest};
use crate::engine::asl::path::Path;
use crate::engine::asl::timestamp;
use serde_json::{Map, Value};

/// The comparison operators, without their `Path` variants.
const COMPARISONS: &[(&str, Kind, Op)] = &[
    ("StringEquals", Kind::String, Op::Eq),
    ("StringLessThan", Kind::String, Op::Lt),
    ("StringGreaterThan", Kind::String, Op::Gt),
    ("StringLessThanEquals", Kind::String, Op::Le),
    ("StringGreaterThanEquals", Kind::String, Op::Ge),
    ("StringMatches", Kind::String, Op::Matches),
    ("NumericEquals", Kind::Numeric, Op::Eq),
    ("NumericLessThan", Kind::Numeric, Op::Lt),
    ("NumericGreaterThan", Kind::Numeric, Op::Gt),
    ("NumericLessThanEquals", Kind::Numeric, Op::Le),
    ("NumericGreaterThanEquals", Kind::Numeric, Op::Ge),
    ("BooleanEquals", Kind::Boolean, Op::Eq),
    ("TimestampEquals", Kind::Timestamp, Op::Eq),
    ("TimestampLessThan", Kind::Timestamp, Op::Lt),
    ("TimestampGreaterThan", Kind::Timestamp, Op::Gt),
    ("TimestampLessThanEquals", Kind::Timestamp, Op::Le),
    ("TimestampGreaterThanEquals", Kind::Timestamp, Op::Ge),
];

const TYPE_TESTS: &[(&str, TypeTest)] = &[
    ("IsNull", TypeTest::Null),
    ("IsPresent", TypeTest::Present),
    ("IsNumeric", TypeTest::Numeric),
    ("IsString", TypeTest::String),
    ("IsBoolean", TypeTest::Boolean),
    ("IsTimestamp", TypeTest::Timestamp),
];

enum Operator {
    Compare(Kind, Op, bool),
    Is(TypeTest),
    And,
    Or,
    Not,
}

fn operator(key: &str) -> Option<Operator> {
    match key {
        "And" => return Some(Operator::And),
        "Or" => return Some(Operator::Or),
        "Not" => return Some(Operator::Not),
        _ => {}
    }
    if let Some((_, t)) = TYPE_TESTS.iter().find(|(n, _)| *n == key) {
        return Some(Operator::Is(*t));
    }
    let (base, is_path) = match key.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (key, false),
    };
    COMPARISONS
        .iter()
        .find(|(n, _, op)| *n == base && !(is_path && *op == Op::Matches))
        .map(|(_, kind, op)| Operator::Compare(*kind, *op, is_path))
}

/// Parses a Choice state's `Choices`; each error message starts with where it is
/// (`Choices[1].And[0]: …`).
pub(crate) fn parse_choices(value: Option<&Value>, errors: &mut Vec<String>) -> Vec<ChoiceRule> {
    let Some(value) = value else {
        errors.push("Choices is missing".into());
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        errors.push("Choices must be an array".into());
        return Vec::new();
    };
    if items.is_empty() {
        errors.push("Choices must not be empty".into());
    }
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("Choices[{i}]");
        let next = match item.get("Next") {
            Some(Value::String(n)) => Some(n.clone()),
            Some(_) => {
                errors.push(format!("{at}: Next must be a string"));
                None
            }
            None => {
                errors.push(format!("{at}: Next is missing"));
                None
            }
        };
        let rule = parse_rule(item, &at, true, errors);
        if let (Some(rule), Some(next)) = (rule, next) {
            rules.push(ChoiceRule { rule, next });
        }
    }
    rules
}

fn parse_rule(value: &Value, at: &str, top: bool, errors: &mut Vec<String>) -> Option<Rule> {
    let Some(obj) = value.as_object() else {
        errors.push(format!("{at}: a choice rule must be an object"));
        return None;
    };
    if !top && obj.contains_key("Next") {
        errors.push(format!(
            "{at}: Next is only allowed on top-level choice rules"
        ));
    }
    let mut ops = Vec::new();
    for key in obj.keys() {
        match key.as_str() {
            "Variable" | "Next" | "Comment" => {}
            k => match operator(k) {
                Some(op) => ops.push((k, op)),
                None => errors.push(format!("{at}: unknown field {k:?}")),
            },
        }
    }
    let (key, op) = match ops.len() {
        0 => {
            errors.push(format!("{at}: the rule has no comparison operator"));
            return None;
        }
        1 => ops.remove(0),
        _ => {
            let names: Vec<&str> = ops.iter().map(|(k, _)| *k).collect();
            errors.push(format!(
                "{at}: the rule has more than one comparison operator ({})",
                names.join(", ")
            ));
            return None;
        }
    };
    let operand = &obj[key];
    let at_op = format!("{at}.{key}");
    match op {
        Operator::And | Operator::Or => {
            no_variable(obj, at, key, errors);
            let Some(items) = operand.as_array().filter(|a| !a.is_empty()) else {
                errors.push(format!("{at_op}: must be a non-empty array of rules"));
                return None;
            };
            let rules: Vec<Option<Rule>> = items
                .iter()
                .enumerate()
                .map(|(i, r)| parse_rule(r, &format!("{at_op}[{i}]"), false, errors))
                .collect();
            let rules: Option<Vec<Rule>> = rules.into_iter().collect();
            let rules = rules?;
            Some(if matches!(op, Operator::And) {
                Rule::And(rules)
            } else {
                Rule::Or(rules)
            })
        }
        Operator::Not => {
            no_variable(obj, at, key, errors);
            parse_rule(operand, &at_op, false, errors).map(|r| Rule::Not(Box::new(r)))
        }
        Operator::Is(check) => {
            let variable = variable(obj, at, errors);
            let Some(expected) = operand.as_bool() else {
                errors.push(format!("{at_op}: must be true or false"));
                return None;
            };
            Some(Rule::Test {
                variable: variable?,
                test: Test::Is(check, expected),
            })
        }
        Operator::Compare(kind, op, is_path) => {
            let variable = variable(obj, at, errors);
            let operand = if is_path {
                match operand.as_str().map(Path::parse) {
                    Some(Ok(p)) => Some(Operand::Path(p)),
                    Some(Err(e)) => {
                        errors.push(format!("{at_op}: {e}"));
                        None
                    }
                    None => {
                        errors.push(format!("{at_op}: must be a path string"));
                        None
                    }
                }
            } else {
                literal(kind, operand, &at_op, errors).map(Operand::Literal)
            };
            Some(Rule::Test {
                variable: variable?,
                test: Test::Compare {
                    kind,
                    op,
                    operand: operand?,
                },
            })
        }
    }
}

fn no_variable(obj: &Map<String, Value>, at: &str, key: &str, errors: &mut Vec<String>) {
    if obj.contains_key("Variable") {
        errors.push(format!("{at}: Variable is not allowed with {key}"));
    }
}

fn variable(obj: &Map<String, Value>, at: &str, errors: &mut Vec<String>) -> Option<Path> {
    match obj.get("Variable") {
        None => {
            errors.push(format!("{at}: Variable is missing"));
            None
        }
        Some(Value::String(s)) => match Path::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(format!("{at}.Variable: {e}"));
                None
            }
        },
        Some(_) => {
            errors.push(format!("{at}.Variable: must be a path string"));
            None
        }
    }
}

fn literal(kind: Kind, v: &Value, at: &str, errors: &mut Vec<String>) -> Option<Value> {
    let ok = match kind {
        Kind::String => v.is_string(),
        Kind::Numeric => v.is_number(),
        Kind::Boolean => v.is_boolean(),
        Kind::Timestamp => v.as_str().and_then(timestamp::parse).is_some(),
    };
    if ok {
        Some(v.clone())
    } else {
        let expected = match kind {
            Kind::String => "a string",
            Kind::Numeric => "a number",
            Kind::Boolean => "a boolean",
            Kind::Timestamp => "an RFC 3339 timestamp such as \"2016-03-14T01:59:00Z\"",
        };
        errors.push(format!("{at}: must be {expected}"));
        None
    }
}
