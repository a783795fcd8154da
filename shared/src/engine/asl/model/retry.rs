//! `Retry` and `Catch`: which errors they handle and, for retriers, how long to back off.

use super::diagnostics::{Diagnostics, Fields};
use crate::engine::asl::error::{error_matches, names, StatesError};
use crate::engine::asl::path::ResultPath;
use rand::Rng;
use serde_json::Value;

/// One entry of `Retry`.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrier {
    pub(crate) error_equals: Vec<String>,
    pub(crate) interval_seconds: u64,
    pub(crate) max_attempts: u64,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<u64>,
    pub(crate) jitter: Jitter,
}

/// `JitterStrategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// `NONE` (the default): wait exactly the computed interval.
    None,
    /// `FULL`: wait a random time between 0 and the computed interval.
    Full,
}

/// One entry of `Catch`.
#[derive(Clone, Debug, PartialEq)]
pub struct Catcher {
    pub(crate) error_equals: Vec<String>,
    pub(crate) next: String,
    pub(crate) result_path: ResultPath,
}

fn matches_any(patterns: &[String], error: &StatesError) -> bool {
    patterns.iter().any(|p| {
        error_matches(p, error.name())
            || (error.heartbeat && p == crate::engine::asl::error::names::HEARTBEAT_TIMEOUT)
    })
}

impl Retrier {
    /// Whether this retrier handles `error`.
    pub fn matches(&self, error: &StatesError) -> bool {
        matches_any(&self.error_equals, error)
    }

    /// `MaxAttempts`
    pub fn max_attempts(&self) -> u64 {
        self.max_attempts
    }

    /// The wait before retry number `retry` (1-based), in milliseconds:
    /// `IntervalSeconds × BackoffRate^(retry-1)`, capped by `MaxDelaySeconds`, then jittered.
    pub fn delay_millis(&self, retry: u64) -> i64 {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let mut seconds = self.interval_seconds as f64 * self.backoff_rate.powi(exponent);
        if let Some(cap) = self.max_delay_seconds {
            seconds = seconds.min(cap as f64);
        }
        // Step Functions caps every wait at a year; so do we, which also keeps the cast sane.
        let millis = (seconds * 1000.0).min(31_536_000_000.0);
        let millis = match self.jitter {
            Jitter::None => millis,
            Jitter::Full => rand::rng().random_range(0.0..=millis),
        };
        millis.round() as i64
    }
}

impl Catcher {
    /// Whether this catcher handles `error`.
    pub fn matches(&self, error: &StatesError) -> bool {
        matches_any(&self.error_equals, error)
    }

    /// The state to go to.
    pub fn next(&self) -> &str {
        &self.next
    }
}

const RETRIER_FIELDS: &[&str] = &[
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
];
const CATCHER_FIELDS: &[&str] = &["ErrorEquals", "Next", "ResultPath", "Comment"];

/// Reads the entries of `Retry` or `Catch` (`field`), checking `ErrorEquals` in each and that a
/// `States.ALL` entry is alone and last.
fn entries<'a>(
    value: Option<&'a Value>,
    field: &str,
    location: &'a str,
    diag: &mut Diagnostics,
) -> Vec<(String, Fields<'a>, Option<Vec<String>>)> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        diag.push(location, format!("{field} must be an array"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Some(obj) = item.as_object() else {
            diag.push(location, format!("{at} must be an object"));
            continue;
        };
        let errors = match obj.get("ErrorEquals") {
            None => {
                diag.push(location, format!("{at}.ErrorEquals is missing"));
                None
            }
            Some(Value::Array(names)) if names.is_empty() => {
                diag.push(location, format!("{at}.ErrorEquals must not be empty"));
                None
            }
            Some(Value::Array(names)) => {
                let names: Option<Vec<String>> = names
                    .iter()
                    .map(|n| n.as_str().map(str::to_owned))
                    .collect();
                match names {
                    Some(names) => {
                        if names.iter().any(|n| n == names::ALL) {
                            if names.len() > 1 {
                                diag.push(
                                    location,
                                    format!("{at}.ErrorEquals: States.ALL must appear alone"),
                                );
                            }
                            if i + 1 != items.len() {
                                diag.push(location, format!("{at}: the entry with States.ALL must be the last in {field}"));
                            }
                        }
                        Some(names)
                    }
                    None => {
                        diag.push(
                            location,
                            format!("{at}.ErrorEquals must contain only strings"),
                        );
                        None
                    }
                }
            }
            Some(_) => {
                diag.push(
                    location,
                    format!("{at}.ErrorEquals must be an array of strings"),
                );
                None
            }
        };
        out.push((at, Fields { obj, location }, errors));
    }
    out
}

pub(crate) fn parse_retry(
    value: Option<&Value>,
    location: &str,
    diag: &mut Diagnostics,
) -> Vec<Retrier> {
    let mut out = Vec::new();
    for (at, fields, errors) in entries(value, "Retry", location, diag) {
        for key in fields.obj.keys() {
            if !RETRIER_FIELDS.contains(&key.as_str()) {
                diag.push(location, format!("{at}: unknown field {key:?}"));
            }
        }
        let interval = positive(&fields, &at, "IntervalSeconds", 1, diag).unwrap_or(1);
        let max_attempts = positive(&fields, &at, "MaxAttempts", 0, diag).unwrap_or(3);
        let max_delay = positive(&fields, &at, "MaxDelaySeconds", 1, diag);
        let backoff = match fields.get("BackoffRate") {
            None => 2.0,
            Some(v) => match v.as_f64() {
                Some(r) if r >= 1.0 => r,
                _ => {
                    diag.push(
                        location,
                        format!("{at}.BackoffRate must be a number of at least 1.0, got {v}"),
                    );
                    2.0
                }
            },
        };
        let jitter = match fields.get("JitterStrategy") {
            None => Jitter::None,
            Some(v) if v == "FULL" => Jitter::Full,
            Some(v) if v == "NONE" => Jitter::None,
            Some(v) => {
                diag.push(
                    location,
                    format!("{at}.JitterStrategy must be \"FULL\" or \"NONE\", got {v}"),
                );
                Jitter::None
            }
        };
        if let Some(error_equals) = errors {
            out.push(Retrier {
                error_equals,
                interval_seconds: interval,
                max_attempts,
                backoff_rate: backoff,
                max_delay_seconds: max_delay,
                jitter,
            });
        }
    }
    out
}

fn positive(
    fields: &Fields<'_>,
    at: &str,
    key: &str,
    min: u64,
    diag: &mut Diagnostics,
) -> Option<u64> {
    let v = fields.get(key)?;
    match v.as_u64() {
        Some(n) if n >= min && n <= 99_999_999 => Some(n),
        _ => {
            diag.push(
                fields.location,
                format!("{at}.{key} must be a whole number from {min} to 99999999, got {v}"),
            );
            None
        }
    }
}

pub(crate) fn parse_catch(
    value: Option<&Value>,
    location: &str,
    diag: &mut Diagnostics,
) -> Vec<Catcher> {
    let mut out = Vec::new();
    for (at, fields, errors) in entries(value, "Catch", location, diag) {
        for key in fields.obj.keys() {
            if !CATCHER_FIELDS.contains(&key.as_str()) {
                diag.push(location, format!("{at}: unknown field {key:?}"));
            }
        }
        let next = match fields.get("Next") {
            Some(Value::String(n)) => Some(n.clone()),
            Some(_) => {
                diag.push(location, format!("{at}.Next must be a string"));
                None
            }
            None => {
                diag.push(location, format!("{at}.Next is missing"));
                None
            }
        };
        let result_path = match ResultPath::from_json(fields.get("ResultPath")) {
            Ok(p) => Some(p),
            Err(e) => {
                diag.push(location, format!("{at}.ResultPath: {e}"));
                None
            }
        };
        if let (Some(error_equals), Some(next), Some(result_path)) = (errors, next, result_path) {
            out.push(Catcher {
                error_equals,
                next,
                result_path,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn retrier(v: Value) -> Retrier {
        let mut diag = Diagnostics::default();
        let mut r = parse_retry(Some(&json!([v])), "s", &mut diag);
        diag.finish().unwrap();
        r.remove(0)
    }

    #[test]
    fn defaults_and_backoff() {
        let r = retrier(json!({"ErrorEquals": ["X"]}));
        assert_eq!(
            (r.interval_seconds, r.max_attempts, r.backoff_rate, r.jitter),
            (1, 3, 2.0, Jitter::None)
        );
        assert_eq!(
            [r.delay_millis(1), r.delay_millis(2), r.delay_millis(3)],
            [1000, 2000, 4000]
        );
        let r = retrier(
            json!({"ErrorEquals": ["X"], "IntervalSeconds": 3, "BackoffRate": 1.5, "MaxDelaySeconds": 5}),
        );
        assert_eq!(
            [r.delay_millis(1), r.delay_millis(2), r.delay_millis(3)],
            [3000, 4500, 5000]
        );
        let r =
            retrier(json!({"ErrorEquals": ["X"], "IntervalSeconds": 10, "JitterStrategy": "FULL"}));
        for _ in 0..20 {
            assert!((0..=10_000).contains(&r.delay_millis(1)));
        }
    }

    #[test]
    fn matching() {
        let r = retrier(json!({"ErrorEquals": ["A", "States.Timeout"]}));
        assert!(r.matches(&StatesError::new("A", "")));
        assert!(r.matches(&StatesError::new("States.HeartbeatTimeout", "")));
        assert!(!r.matches(&StatesError::new("B", "")));
    }

    #[test]
    fn mistakes_are_reported() {
        let mut diag = Diagnostics::default();
        parse_retry(
            Some(&json!([
                {"ErrorEquals": ["States.ALL", "X"]},
                {"ErrorEquals": []},
                {"ErrorEquals": ["Y"], "MaxAttempts": -1, "BackoffRate": 0.5, "IntervalSeconds": 0, "JitterStrategy": "SOME", "Bogus": 1},
                {"IntervalSeconds": 2}
            ])),
            "state \"T\"",
            &mut diag,
        );
        parse_catch(
            Some(
                &json!([{"ErrorEquals": ["States.ALL"], "Next": "A"}, {"ErrorEquals": ["X"], "ResultPath": "$.a[*]"}]),
            ),
            "state \"T\"",
            &mut diag,
        );
        let text = diag.finish().unwrap_err().to_string();
        for expected in [
            "Retry[0].ErrorEquals: States.ALL must appear alone",
            "Retry[0]: the entry with States.ALL must be the last in Retry",
            "Retry[1].ErrorEquals must not be empty",
            "Retry[2].MaxAttempts must be a whole number from 0",
            "Retry[2].BackoffRate must be a number of at least 1.0",
            "Retry[2].IntervalSeconds must be a whole number from 1",
            "Retry[2].JitterStrategy must be",
            "Retry[2]: unknown field \"Bogus\"",
            "Retry[3].ErrorEquals is missing",
            "Catch[0]: the entry with States.ALL must be the last in Catch",
            "Catch[1].Next is missing",
            "Catch[1].ResultPath: invalid JSONPath",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}
