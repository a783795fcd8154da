//! What the AWS adapters share: the SDK's configuration and its errors, and
//! Secrets Manager for a Lambda function's own secret (`secrets`). The
//! adapters live beside their ports (`engine::stepfunctions`, `queue::sqs`,
//! `store::dynamodb`). Every client is built from one SDK configuration, so `AWS_ENDPOINT_URL` (an emulator such
//! as moto's server), the region and the credentials apply to all of them.
pub mod secrets;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata};

/// The SDK configuration from the environment: `AWS_ENDPOINT_URL`,
/// `AWS_REGION`, credentials, profiles — as every AWS tool reads them.
/// Loaded once per process (the store, the engine and the queues share it,
/// and a Lambda function's cold start reads its environment once).
pub async fn sdk_config() -> SdkConfig {
    static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    CONFIG.get_or_init(|| loader().load()).await.clone()
}

/// The SDK's configuration loader with our HTTP client: rustls with ring as
/// its cryptography, the TLS stack reqwest uses for the providers, so one TLS
/// implementation is linked (the SDK's default client brings aws-lc). Start
/// here to configure the SDK differently (an emulator's endpoint, fixed
/// credentials).
pub fn loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry_config())
}

/// The SDK's retries for every AWS call (the Step Functions calls that move
/// runs forward retry in `engine::stepfunctions` instead): the standard mode's throttle-aware
/// backoff with jitter, with `SDK_ATTEMPTS` tries rather than its default
/// 3 — at 10,000 runs in flight DynamoDB and SQS throttle for seconds, and a
/// throttle absorbed here is a task not failed or a request not refused.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(SDK_ATTEMPTS)
        .with_max_backoff(std::time::Duration::from_secs(5))
}

/// Tries of each AWS call by the SDK.
pub const SDK_ATTEMPTS: u32 = 6;

/// An AWS API error as `(code, message)`: the service's error code when it
/// answered (`ExecutionAlreadyExists`, `QueueDoesNotExist`, …), else
/// `Unreachable` with what the SDK knows (no answer, timeout). Never carries
/// credentials: the SDK's messages do not include them.
pub(crate) fn error_parts<E>(err: &E) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match err.code() {
        Some(code) => (
            code.to_owned(),
            err.message().unwrap_or("no message").to_owned(),
        ),
        None => (
            "Unreachable".to_owned(),
            DisplayErrorContext(err).to_string(),
        ),
    }
}
