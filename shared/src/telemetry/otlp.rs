//! OTLP/HTTP export of closed spans, JSON encoding
//! (`POST {OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`), so the same run trees
//! show in any OpenTelemetry backend (LangSmith, Langfuse, Jaeger, …).
//!
//! Spans are queued on a bounded channel and sent in batches by a background
//! task: when a batch is full, every [`FLUSH_EVERY`], and on [`flush`]
//! (which the Lambda functions call before an invocation returns). A full
//! queue drops spans rather than slowing a run down; the store keeps them
//! all. Open spans are never exported: OTLP has no notion of them.
//!
//! [`flush`]: OtlpExporter::flush
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::spans::attr;
use crate::domain::{Span, SpanLink, SpanStatus};

/// The OTLP/HTTP endpoint (its root: `/v1/traces` is appended) and the
/// headers sent with every export (API keys: kept secret).
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub headers: Vec<(String, SecretString)>,
}

/// Spans waiting to be sent, at most.
const QUEUE: usize = 4096;
/// Spans per request, at most.
const BATCH: usize = 256;
/// How often queued spans are sent without a flush.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How long one export request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

enum Command {
    Span(Box<Span>),
    Flush(oneshot::Sender<()>),
}

/// The exporter's handle; clones share one background sender.
#[derive(Clone)]
pub struct OtlpExporter {
    queue: mpsc::Sender<Command>,
    url: String,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// Starts the background sender on the current Tokio runtime.
    pub fn start(config: &OtlpConfig) -> Self {
        let url = format!("{}/v1/traces", config.endpoint.trim_end_matches('/'));
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            match (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value.expose_secret()),
            ) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                _ => tracing::warn!(header = %name, "OTLP header left out: not a valid header"),
            }
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .default_headers(headers)
            .build()
            .unwrap_or_default();
        let (queue, commands) = mpsc::channel(QUEUE);
        tokio::spawn(send_batches(client, url.clone(), commands));
        Self { queue, url }
    }

    /// Queues a closed span; drops it (with a warning) when the queue is full.
    pub fn export(&self, span: Span) {
        if span.status == SpanStatus::Open {
            return;
        }
        if let Err(e) = self.queue.try_send(Command::Span(Box::new(span))) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "the export queue is full",
                mpsc::error::TrySendError::Closed(_) => "the exporter has stopped",
            };
            tracing::warn!(reason, "span not exported");
        }
    }

    /// Sends everything queued so far and waits for it (up to the request
    /// timeout).
    pub async fn flush(&self) {
        let (done, sent) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(TIMEOUT + Duration::from_secs(1), sent).await;
        }
    }
}

async fn send_batches(client: reqwest::Client, url: String, mut commands: mpsc::Receiver<Command>) {
    let mut batch: Vec<Span> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= BATCH {
                        send(&client, &url, std::mem::take(&mut batch)).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    send(&client, &url, std::mem::take(&mut batch)).await;
                    let _ = done.send(());
                }
                None => {
                    send(&client, &url, std::mem::take(&mut batch)).await;
                    return;
                }
            },
            _ = tick.tick() => send(&client, &url, std::mem::take(&mut batch)).await,
        }
    }
}

async fn send(client: &reqwest::Client, url: &str, spans: Vec<Span>) {
    if spans.is_empty() {
        return;
    }
    let count = spans.len();
    let body = request_body(&spans);
    let outcome = client
        .post(url)
        .json(&body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match outcome {
        Ok(response) => {
            // Read to the end, so the connection goes back to the pool.
            let _ = response.bytes().await;
            tracing::debug!(spans = count, "spans exported")
        }
        Err(e) => tracing::warn!(spans = count, error = %e, "OTLP export failed"),
    }
}

/// The `ExportTraceServiceRequest` for `spans`, in OTLP's JSON encoding.
pub fn request_body(spans: &[Span]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [kv("service.name", &json!("myloware"))] },
            "scopeSpans": [{
                "scope": { "name": "myloware", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(otlp_span).collect::<Vec<_>>(),
            }],
        }],
    })
}

fn otlp_span(span: &Span) -> Value {
    let mut attributes: Vec<Value> = span.attributes.iter().map(|(k, v)| kv(k, v)).collect();
    if let Some(run_id) = span.run_id {
        attributes.push(kv("myloware.run_id", &json!(run_id.to_string())));
    }
    // Where LangSmith and Langfuse look for a span's input and output.
    if let Some(input) = &span.input {
        attributes.push(kv("input.value", &json!(input.to_string())));
    }
    if let Some(output) = &span.output {
        attributes.push(kv("output.value", &json!(output.to_string())));
    }
    let nanos =
        |t: chrono::DateTime<chrono::Utc>| t.timestamp_nanos_opt().unwrap_or_default().to_string();
    let status = match span.status {
        SpanStatus::Error => {
            json!({ "code": 2, "message": span.error.clone().unwrap_or_default() })
        }
        _ => json!({ "code": 1 }),
    };
    let mut out = json!({
        "traceId": span.trace_id.to_string(),
        "spanId": span.span_id.to_string(),
        "name": span.name,
        "kind": 1,
        "startTimeUnixNano": nanos(span.start_time),
        "endTimeUnixNano": nanos(span.end_time.unwrap_or(span.start_time)),
        "attributes": attributes,
        "status": status,
    });
    if let Some(parent) = span.parent_span_id {
        out["parentSpanId"] = json!(parent.to_string());
    }
    if let Some(link) = started_from(span) {
        out["links"] = json!([{
            "traceId": link.trace_id.to_string(),
            "spanId": link.span_id.to_string(),
            "attributes": [kv("myloware.link", &json!("started_from_chat_turn"))],
        }]);
    }
    out
}

/// The chat turn a graph span was started from, as its attributes name it.
pub fn started_from(span: &Span) -> Option<SpanLink> {
    let text = |key: &str| span.attributes.get(key)?.as_str();
    Some(SpanLink {
        trace_id: text(attr::STARTED_FROM_TRACE)?.parse().ok()?,
        span_id: text(attr::STARTED_FROM_SPAN)?.parse().ok()?,
    })
}

/// One `KeyValue`: strings, integers, floats and booleans as themselves,
/// anything else as its JSON text.
fn kv(key: &str, value: &Value) -> Value {
    let value = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n.as_f64() }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewSpan, RunId, SpanEnd, SpanId, TraceId};

    #[test]
    fn spans_encode_as_otlp_json() {
        let run = RunId::new();
        let span = Span::opened(
            NewSpan::in_run(run, "aismr:iggy")
                .parent(SpanId::graph(run))
                .attr("gen_ai.operation.name", "invoke_agent")
                .attr("gen_ai.usage.input_tokens", 42),
        )
        .closed(SpanEnd::error("boom"));
        let body = request_body(std::slice::from_ref(&span));
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "myloware"}})
        );
        let out = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(out["traceId"], json!(run.as_uuid().simple().to_string()));
        assert_eq!(out["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(out["parentSpanId"], json!(SpanId::graph(run).to_string()));
        assert_eq!(out["status"], json!({"code": 2, "message": "boom"}));
        assert!(out["startTimeUnixNano"].is_string());
        let start: u128 = out["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = out["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(end >= start);
        let attrs = out["attributes"].as_array().unwrap();
        assert!(attrs
            .contains(&json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}})));
        assert!(attrs.contains(
            &json!({"key": "myloware.run_id", "value": {"stringValue": run.to_string()}})
        ));
        assert!(out.get("links").is_none(), "no link without a chat turn");
    }

    #[test]
    fn a_graph_span_started_from_a_chat_turn_links_to_it() {
        let run = RunId::new();
        let (chat_trace, chat_span) = (TraceId::random(), SpanId::random());
        let span = Span::opened(
            NewSpan::in_run(run, "aismr-graph")
                .id(SpanId::graph(run))
                .attr(attr::STARTED_FROM_TRACE, chat_trace.to_string())
                .attr(attr::STARTED_FROM_SPAN, chat_span.to_string()),
        )
        .closed(SpanEnd::ok(None));
        assert_eq!(
            started_from(&span),
            Some(SpanLink {
                trace_id: chat_trace,
                span_id: chat_span
            })
        );
        let body = request_body(std::slice::from_ref(&span));
        let out = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(out["links"][0]["traceId"], json!(chat_trace.to_string()));
        assert_eq!(out["links"][0]["spanId"], json!(chat_span.to_string()));
        assert_eq!(out["links"].as_array().unwrap().len(), 1);
    }
}
