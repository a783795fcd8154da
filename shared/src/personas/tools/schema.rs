//! A tool's argument schema, derived from its `*Args` type (`schemars`), and
//! the check of a model's arguments against it before the tool runs. The
//! schema the model is promised and the one its calls are held to are the
//! same value, so a limit written on a field (a caption's length, a hashtag's
//! pattern, the platforms allowed) cannot be promised and not kept.
//!
//! The check covers the keywords the derived schemas use: `type`,
//! `properties`, `required`, `additionalProperties: false`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `pattern`, `enum`,
//! `minimum`/`maximum` and `format: uri`. A keyword it does not know is
//! refused when the schema is built (`of`), not ignored at run time.
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};

/// Why arguments do not match their schema: where (a path such as
/// `hashtags[1]`, or `arguments` for the whole) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SchemaViolation {
    pub field: String,
    pub reason: String,
}

impl SchemaViolation {
    fn new(field: &str, reason: String) -> Self {
        SchemaViolation {
            field: field.to_owned(),
            reason,
        }
    }
}

/// The JSON Schema of `T` as the model is given it: one object, every
/// subschema inline, no meta-data keywords, `additionalProperties: false`,
/// an optional field described by its value's schema (absent rather than
/// `null`).
pub fn of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    // The type's own docs are for readers of the code; the model reads the
    // tool's description.
    if let Some(root) = schema.as_object_mut() {
        root.remove("description");
    }
    tidy(&mut schema);
    schema
}

/// Keeps what the model and the check need: drops `title`, integer
/// `format`s and the `null` of optional fields; closes every object.
fn tidy(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    map.remove("title");
    map.remove("$schema");
    if map.get("format").and_then(Value::as_str) != Some("uri") {
        map.remove("format");
    }
    if let Some(Value::Array(types)) = map.get("type") {
        let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if let [only] = types.as_slice() {
            map.insert("type".to_owned(), only.clone());
        }
    }
    if map.get("type").and_then(Value::as_str) == Some("object") {
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
        map.entry("required")
            .or_insert_with(|| Value::Array(vec![]));
    }
    // An unsigned integer's derived `minimum: 0` says less than a range.
    if map.get("minimum") == Some(&Value::from(0))
        && map.get("type").is_some_and(|t| t == "integer")
    {
        map.remove("minimum");
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(tidy);
    }
    if let Some(items) = map.get_mut("items") {
        tidy(items);
    }
    for key in map.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "tool schemas may not use `{key}`: the argument check does not know it"
        );
    }
}

/// The keywords a tool schema may use.
const KNOWN: &[&str] = &[
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "enum",
    "minimum",
    "maximum",
    "format",
];

/// Checks `value` against `schema` (one built by `of`, or written by hand
/// with the same keywords); the first violation found.
pub fn check(schema: &Value, value: &Value) -> Result<(), SchemaViolation> {
    check_at(schema, value, "arguments")
}

fn check_at(schema: &Value, value: &Value, at: &str) -> Result<(), SchemaViolation> {
    let fail = |reason: String| Err(SchemaViolation::new(at, reason));
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        if !has_type(value, expected) {
            return fail(format!(
                "expected {}, got {}",
                article(expected),
                kind(value)
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return fail(format!("{value} is not one of {}", allowed.join(", ")));
        }
    }
    match value {
        Value::String(text) => check_string(schema, text, at),
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    return fail(format!("{number} is less than {min}"));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    return fail(format!("{number} is more than {max}"));
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if count < min {
                    return fail(format!("needs at least {min} item(s), got {count}"));
                }
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if count > max {
                    return fail(format!("takes at most {max} item(s), got {count}"));
                }
            }
            if let Some(item) = schema.get("items") {
                for (i, value) in items.iter().enumerate() {
                    check_at(item, value, &format!("{at}[{i}]"))?;
                }
            }
            Ok(())
        }
        Value::Object(fields) => check_object(schema, fields, at),
        Value::Bool(_) | Value::Null => Ok(()),
    }
}

fn check_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    at: &str,
) -> Result<(), SchemaViolation> {
    let field = |name: &str| {
        if at == "arguments" {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        }
    };
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !fields.contains_key(required) {
            return Err(SchemaViolation::new(
                &field(required),
                "is required".to_owned(),
            ));
        }
    }
    for (name, value) in fields {
        match properties.get(name) {
            Some(property) => check_at(property, value, &field(name))?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                return Err(SchemaViolation::new(
                    &field(name),
                    format!(
                        "is not an argument of this tool (it takes {})",
                        known.join(", ")
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn check_string(schema: &Map<String, Value>, text: &str, at: &str) -> Result<(), SchemaViolation> {
    let fail = |reason: String| Err(SchemaViolation::new(at, reason));
    let chars = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if chars < min {
            return fail(if min == 1 {
                "may not be empty".to_owned()
            } else {
                format!("needs at least {min} characters, got {chars}")
            });
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if chars > max {
            return fail(format!("is longer than {max} characters ({chars})"));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        if !pattern_matches(pattern, text) {
            return fail(format!("{text:?} does not match the pattern {pattern}"));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("uri") && !is_uri(text) {
        return fail(format!("{text:?} is not an absolute URL"));
    }
    Ok(())
}

/// Whether `text` matches the JSON Schema `pattern` (an ECMA-262 regular
/// expression, unanchored; `\w` and `\d` are ASCII in both). Patterns are
/// compiled once each.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    static COMPILED: OnceLock<std::sync::Mutex<Vec<(String, regex_lite::Regex)>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, regex)) = compiled.iter().find(|(p, _)| p == pattern) {
        return regex.is_match(text);
    }
    let regex = regex_lite::Regex::new(pattern)
        .unwrap_or_else(|e| panic!("tool schema pattern {pattern:?}: {e}"));
    let matches = regex.is_match(text);
    compiled.push((pattern.to_owned(), regex));
    matches
}

/// `scheme://rest`, the scheme a letter then letters, digits, `+`, `-`, `.`.
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !text.contains(char::is_whitespace)
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn article(expected: &str) -> String {
    match expected {
        "object" | "array" | "integer" => format!("an {expected}"),
        _ => format!("a {expected}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::personas::tools::catalog::{self, PUBLISH_VIDEO, WRITE_CAPTION};

    fn refusal(tool: &str, args: Value) -> String {
        check(catalog::parameters(tool).unwrap(), &args)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_derived_schemas_keep_the_promised_limits() {
        let caption = catalog::parameters(WRITE_CAPTION).unwrap();
        assert_eq!(
            caption,
            &json!({
                "type": "object",
                "properties": {
                    "caption": {"type": "string", "minLength": 1, "maxLength": 2200},
                    "hashtags": {"type": "array", "items": {"type": "string", "pattern": "^#\\w+$"}}
                },
                "required": ["caption", "hashtags"],
                "additionalProperties": false
            })
        );
        let publish = catalog::parameters(PUBLISH_VIDEO).unwrap();
        assert_eq!(
            publish["properties"]["platforms"]["items"]["enum"],
            json!(["tiktok", "instagram", "youtube"])
        );
        assert_eq!(publish["properties"]["video_url"]["format"], "uri");
        let clips = catalog::parameters(catalog::SUBMIT_CLIP_JOBS).unwrap();
        let clip = &clips["properties"]["clips"]["items"];
        assert_eq!(clip["properties"]["duration_seconds"]["maximum"], 60);
        assert_eq!(
            clip["properties"]["aspect_ratio"]["enum"],
            json!(catalog::ASPECT_RATIOS)
        );
        assert_eq!(clip["additionalProperties"], false);
        let runs = catalog::parameters(catalog::LIST_MY_RUNS).unwrap();
        assert_eq!(
            runs["properties"]["limit"],
            json!({"type": "integer", "minimum": 1, "maximum": 50})
        );
        assert_eq!(runs["required"], json!([]));
    }

    #[test]
    fn out_of_spec_arguments_are_refused_naming_the_field() {
        let long = "x".repeat(2201);
        assert_eq!(
            refusal(WRITE_CAPTION, json!({"caption": long, "hashtags": []})),
            "caption: is longer than 2200 characters (2201)"
        );
        assert_eq!(
            refusal(
                WRITE_CAPTION,
                json!({"caption": "hi", "hashtags": ["#ok", "no hash"]})
            ),
            r#"hashtags[1]: "no hash" does not match the pattern ^#\w+$"#
        );
        assert_eq!(
            refusal(
                PUBLISH_VIDEO,
                json!({"video_url": "https://cdn/v.mp4", "caption": "c", "platforms": ["myspace"]})
            ),
            r#"platforms[0]: "myspace" is not one of "tiktok", "instagram", "youtube""#
        );
        assert_eq!(
            refusal(
                PUBLISH_VIDEO,
                json!({"video_url": "v.mp4", "caption": "c", "platforms": ["tiktok"]})
            ),
            r#"video_url: "v.mp4" is not an absolute URL"#
        );
        assert_eq!(
            refusal(WRITE_CAPTION, json!({"caption": "hi"})),
            "hashtags: is required"
        );
        assert_eq!(
            refusal(
                WRITE_CAPTION,
                json!({"caption": "hi", "hashtags": [], "mood": "sunny"})
            ),
            "mood: is not an argument of this tool (it takes caption, hashtags)"
        );
        assert_eq!(
            refusal(
                catalog::SUBMIT_CLIP_JOBS,
                json!({"clips": [{"prompt": "p", "duration_seconds": 61, "aspect_ratio": "9:16"}]})
            ),
            "clips[0].duration_seconds: 61 is more than 60"
        );
        assert_eq!(
            refusal(WRITE_CAPTION, json!("caption")),
            "arguments: expected an object, got a string"
        );
    }

    #[test]
    fn in_spec_arguments_pass() {
        let caption = json!({"caption": "é".repeat(2200), "hashtags": ["#asmr", "#x_1"]});
        assert_eq!(
            check(catalog::parameters(WRITE_CAPTION).unwrap(), &caption),
            Ok(())
        );
        let runs = json!({});
        assert_eq!(
            check(catalog::parameters(catalog::LIST_MY_RUNS).unwrap(), &runs),
            Ok(())
        );
    }
}
