//! The run-tree recorder: writes each span to the store when it opens and
//! again when it closes (so a stuck run shows what is still open), and hands
//! closed spans to the OTLP exporter when one is configured. The agent loop's
//! LLM and tool calls are recorded through it by `personas::agent::AgentSpans`.
//!
//! Recording never fails the work it watches: a span the store refuses is
//! logged and the run carries on.
//!
//! The tree of a run (trace id = the run id):
//! ```text
//! <project>-graph                      SpanId::graph(run)      start_run … run ends
//! ├─ <project>:<persona>               SpanId::persona(…)      worker … task completes
//! │  ├─ chat <model>                   random                  one LLM call
//! │  └─ execute_tool <tool>            random                  one tool call
//! └─ <project>:gate:<gate>             SpanId::gate(run, gate) gate task … decision
//! ```
//! A chat turn is `brendan-chat` in a trace of its own, with its LLM and tool
//! calls under it; it names the runs it started (`myloware.run_ids`), and
//! each such run's graph span links back to it (`myloware.started_from.*`,
//! exported as an OTLP span link).
use std::sync::Arc;

use serde_json::{json, Value};

use super::otlp::OtlpExporter;
use crate::domain::{NewSpan, RunId, Span, SpanEnd, SpanId, SpanStatus, TraceId};
use crate::store::{Store, StoreError};

/// OpenTelemetry GenAI attribute names.
pub mod attr {
    pub const OPERATION: &str = "gen_ai.operation.name";
    pub const AGENT: &str = "gen_ai.agent.name";
    pub const TOOL: &str = "gen_ai.tool.name";
    pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    pub const RUN_ID: &str = "myloware.run_id";
    pub const PROJECT: &str = "myloware.project";
    pub const GATE: &str = "myloware.gate";
    /// The chat turn a run was started from (on its graph span; exported
    /// as an OTLP link too).
    pub const STARTED_FROM_TRACE: &str = "myloware.started_from.trace_id";
    pub const STARTED_FROM_SPAN: &str = "myloware.started_from.span_id";
    /// On a replay's graph span: the job code of the run it replays, and
    /// the state it started at.
    pub const REPLAY_OF: &str = "myloware.replay_of";
    pub const REPLAY_FROM: &str = "myloware.replay_from";
}

/// Inputs and outputs above this many bytes of JSON are kept as a preview.
const MAX_PAYLOAD: usize = 16 * 1024;

/// `value`, or a preview of it when its JSON is larger than `MAX_PAYLOAD`.
/// The common small value is measured without being written out.
pub fn bounded(value: Value) -> Value {
    if fits(&value, MAX_PAYLOAD) {
        return value;
    }
    let text = value.to_string();
    let mut end = MAX_PAYLOAD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "truncated": true, "bytes": text.len(), "preview": &text[..end] })
}

/// Whether `value`'s JSON takes at most `limit` bytes; stops counting once
/// past it.
fn fits(value: &Value, limit: usize) -> bool {
    struct Count {
        bytes: usize,
        limit: usize,
    }
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes += buf.len();
            if self.bytes > self.limit {
                return Err(std::io::ErrorKind::FileTooLarge.into());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Count { bytes: 0, limit }, value).is_ok()
}

/// Records spans in the store and exports the closed ones.
#[derive(Debug, Clone)]
pub struct Tracer {
    store: Arc<dyn Store>,
    exporter: Option<OtlpExporter>,
}

impl Tracer {
    pub fn new(store: Arc<dyn Store>, exporter: Option<OtlpExporter>) -> Self {
        Self { store, exporter }
    }

    /// Opens `span`; one already open under the same ids (a repeated task
    /// message) is left as it is.
    pub async fn open(&self, span: NewSpan) {
        let (trace_id, span_id, name) = (span.trace_id, span.span_id, span.name.clone());
        match self.store.open_span(span).await {
            Ok(_) => {}
            Err(StoreError::Duplicate { .. }) => {
                tracing::debug!(%trace_id, %span_id, span = %name, "span already open");
            }
            Err(e) => {
                tracing::warn!(%trace_id, %span_id, span = %name, error = %e, "could not record span")
            }
        }
    }

    /// Records a span that ended before it was written, in one write, and
    /// exports it.
    pub async fn record(&self, span: Span) {
        let (trace_id, span_id) = (span.trace_id, span.span_id);
        match self.store.record_span(span).await {
            Ok(span) => self.export(span),
            Err(StoreError::Duplicate { .. }) => {
                tracing::debug!(%trace_id, %span_id, "span already recorded")
            }
            Err(e) => tracing::warn!(%trace_id, %span_id, error = %e, "could not record span"),
        }
    }

    /// Closes a span (once: a later close changes nothing) and exports it.
    pub async fn close(&self, trace_id: TraceId, span_id: SpanId, end: SpanEnd) {
        let (status, end_time) = (end.status, end.end_time);
        match self.store.close_span(trace_id, span_id, end).await {
            Ok(span) => {
                // Exported by whoever closed it: the stored close is ours when
                // it is the one we asked for.
                let ours = span.status == status
                    && span.end_time.is_some_and(|t| {
                        (t - end_time).num_microseconds().unwrap_or(i64::MAX).abs() < 1
                    });
                if ours {
                    self.export(span);
                }
            }
            Err(StoreError::NotFound { .. }) => {
                tracing::debug!(%trace_id, %span_id, "closing a span that was never opened")
            }
            Err(e) => tracing::warn!(%trace_id, %span_id, error = %e, "could not close span"),
        }
    }

    /// Closes every span of `run_id`'s trace still open (the run ended: a
    /// persona or gate it was waiting on will not finish now), then its
    /// graph span with `end`.
    pub async fn end_run(&self, run_id: RunId, end: SpanEnd) {
        let trace_id = TraceId::of_run(run_id);
        let graph = SpanId::graph(run_id);
        let spans = match self.store.list_open_spans(trace_id).await {
            Ok(spans) => spans,
            Err(e) => {
                tracing::warn!(run_id = %run_id, error = %e, "could not read the run's spans");
                Vec::new()
            }
        };
        let reason = end
            .error
            .clone()
            .or_else(|| end.output.as_ref().map(|o| format!("run ended: {o}")));
        for span in spans.iter().filter(|s| s.span_id != graph) {
            let mut leftover = SpanEnd::error(
                reason
                    .clone()
                    .unwrap_or_else(|| "the run ended first".into()),
            );
            if end.status == SpanStatus::Ok {
                leftover = SpanEnd::ok(None);
            }
            self.close(trace_id, span.span_id, leftover).await;
        }
        self.close(trace_id, graph, end).await;
    }

    /// The spans of a trace, for `mw trace` and evidence.
    pub async fn list(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        self.store.list_spans(trace_id).await
    }

    fn export(&self, span: Span) {
        if let Some(exporter) = &self.exporter {
            exporter.export(span);
        }
    }

    /// Sends every closed span not yet exported; call before an invocation
    /// returns (a frozen Lambda sends nothing).
    pub async fn flush(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_up_to_the_limit_are_kept_whole_and_larger_ones_previewed() {
        // `{"s":"…"}`: 8 bytes around the text.
        let of_size = |bytes: usize| json!({ "s": "x".repeat(bytes - 8) });
        let at_limit = of_size(MAX_PAYLOAD);
        assert_eq!(at_limit.to_string().len(), MAX_PAYLOAD);
        assert_eq!(bounded(at_limit.clone()), at_limit);

        let over = bounded(of_size(MAX_PAYLOAD + 1));
        assert_eq!(over["truncated"], true);
        assert_eq!(over["bytes"], MAX_PAYLOAD + 1);
        assert_eq!(over["preview"].as_str().unwrap().len(), MAX_PAYLOAD);

        // A preview never splits a character.
        let wide = bounded(json!({ "s": "é".repeat(MAX_PAYLOAD) }));
        let preview = wide["preview"].as_str().unwrap();
        assert!(preview.len() <= MAX_PAYLOAD && preview.len() >= MAX_PAYLOAD - 1);
    }
}
