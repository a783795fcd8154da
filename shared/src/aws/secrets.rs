//! Secrets Manager: the one secret a Lambda function holds, read once at
//! cold start. The function's environment carries only the secret's ARN, so
//! `lambda:GetFunctionConfiguration` shows no secret value, and its role may
//! read that secret alone (`template.yaml`), so a function can reach only
//! the keys its own code uses.
use std::collections::BTreeMap;

use aws_config::SdkConfig;

/// Why a function's secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager refused or could not be reached.
    #[error("cannot read the secret {arn}: {code}: {message}")]
    Unreadable {
        arn: String,
        code: String,
        message: String,
    },
    /// The secret is binary, or not a JSON object of strings.
    #[error("the secret {arn} is not a JSON object of strings ({reason})")]
    Malformed {
        arn: String,
        #[source]
        reason: MalformedSecret,
    },
}

/// Why a secret's value is not a JSON object of strings.
#[derive(Debug, thiserror::Error)]
pub enum MalformedSecret {
    #[error("it has no SecretString")]
    Binary,
    #[error("{0}")]
    NotJson(serde_json::Error),
    #[error("{name} is {value}, not a string")]
    NotAString {
        name: String,
        value: serde_json::Value,
    },
}

/// The secret's values: a JSON object of `NAME: "value"` pairs, as
/// `template.yaml` writes them. Empty values count as unset, like empty
/// environment variables.
pub async fn read(sdk: &SdkConfig, arn: &str) -> Result<BTreeMap<String, String>, SecretError> {
    let answer = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let (code, message) = super::error_parts(&e);
            SecretError::Unreadable {
                arn: arn.to_owned(),
                code,
                message,
            }
        })?;
    let text = answer
        .secret_string()
        .ok_or_else(|| SecretError::Malformed {
            arn: arn.to_owned(),
            reason: MalformedSecret::Binary,
        })?;
    parse(text).map_err(|reason| SecretError::Malformed {
        arn: arn.to_owned(),
        reason,
    })
}

fn parse(text: &str) -> Result<BTreeMap<String, String>, MalformedSecret> {
    let values: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(MalformedSecret::NotJson)?;
    let mut secrets = BTreeMap::new();
    for (name, value) in values {
        match value {
            serde_json::Value::String(v) if v.is_empty() => {}
            serde_json::Value::String(v) => {
                secrets.insert(name, v);
            }
            value => return Err(MalformedSecret::NotAString { name, value }),
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_strings_and_empty_ones_are_unset() {
        let secrets = parse(r#"{"API_KEY": "0123456789abcdef", "LLM_API_KEY": ""}"#).unwrap();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets["API_KEY"], "0123456789abcdef");
        let err = parse(r#"{"API_KEY": 12}"#).unwrap_err();
        assert!(err.to_string().contains("API_KEY"), "{err}");
        assert!(parse("not json").is_err());
    }
}
