//! `DefinitionSubstitutions`: `${Name}` placeholders in a definition's text, filled in before it
//! is parsed (as SAM and CloudFormation do), so one `statemachine/*.asl.json` file serves both
//! engines.

use std::collections::{BTreeSet, HashMap};

/// Placeholders without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for definition substitution(s): {}", .missing.iter().map(|m| format!("${{{m}}}")).collect::<Vec<_>>().join(", "))]
pub struct SubstitutionError {
    /// Every name without a value, sorted and without duplicates.
    pub missing: Vec<String>,
}

/// Replaces every `${Name}` in `definition_text` by `values[Name]`. A `$` not followed by `{`,
/// or a `${` without a closing `}`, is left as is; names are letters, digits, `_`, `-`, `.`
/// and `:`.
pub fn substitute(
    definition_text: &str,
    values: &HashMap<String, String>,
) -> Result<String, SubstitutionError> {
    let mut out = String::with_capacity(definition_text.len());
    let mut missing = BTreeSet::new();
    let mut rest = definition_text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.:".contains(c)))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        if name.is_empty() || !after[name_len..].starts_with('}') {
            out.push_str("${");
            rest = after;
            continue;
        }
        match values.get(name) {
            Some(v) => out.push_str(v),
            None => {
                missing.insert(name.to_owned());
            }
        }
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SubstitutionError {
            missing: missing.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaces_every_occurrence() {
        let text = r#"{"QueueUrl": "${TaskQueueUrl}", "Other": "${TaskQueueUrl}/${Env}"}"#;
        let out = substitute(
            text,
            &values(&[("TaskQueueUrl", "http://q"), ("Env", "dev")]),
        )
        .unwrap();
        assert_eq!(out, r#"{"QueueUrl": "http://q", "Other": "http://q/dev"}"#);
    }

    #[test]
    fn names_every_missing_value() {
        let err = substitute("${A} ${B} ${A} ${C}", &values(&[("B", "b")])).unwrap_err();
        assert_eq!(err.missing, ["A", "C"]);
        assert_eq!(
            err.to_string(),
            "no value for definition substitution(s): ${A}, ${C}"
        );
    }

    #[test]
    fn leaves_other_dollars_alone() {
        let text = r#"{"a.$": "$.x", "b": "$${", "c": "${ not a name }", "d": "${"}"#;
        assert_eq!(substitute(text, &HashMap::new()).unwrap(), text);
    }
}
