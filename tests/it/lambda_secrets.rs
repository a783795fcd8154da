//! A Lambda function's secrets on the AWS emulator: the function reads its
//! own secret from Secrets Manager at cold start and overlays its values on
//! the environment; what it does not hold it never gets, whatever the
//! environment says; a secret it cannot read, or one that lacks a value its
//! code uses, stops it at start with an error naming the secret.
use std::collections::BTreeMap;

use myloware::domain::ProvidersMode;
use myloware::lambda::{Function, StartupError};
use myloware_tests::aws::emulator;
use secrecy::ExposeSecret;
use serde_json::json;

/// Stores `values` as a new secret; answers its ARN.
async fn secret(sdk: &aws_config::SdkConfig, values: serde_json::Value) -> String {
    let name = format!("mw-test-{}", uuid::Uuid::new_v4().simple());
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(values.to_string())
        .send()
        .await
        .expect("create the secret")
        .arn()
        .expect("its ARN")
        .to_owned()
}

fn environment(dir: &std::path::Path) -> impl Fn(&str) -> Option<String> {
    let vars: BTreeMap<&str, String> = [
        ("MYLOWARE_HOME", dir.display().to_string()),
        ("PROVIDERS_MODE", "live".to_owned()),
        ("PUBLIC_BASE_URL", "https://api.example.test".to_owned()),
        // An environment that still carries keys: a function takes none of them.
        ("KIEAI_API_KEY", "from-the-environment".to_owned()),
        ("API_KEY", "from-the-environment-0123456789".to_owned()),
    ]
    .into_iter()
    .collect();
    move |name| vars.get(name).cloned()
}

#[tokio::test]
async fn a_function_reads_its_own_secret_and_holds_nothing_else() {
    let Some(emulator) = emulator().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let arn = secret(
        &emulator.sdk,
        json!({
            "HITL_SECRET": "hitl-secret-0123456789abcdef",
            "KIEAI_WEBHOOK_SECRET": "kieai-webhook-0123456789abcdef",
            "UPLOAD_POST_WEBHOOK_SECRET": "upload-post-webhook-0123456789",
            "OTEL_EXPORTER_OTLP_HEADERS": "",
        }),
    )
    .await;
    let config = Function::Webhook
        .with_secret(&emulator.sdk, &arn, environment(dir.path()))
        .await
        .expect("the webhook function's config");
    assert_eq!(
        config.kieai_webhook_secret.expose_secret(),
        "kieai-webhook-0123456789abcdef"
    );
    assert_eq!(
        config.hitl_secret.expose_secret(),
        "hitl-secret-0123456789abcdef"
    );
    assert_eq!(config.providers_mode, ProvidersMode::Live);
    // The internet-facing function holds no provider or LLM key, even in live mode.
    assert!(config.kieai_api_key.is_none());
    assert!(config.shotstack_api_key.is_none());
    assert!(config.upload_post_api_key.is_none());
    assert!(config.otlp.is_none());
    assert_ne!(
        config.api_key.expose_secret(),
        "from-the-environment-0123456789"
    );
    assert!(
        !dir.path().join("secrets.env").exists(),
        "nothing generated on Lambda"
    );
}

#[tokio::test]
async fn a_missing_or_incomplete_secret_stops_the_function_naming_it() {
    let Some(emulator) = emulator().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mw-absent-AbCdEf";
    let err = Function::Runs
        .with_secret(&emulator.sdk, missing, environment(dir.path()))
        .await
        .expect_err("no such secret");
    assert!(matches!(err, StartupError::Secret(_)), "{err:?}");
    assert!(err.to_string().contains(missing), "{err}");

    let arn = secret(
        &emulator.sdk,
        json!({"API_KEY": "api-key-0123456789abcdef"}),
    )
    .await;
    let err = Function::Worker
        .with_secret(&emulator.sdk, &arn, environment(dir.path()))
        .await
        .expect_err("the worker's secret lacks its keys");
    let message = err.to_string();
    assert!(message.contains(&arn), "{message}");
    assert!(
        message.contains("HITL_SECRET") || message.contains("KIEAI_API_KEY"),
        "{message}"
    );
}
