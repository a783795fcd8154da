//! Choice rules: the model and its evaluation.
//!
//! Semantics follow AWS: a comparison whose `Variable` (or `…Path` operand) is absent is a
//! `States.Runtime` error, except under `IsPresent`; a value of the wrong type simply does not
//! match; rules are tried in order and the first match wins; no match and no `Default` is
//! `States.NoChoiceMatched`.

mod parse;

pub(crate) use parse::parse_choices;

use super::context::ContextObject;
use super::error::{names, StatesError};
use super::path::{compare_numbers, Path};
use super::timestamp;
use serde_json::Value;
use std::cmp::Ordering;

/// A top-level rule of a Choice state and where it leads.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceRule {
    pub(crate) rule: Rule,
    pub(crate) next: String,
}

impl ChoiceRule {
    /// The state this rule transitions to.
    pub fn next(&self) -> &str {
        &self.next
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: Path, test: Test },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Test {
    Compare {
        kind: Kind,
        op: Op,
        operand: Operand,
    },
    Is(TypeTest, bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Matches,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

/// Picks the next state: the first matching rule's `Next`, else `default`.
pub fn choose<'a>(
    rules: &'a [ChoiceRule],
    default: Option<&'a str>,
    input: &Value,
    context: &ContextObject<'_>,
) -> Result<&'a str, StatesError> {
    for rule in rules {
        if eval(&rule.rule, input, context)? {
            return Ok(&rule.next);
        }
    }
    default.ok_or_else(|| {
        StatesError::new(
            names::NO_CHOICE_MATCHED,
            "No Matches! The Choice state matched none of its rules and has no Default.",
        )
    })
}

fn absent(path: &Path) -> StatesError {
    StatesError::runtime(format!(
        "Invalid path '{path}': The choice state's condition path references an invalid value."
    ))
}

fn eval(rule: &Rule, input: &Value, context: &ContextObject<'_>) -> Result<bool, StatesError> {
    match rule {
        Rule::And(rules) => {
            for r in rules {
                if !eval(r, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for r in rules {
                if eval(r, input, context)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!eval(r, input, context)?),
        Rule::Test { variable, test } => {
            let value = context.select(variable, input);
            match test {
                Test::Is(TypeTest::Present, expected) => Ok(value.is_some() == *expected),
                Test::Is(check, expected) => {
                    let value = value.ok_or_else(|| absent(variable))?;
                    Ok(is_type(*check, &value) == *expected)
                }
                Test::Compare { kind, op, operand } => {
                    let value = value.ok_or_else(|| absent(variable))?;
                    let other = match operand {
                        Operand::Literal(v) => v.clone(),
                        Operand::Path(p) => context.select(p, input).ok_or_else(|| absent(p))?,
                    };
                    Ok(compare(*kind, *op, &value, &other))
                }
            }
        }
    }
}

fn is_type(check: TypeTest, v: &Value) -> bool {
    match check {
        TypeTest::Null => v.is_null(),
        TypeTest::Present => true,
        TypeTest::Numeric => v.is_number(),
        TypeTest::String => v.is_string(),
        TypeTest::Boolean => v.is_boolean(),
        TypeTest::Timestamp => v.as_str().and_then(timestamp::parse).is_some(),
    }
}

fn compare(kind: Kind, op: Op, value: &Value, other: &Value) -> bool {
    let ordering = match (kind, value, other) {
        (Kind::String, Value::String(a), Value::String(b)) => {
            if op == Op::Matches {
                return glob_matches(b, a);
            }
            Some(a.cmp(b))
        }
        (Kind::Numeric, Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
        (Kind::Boolean, Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Kind::Timestamp, Value::String(a), Value::String(b)) => {
            match (timestamp::parse(a), timestamp::parse(b)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            }
        }
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Gt => ordering == Ordering::Greater,
        Op::Le => ordering != Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Matches => false,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are a literal `*` and `\`.
fn glob_matches(pattern: &str, text: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.push(Tok::Char(chars.next().unwrap_or('\\'))),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Star) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(Tok::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|tok| *tok == Tok::Star)
}

#[cfg(test)]
mod tests;
