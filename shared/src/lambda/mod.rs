//! What the Lambda functions share, so each `main.rs` only wires: the
//! pipeline built once per cold start, SQS batches handled with partial
//! batch failures (a failed record is reported by id and comes back, up to
//! the queue's redrive limit, then lands in its dead-letter queue), and
//! after each invocation the spans flushed to OTLP and the metrics that
//! changed printed as CloudWatch EMF lines. Each function's config comes
//! with its own secret (`Function::config`).
mod function;

use std::io::Write;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::queue::sqs::SqsQueue;

use crate::api::AppState;
use crate::pipeline::Pipeline;
use crate::queue::MessageHandler;
use crate::wiring::{self, StackError};
use crate::Config;

pub use function::{Function, StartupError};

/// The pipeline on the configured store and engine. Functions are reached
/// through API Gateway, so `PUBLIC_BASE_URL` (its URL) is required.
pub async fn pipeline(config: &Config) -> Result<Pipeline, StackError> {
    let public = config.public_base_url.clone().ok_or_else(|| {
        StackError::Setup("PUBLIC_BASE_URL is required for the functions: the API's URL".into())
    })?;
    let (pipeline, _engine) = wiring::core(config, public, config.provider_urls.clone()).await?;
    Ok(pipeline)
}

/// The state the HTTP functions' routers need.
pub async fn app_state(config: &Config) -> Result<AppState, StackError> {
    Ok(AppState {
        pipeline: pipeline(config).await?,
        api_key: config.api_key.clone(),
    })
}

/// Serves an HTTP function behind API Gateway: `router` over the function's
/// state, with errors as JSON and telemetry flushed after each request.
/// The API's public URL (approval links, provider callbacks) is
/// `PUBLIC_BASE_URL` when set (a custom domain); otherwise the domain API
/// Gateway was called at, from the first request's context (API Gateway
/// sets it, not the caller): the template cannot hand a function the URL of
/// the API it is attached to (a circular dependency), and a second deploy
/// to fill it in would be undone by the next one.
pub async fn serve_http(
    config: Config,
    router: fn(AppState) -> axum::Router,
) -> Result<(), lambda_http::Error> {
    use tower::ServiceExt;
    if let Some(public) = config.public_base_url.clone() {
        return lambda_http::run(http_app(&config, public, router).await?).await;
    }
    let app = tokio::sync::OnceCell::new();
    let (config, app) = (&config, &app);
    lambda_http::run(lambda_http::service_fn(
        move |request: lambda_http::Request| async move {
            let app = app
                .get_or_try_init(|| async {
                    let public = called_at(&request).ok_or_else(|| {
                        StackError::Setup(
                            "PUBLIC_BASE_URL is not set and the request names no API Gateway domain"
                                .into(),
                        )
                    })?;
                    tracing::info!(public_base_url = %public, "the API's URL, from the request");
                    http_app(config, public, router).await
                })
                .await?;
            let response = app.clone().oneshot(request).await;
            Ok::<_, lambda_http::Error>(response.unwrap_or_else(|never| match never {}))
        },
    ))
    .await
}

/// `https://<domain>` of the API Gateway domain a request was sent to.
fn called_at(request: &lambda_http::Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    #[allow(unreachable_patterns)]
    let domain = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.domain_name.clone(),
        _ => None,
    }?;
    Some(format!("https://{domain}"))
}

async fn http_app(
    config: &Config,
    public_base_url: String,
    router: fn(AppState) -> axum::Router,
) -> Result<axum::Router, StackError> {
    let (pipeline, _engine) =
        wiring::core(config, public_base_url, config.provider_urls.clone()).await?;
    let tracer = pipeline.tracer.clone();
    let state = AppState {
        pipeline,
        api_key: config.api_key.clone(),
    };
    Ok(flushing_telemetry(
        crate::api::json_errors(router(state)),
        tracer,
    ))
}

/// Writes to `out` the CloudWatch embedded-metric-format lines of the
/// metrics that changed since the last flush (namespace `MyloWare`,
/// dimensions their labels plus `function`: `AWS_LAMBDA_FUNCTION_NAME`).
/// On stdout, Lambda's log stream, CloudWatch turns them into metrics.
pub fn flush_metrics(out: &mut impl Write) {
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "unknown".to_owned());
    for line in crate::telemetry::metrics::emf_lines(&function) {
        if let Err(e) = writeln!(out, "{line}") {
            tracing::warn!(error = %e, "could not write the metrics");
            return;
        }
    }
    let _ = out.flush();
}

/// `router`, sending the spans closed while serving each request to the
/// OTLP endpoint before the response is returned, and printing the
/// metrics it changed (`flush_metrics`): a Lambda is frozen once it
/// answers, so nothing may be left queued.
pub fn flushing_telemetry(
    router: axum::Router,
    tracer: crate::telemetry::spans::Tracer,
) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let tracer = tracer.clone();
            async move {
                let response = next.run(request).await;
                tracer.flush().await;
                flush_metrics(&mut std::io::stdout().lock());
                response
            }
        },
    ))
}

/// How a function handles an SQS batch: how many records at once, by when
/// it must answer, how a failed record comes back, and where records from a
/// dead-letter queue go.
#[derive(Clone, Copy, Default)]
pub struct BatchOptions<'a> {
    /// Records handled at once (at least 1).
    pub concurrency: usize,
    /// When the batch must be answered: records still running then are
    /// reported as failures (they come back) rather than the function
    /// timing out and the whole batch coming back.
    pub deadline: Option<std::time::Instant>,
    /// Shortens a failed record's visibility (`SqsQueue::retry_later`), so
    /// it comes back after a few seconds instead of the queue's visibility
    /// timeout.
    pub sqs: Option<&'a SqsQueue>,
    /// For a function that also consumes its queue's dead-letter queue: the
    /// main queue's name, and the handler of records from any other queue.
    pub dead_letters: Option<(&'a str, &'a dyn MessageHandler)>,
}

impl std::fmt::Debug for BatchOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOptions")
            .field("concurrency", &self.concurrency)
            .field("deadline", &self.deadline)
            .field("sqs", &self.sqs.is_some())
            .field("dead_letters", &self.dead_letters.map(|(main, _)| main))
            .finish()
    }
}

/// Time kept back from a function's deadline to report the batch.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Records the callbacks function handles at once: a batch's ten, each
/// waiting mostly on a provider's API, within its 60 s.
pub const CALLBACK_CONCURRENCY: usize = 10;

impl<'a> BatchOptions<'a> {
    /// The options of an invocation whose deadline is `deadline_ms`
    /// (milliseconds since the epoch, as Lambda's context gives it): that
    /// deadline less `DEADLINE_MARGIN`, and an SQS client for the retry
    /// delays. A deadline already past when the batch arrives is not one
    /// (`cargo lambda watch` sends its timeout there, not a time): the batch
    /// is handled without a cut-off rather than every record failed untried.
    pub fn for_invocation(deadline_ms: u64, concurrency: usize, sqs: &'a SqsQueue) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let deadline = match deadline_ms.checked_sub(now_ms) {
            Some(left) => Some(
                std::time::Instant::now()
                    + std::time::Duration::from_millis(left).saturating_sub(DEADLINE_MARGIN),
            ),
            None => {
                tracing::warn!(
                    deadline_ms,
                    now_ms,
                    "the invocation's deadline has passed already: the batch is handled without one"
                );
                None
            }
        };
        Self {
            concurrency,
            deadline,
            sqs: Some(sqs),
            dead_letters: None,
        }
    }
}

/// One SQS event as the worker and callbacks functions handle it: every
/// record (`sqs_batch`), then the spans the batch closed sent to the OTLP
/// endpoint and the metrics it changed printed (`flush_metrics`), since the
/// function is frozen once it answers.
pub async fn sqs_event(
    handler: &dyn MessageHandler,
    pipeline: &Pipeline,
    event: SqsEvent,
    options: BatchOptions<'_>,
) -> SqsBatchResponse {
    let response = sqs_batch(handler, event, options).await;
    pipeline.tracer.flush().await;
    flush_metrics(&mut std::io::stdout().lock());
    response
}

/// The input the reconciler's schedule sends the callbacks function
/// (`template.yaml`): `{"reconcile": true}`.
pub const RECONCILE_EVENT_KEY: &str = "reconcile";

/// The input the pruning schedule sends the callbacks function
/// (`template.yaml`): `{"prune": {"retention_days": N}}`.
pub const PRUNE_EVENT_KEY: &str = "prune";

/// What the pruning schedule asks for.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Finished runs last updated longer ago than this are deleted, with
    /// everything recorded for them (`Store::prune`).
    pub retention_days: u32,
}

/// The `detail-type` of the EventBridge events Step Functions sends when an
/// execution changes status (`template.yaml` routes FAILED, TIMED_OUT and
/// ABORTED ones to the callbacks function).
pub const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// Why the callbacks function could not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum CallbacksEventError {
    #[error("the pruning schedule's input: {0}")]
    PruneInput(serde_json::Error),
    #[error("the pruning schedule's retention_days must be at least 1")]
    NoRetention,
    #[error("an execution status change without its detail: {0}")]
    StatusChangeDetail(serde_json::Error),
    #[error(
        "neither an SQS event, the reconciler's or pruning schedule nor an execution status change: {0}"
    )]
    Unknown(serde_json::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
}

/// What the callbacks function is invoked with: an SQS batch from the
/// callback queue; the reconciler's schedule (`{"reconcile": true}`), which
/// sweeps the jobs whose callback is overdue and starts the runs whose start
/// was throttled; or Step Functions' "Execution Status Change" event, which
/// records a run whose execution ended outside the graph's `Catch` (timed
/// out, aborted); or the pruning schedule (`{"prune": {"retention_days": N}}`).
/// Answers the batch's item failures, or the report.
pub async fn callbacks_event(
    handler: &dyn MessageHandler,
    pipeline: &Pipeline,
    event: serde_json::Value,
    options: BatchOptions<'_>,
) -> Result<serde_json::Value, CallbacksEventError> {
    if let Some(request) = event.get(PRUNE_EVENT_KEY) {
        let request: PruneRequest =
            serde_json::from_value(request.clone()).map_err(CallbacksEventError::PruneInput)?;
        if request.retention_days == 0 {
            return Err(CallbacksEventError::NoRetention);
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::days(request.retention_days.into());
        let report = pipeline.store.prune(cutoff).await?;
        tracing::info!(
            retention_days = request.retention_days,
            runs = report.runs,
            artifacts = report.artifacts,
            webhook_events = report.webhook_events,
            "pruned the finished runs past their retention"
        );
        return Ok(serde_json::to_value(report).unwrap_or_default());
    }
    if event.get(RECONCILE_EVENT_KEY).is_some() {
        let report = pipeline.reconcile_due_jobs(chrono::Utc::now()).await;
        let started = pipeline.start_queued_runs(chrono::Utc::now()).await;
        pipeline.tracer.flush().await;
        flush_metrics(&mut std::io::stdout().lock());
        let mut report = serde_json::to_value(report?).unwrap_or_default();
        report["queued_runs_started"] = serde_json::json!(started?);
        return Ok(report);
    }
    if event.get("detail-type").and_then(serde_json::Value::as_str) == Some(EXECUTION_STATUS_CHANGE)
    {
        let change: crate::pipeline::ExecutionStatusChange =
            serde_json::from_value(event["detail"].clone())
                .map_err(CallbacksEventError::StatusChangeDetail)?;
        let recorded = pipeline.record_execution_end(&change).await;
        pipeline.tracer.flush().await;
        flush_metrics(&mut std::io::stdout().lock());
        return Ok(serde_json::json!({ "run": recorded? }));
    }
    let event: SqsEvent = serde_json::from_value(event).map_err(CallbacksEventError::Unknown)?;
    let response = sqs_event(handler, pipeline, event, options).await;
    Ok(serde_json::to_value(response).unwrap_or_default())
}

/// The name in a queue's URL or ARN (its last `/` or `:` part).
pub fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

/// Handles the records of an SQS batch, `options.concurrency` at a time;
/// the ones that failed (or were still running at `options.deadline`) are
/// reported as batch item failures, and come back after a short delay that
/// grows with their receive count (`options.sqs`), not the queue's
/// visibility timeout.
pub async fn sqs_batch(
    handler: &dyn MessageHandler,
    event: SqsEvent,
    options: BatchOptions<'_>,
) -> SqsBatchResponse {
    use futures::StreamExt;
    let one = |record: SqsMessage| async move {
        let id = record.message_id.clone().unwrap_or_default();
        let from_dlq = options.dead_letters.and_then(|(main, dead)| {
            let source = record.event_source_arn.as_deref().unwrap_or_default();
            (queue_name(source) != main).then_some(dead)
        });
        let handling = async {
            match record.body.as_deref() {
                Some(body) => from_dlq.unwrap_or(handler).handle(body).await,
                None => Err(crate::queue::HandlerError::permanent(
                    "an SQS record without a body",
                )),
            }
        };
        let outcome = match options.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), handling).await {
                Ok(outcome) => outcome,
                Err(_) => Err(crate::queue::HandlerError::retryable(
                    "not handled before the function's deadline",
                )),
            },
            None => handling.await,
        };
        (record, id, outcome)
    };
    let outcomes: Vec<_> = futures::stream::iter(event.records)
        .map(one)
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (record, id, outcome) in outcomes {
        let Err(err) = outcome else { continue };
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        tracing::error!(message_id = %id, receive_count, retryable = err.retryable, error = %err, "SQS record failed");
        crate::telemetry::metrics::count(
            "mw_sqs_records_failed_total",
            "SQS records reported as batch item failures (they come back, or go to the dead-letter queue).",
            &[("retryable", if err.retryable { "true" } else { "false" })],
        );
        if let (Some(sqs), Some(arn), Some(receipt)) = (
            options.sqs,
            record.event_source_arn.as_deref(),
            record.receipt_handle.as_deref(),
        ) {
            match sqs.queue_url_of_arn(arn).await {
                Ok(url) => sqs.retry_later(&url, receipt, receive_count).await,
                Err(e) => {
                    tracing::warn!(error = %e, "no queue URL for the retry delay; the queue's visibility timeout applies")
                }
            }
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::queue::HandlerError;

    struct FailsOnBad(AtomicUsize);

    #[async_trait]
    impl MessageHandler for FailsOnBad {
        async fn handle(&self, body: &str) -> Result<(), HandlerError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if body.contains("bad") {
                Err(HandlerError::retryable("bad record"))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn failed_records_are_reported_by_message_id() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../tests/fixtures/sqs-event.json")).unwrap();
        let handler = FailsOnBad(AtomicUsize::new(0));
        let options = BatchOptions {
            concurrency: 3,
            ..BatchOptions::default()
        };
        let response = sqs_batch(&handler, event, options).await;
        assert_eq!(handler.0.load(Ordering::SeqCst), 3);
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
        let metrics = crate::telemetry::metrics::render();
        assert!(
            metrics.contains("mw_sqs_records_failed_total{retryable=\"true\"}"),
            "{metrics}"
        );
    }

    #[test]
    fn the_public_url_is_the_domain_api_gateway_was_called_at() {
        let request = lambda_http::request::from_str(include_str!(
            "../../../tests/fixtures/events/http-api-get-health.json"
        ))
        .unwrap();
        assert_eq!(
            called_at(&request).as_deref(),
            Some("https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com")
        );
    }

    #[test]
    fn an_invocation_ends_with_the_emf_lines_of_what_it_changed() {
        let name = "mw_test_lambda_flush_total";
        let ours = |out: &[u8]| -> Vec<serde_json::Value> {
            String::from_utf8(out.to_vec())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
                .filter(|l| l.get(name).is_some())
                .collect()
        };
        crate::telemetry::metrics::count_n(name, "Test.", &[("provider", "kieai")], 3);
        let mut out = Vec::new();
        flush_metrics(&mut out);
        let lines = ours(&out);
        assert_eq!(lines.len(), 1, "{}", String::from_utf8_lossy(&out));
        let line = &lines[0];
        assert_eq!(line[name], 3.0);
        assert_eq!(line["provider"], "kieai");
        assert!(line["function"].is_string(), "{line}");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "MyloWare");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["function", "provider"]])
        );
        assert_eq!(directive["Metrics"][0]["Name"], name);
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 1_600_000_000_000);

        let mut again = Vec::new();
        flush_metrics(&mut again);
        assert!(ours(&again).is_empty(), "sent once");
        crate::telemetry::metrics::count_n(name, "Test.", &[("provider", "kieai")], 1);
        let mut third = Vec::new();
        flush_metrics(&mut third);
        assert_eq!(ours(&third)[0][name], 1.0, "the increase, not the total");
    }

    #[test]
    fn a_deadline_already_past_is_no_deadline() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let sqs = SqsQueue::new(&sdk);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;

        // Lambda's: a time 30 s ahead, less the margin kept to answer.
        let options = BatchOptions::for_invocation(now_ms + 30_000, 1, &sqs);
        let left = options.deadline.expect("a deadline") - std::time::Instant::now();
        assert!(
            left <= std::time::Duration::from_secs(27) && left > std::time::Duration::from_secs(25),
            "{left:?}"
        );
        // `cargo lambda watch`'s: its 600 s timeout where the time should be.
        let options = BatchOptions::for_invocation(600_000, 1, &sqs);
        assert!(options.deadline.is_none());
    }
}
