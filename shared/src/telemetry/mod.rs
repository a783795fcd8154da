//! Telemetry set-up, in one function. Logs are JSON lines on stderr by
//! default (`MW_LOG_FORMAT=text` for people); the level comes from `RUST_LOG`,
//! or in Lambda from `AWS_LAMBDA_LOG_LEVEL`, else the caller's default.
//! Locally the same lines also go, at `info` and above, to a file under the
//! home folder, which `mw logs` filters. Run trees (spans in the store,
//! exported over OTLP) are in `spans` and `otlp`.
//!
//! Inside a run every line carries the run's context: the work of a run is
//! done inside a [`run_span`] (`run_id`, `project`, `providers_mode`, and
//! where they apply `persona`, `gate`, `provider`, `provider_job_id`,
//! `state`), and [`lines::JsonLines`] writes the fields of every span in
//! scope at the top level of each line, so `mw logs --run-id X --persona p`
//! and CloudWatch Logs Insights filter on them directly.
pub mod lines;
pub mod metrics;
pub mod otlp;
pub mod spans;

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer};

use crate::domain::RunLabels;

/// The span a run's work is done in: its fields are on every line logged
/// inside it. Open it where the work of a run starts (a task, a callback, a
/// decision), then `record` what applies (`persona`, `gate`, `provider`,
/// `provider_job_id`, `state`) as it becomes known.
///
/// At `error` level on purpose: a span's level only decides whether it is
/// enabled, and the context must be there at every level the logs let
/// through (`RUST_LOG=warn` keeps it on the warnings).
pub fn run_span(run: &RunLabels) -> tracing::Span {
    tracing::error_span!(
        "run",
        run_id = %run.run_id,
        project = %run.project,
        providers_mode = %run.providers_mode,
        state = %run.status,
        persona = tracing::field::Empty,
        gate = tracing::field::Empty,
        provider = tracing::field::Empty,
        provider_job_id = tracing::field::Empty,
    )
}

/// The log file under the home folder.
pub fn log_file(home: &Path) -> std::path::PathBuf {
    home.join("logs").join("mw.log")
}

/// The filter `spec` says (`RUST_LOG`'s syntax: `warn`,
/// `myloware=debug,info`; span filters are not supported), else
/// `default_level`. A per-target level filter rather than `EnvFilter`: no
/// regular-expression engine in every binary for a syntax we do not use.
fn targets(spec: &str, default_level: &str) -> Targets {
    spec.parse()
        .or_else(|_| default_level.parse())
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the global subscriber: stderr at the configured level and, when
/// `file` is given (and can be opened), that file at `info` and above. Safe to
/// call more than once (tests): later calls leave the first in place.
pub fn init(default_level: &str, file: Option<&Path>) {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| default_level.to_owned());
    let filter = targets(&filter, default_level);
    let text = matches!(std::env::var("MW_LOG_FORMAT").as_deref(), Ok("text"))
        || matches!(
            std::env::var("AWS_LAMBDA_LOG_FORMAT").as_deref(),
            Ok("Text")
        );
    let stderr = if text {
        fmt::layer().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(lines::JsonLines)
            .boxed()
    };
    let file = file.and_then(|path| {
        crate::private_files::create_dir(path.parent()?).ok()?;
        crate::private_files::append(path).ok()
    });
    let file_layer = file.map(|file| {
        fmt::layer()
            .with_writer(Mutex::new(file))
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(lines::JsonLines)
            .with_filter(LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(file_layer)
        .try_init();
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_level_spec_reads_rust_logs_syntax_and_falls_back_to_the_default() {
        let spec = targets("myloware=debug,warn", "info");
        assert!(spec.would_enable("myloware::engine", &Level::DEBUG));
        assert!(!spec.would_enable("hyper", &Level::INFO));
        assert!(spec.would_enable("hyper", &Level::WARN));
        let fallback = targets("myloware=[{bad", "error");
        assert!(fallback.would_enable("myloware", &Level::ERROR));
        assert!(!fallback.would_enable("myloware", &Level::WARN));
    }
}
