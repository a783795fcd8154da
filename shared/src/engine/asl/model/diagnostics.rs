//! Validation errors, and the collector that gathers all of them in one pass.
//!
//! A definition with five mistakes should report five, each saying where it is
//! (`state "Map1" > state "Inner": Next "Alex2" does not exist`), so the author fixes them in
//! one round instead of five.

use serde_json::{Map, Value};
use std::fmt;

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where: empty for the top level, else e.g. `state "Map1" > state "Inner"`.
    pub location: String,
    /// What, naming the field.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

/// Every problem found in a definition (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(Vec<ValidationError>);

impl ValidationErrors {
    /// The problems, in the order they were found.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }

    /// A single top-level problem.
    pub(crate) fn single(message: impl Into<String>) -> Self {
        ValidationErrors(vec![ValidationError {
            location: String::new(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid state machine definition ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Collects errors while parsing.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    errors: Vec<ValidationError>,
}

impl Diagnostics {
    pub(crate) fn push(&mut self, location: &str, message: impl Into<String>) {
        self.errors.push(ValidationError {
            location: location.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// A JSON object being read at a location, reporting type mistakes as it goes.
pub(crate) struct Fields<'a> {
    pub(crate) obj: &'a Map<String, Value>,
    pub(crate) location: &'a str,
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    pub(crate) fn string(&self, key: &str, diag: &mut Diagnostics) -> Option<&'a str> {
        match self.obj.get(key)? {
            Value::String(s) => Some(s),
            _ => {
                diag.push(self.location, format!("{key} must be a string"));
                None
            }
        }
    }

    /// A whole number of at least `min`.
    pub(crate) fn integer(&self, key: &str, min: u64, diag: &mut Diagnostics) -> Option<u64> {
        let v = self.obj.get(key)?;
        match v.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                let message = if v.as_i64().is_some_and(|n| n < 0) || v.as_u64().is_some() {
                    format!("{key} must be at least {min}, got {v}")
                } else {
                    format!("{key} must be a whole number, got {v}")
                };
                diag.push(self.location, message);
                None
            }
        }
    }

    /// Reports every key not in `allowed`; `kind` names the object (`a Pass state`).
    pub(crate) fn check_known(&self, allowed: &[&str], kind: &str, diag: &mut Diagnostics) {
        for key in self.obj.keys() {
            let jsonpath = key == "QueryLanguage" && self.obj[key] == "JSONPath";
            if allowed.contains(&key.as_str()) || jsonpath {
                continue;
            }
            let message = match key.as_str() {
                "Assign" => "Assign (workflow variables) is not supported".to_owned(),
                "Arguments" | "Output" => {
                    format!("{key} is JSONata-only; only JSONPath is supported")
                }
                "QueryLanguage" => "QueryLanguage: only JSONPath is supported".to_owned(),
                "ItemReader"
                | "ItemBatcher"
                | "ResultWriter"
                | "ToleratedFailurePercentage"
                | "ToleratedFailurePercentagePath"
                | "ToleratedFailureCount"
                | "ToleratedFailureCountPath"
                | "Label" => {
                    format!("{key} is only for Distributed Map, which is not supported")
                }
                "Credentials" => "Credentials (cross-account tasks) is not supported".to_owned(),
                _ => format!("unknown field {key:?} for {kind}"),
            };
            diag.push(self.location, message);
        }
    }
}

/// The location of a state inside a scope whose location is `prefix`.
pub(crate) fn state_location(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        format!("state {name:?}")
    } else {
        format!("{prefix} > state {name:?}")
    }
}
