//! Telemetry set-up, in one function. Logs are JSON lines on stderr by
//! default (`MW_LOG_FORMAT=text` for people); the level comes from `RUST_LOG`,
//! or in Lambda from `AWS_LAMBDA_LOG_LEVEL`, else the caller's default.
pub mod metrics;

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Safe to call more than once (tests): later
/// calls leave the first subscriber in place.
pub fn init(default_level: &str) {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| default_level.to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default_level));
    let text = matches!(std::env::var("MW_LOG_FORMAT").as_deref(), Ok("text"))
        || matches!(
            std::env::var("AWS_LAMBDA_LOG_FORMAT").as_deref(),
            Ok("Text")
        );
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
}
