//! The intrinsic functions themselves, on already-evaluated arguments.

use super::Func;
use crate::engine::asl::error::StatesError;
use base64::Engine as _;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha1::Digest as _;

/// The longest string `Base64Encode`, `Base64Decode` and `Hash` accept, as in AWS.
const MAX_STRING_CHARS: usize = 10_000;
/// The most items `ArrayRange` may produce, as in AWS.
const MAX_RANGE_ITEMS: usize = 1_000;

type Result<T> = std::result::Result<T, StatesError>;

fn fail(func: Func, message: impl std::fmt::Display) -> StatesError {
    StatesError::intrinsic(format!("{}: {message}", func.name()))
}

pub(super) fn apply(func: Func, args: Vec<Value>, template_raw: Option<&str>) -> Result<Value> {
    match func {
        Func::Array => return Ok(Value::Array(args)),
        Func::Format => {
            let mut args = args.into_iter();
            let template = args.next().unwrap_or(Value::Null);
            return format(template, template_raw, args.collect());
        }
        _ => {}
    }
    // Arity was checked when the call was parsed; missing optional arguments read as null.
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Value::Null);
    match func {
        Func::Array | Func::Format => unreachable!("handled above"),
        Func::StringToJson => {
            let s = string(func, next(), "argument")?;
            serde_json::from_str(&s).map_err(|e| fail(func, format!("invalid JSON text: {e}")))
        }
        Func::JsonToString => Ok(Value::String(next().to_string())),
        Func::ArrayPartition => {
            let items = array(func, next())?;
            let size = integer(func, &next(), "chunk size")?;
            if size <= 0 {
                return Err(fail(func, "the chunk size must be greater than 0"));
            }
            let chunks = items
                .chunks(size as usize)
                .map(|c| Value::Array(c.to_vec()))
                .collect();
            Ok(Value::Array(chunks))
        }
        Func::ArrayContains => {
            let items = array(func, next())?;
            let needle = next();
            Ok(Value::Bool(items.contains(&needle)))
        }
        Func::ArrayRange => range(func, next(), next(), next()),
        Func::ArrayGetItem => {
            let items = array(func, next())?;
            let index = integer(func, &next(), "index")?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| fail(func, format!("index {index} is out of bounds")))
        }
        Func::ArrayLength => Ok(Value::from(array(func, next())?.len())),
        Func::ArrayUnique => {
            let mut unique: Vec<Value> = Vec::new();
            for item in array(func, next())? {
                if !unique.contains(&item) {
                    unique.push(item);
                }
            }
            Ok(Value::Array(unique))
        }
        Func::Base64Encode => {
            let s = limited_string(func, next())?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        Func::Base64Decode => {
            let s = limited_string(func, next())?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| fail(func, format!("invalid base64: {e}")))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| fail(func, "the decoded data is not UTF-8 text"))
        }
        Func::Hash => {
            let data = limited_string(func, next())?;
            let algorithm = string(func, next(), "algorithm")?;
            hash(func, &data, &algorithm).map(Value::String)
        }
        Func::JsonMerge => {
            let (a, b, deep) = (next(), next(), next());
            let (Value::Object(mut a), Value::Object(b)) = (a, b) else {
                return Err(fail(func, "both arguments to merge must be JSON objects"));
            };
            match deep {
                Value::Bool(false) => {}
                Value::Bool(true) => {
                    return Err(fail(
                        func,
                        "only shallow merging is supported; the third argument must be false",
                    ))
                }
                _ => return Err(fail(func, "the third argument must be a boolean")),
            }
            a.extend(b);
            Ok(Value::Object(a))
        }
        Func::MathRandom => {
            let start = integer(func, &next(), "start")?;
            let end = integer(func, &next(), "end")?;
            let seed = next();
            if start >= end {
                return Err(fail(func, "the start must be less than the end"));
            }
            let n = if seed.is_null() {
                rand::rng().random_range(start..end)
            } else {
                let seed = integer(func, &seed, "seed")?;
                rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(start..end)
            };
            Ok(Value::from(n))
        }
        Func::MathAdd => {
            let a = integer(func, &next(), "first value")?;
            let b = integer(func, &next(), "second value")?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| fail(func, "the sum overflows"))
        }
        Func::StringSplit => {
            let s = string(func, next(), "string")?;
            let delimiters = string(func, next(), "delimiter")?;
            let parts = s
                .split(|c| delimiters.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_owned()))
                .collect();
            Ok(Value::Array(parts))
        }
        Func::Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
    }
}

fn string(func: Func, v: Value, what: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(fail(
            func,
            format!("the {what} must be a string, got {other}"),
        )),
    }
}

fn limited_string(func: Func, v: Value) -> Result<String> {
    let s = string(func, v, "input")?;
    if s.chars().count() > MAX_STRING_CHARS {
        return Err(fail(
            func,
            format!("the input is longer than {MAX_STRING_CHARS} characters"),
        ));
    }
    Ok(s)
}

fn array(func: Func, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(fail(func, format!("expected an array, got {other}"))),
    }
}

/// An integer argument; other numbers are rounded half up, as Java's `Math.round` does.
fn integer(func: Func, v: &Value, what: &str) -> Result<i64> {
    let n = match v {
        Value::Number(n) => n,
        other => {
            return Err(fail(
                func,
                format!("the {what} must be a number, got {other}"),
            ))
        }
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e18 => Ok((f + 0.5).floor() as i64),
        _ => Err(fail(func, format!("the {what} {n} is out of range"))),
    }
}

fn range(func: Func, start: Value, end: Value, step: Value) -> Result<Value> {
    let start = integer(func, &start, "start")?;
    let end = integer(func, &end, "end")?;
    let step = integer(func, &step, "step")?;
    if step == 0 {
        return Err(fail(func, "the step must not be 0"));
    }
    let mut items = Vec::new();
    let mut n = start;
    while (step > 0 && n <= end) || (step < 0 && n >= end) {
        if items.len() == MAX_RANGE_ITEMS {
            return Err(fail(
                func,
                format!("the range has more than {MAX_RANGE_ITEMS} items"),
            ));
        }
        items.push(Value::from(n));
        n = match n.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(Value::Array(items))
}

fn hash(func: Func, data: &str, algorithm: &str) -> Result<String> {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    let bytes = data.as_bytes();
    Ok(match algorithm {
        "MD5" => format!("{:x}", md5::compute(bytes)),
        "SHA-1" => hex(&sha1::Sha1::digest(bytes)),
        "SHA-256" => hex(&sha2::Sha256::digest(bytes)),
        "SHA-384" => hex(&sha2::Sha384::digest(bytes)),
        "SHA-512" => hex(&sha2::Sha512::digest(bytes)),
        other => {
            return Err(fail(
                func,
                format!("unknown algorithm {other:?}; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"),
            ))
        }
    })
}

/// `States.Format`: `{}` placeholders, `\{` `\}` escapes in a literal template.
fn format(template: Value, raw: Option<&str>, args: Vec<Value>) -> Result<Value> {
    let func = Func::Format;
    let value = string(func, template, "template")?;
    let source = raw.unwrap_or(&value);
    let escapes = raw.is_some();
    let mut out = String::new();
    let mut args = args.into_iter();
    let mut used = 0usize;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes => out.extend(chars.next()),
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                used += 1;
                let arg = args.next().ok_or_else(|| {
                    fail(func, "the template has more placeholders than arguments")
                })?;
                out.push_str(&to_format_string(&arg));
            }
            c => out.push(c),
        }
    }
    if args.next().is_some() {
        return Err(fail(
            func,
            format!("the template has {used} placeholder(s) but more arguments were given"),
        ));
    }
    Ok(Value::String(out))
}

/// How AWS renders a value inside `States.Format`: strings bare, objects as `{k=v, …}`,
/// arrays as `[a, b]`, everything else as JSON.
fn to_format_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(to_format_string).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", to_format_string(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}
