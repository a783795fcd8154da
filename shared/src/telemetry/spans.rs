//! The run-tree recorder: writes each span to the store when it opens and
//! again when it closes (so a stuck run shows what is still open), and hands
//! closed spans to the OTLP exporter when one is configured.
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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::otlp::OtlpExporter;
use crate::domain::{NewSpan, RunId, Span, SpanEnd, SpanId, SpanStatus, TraceId};
use crate::personas::agent::{AgentObserver, LlmCallEnded, LlmCallStarted, ToolCallStarted};
use crate::personas::{Agent, ToolCallRecord};
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
}

/// Inputs and outputs above this many bytes of JSON are kept as a preview.
const MAX_PAYLOAD: usize = 16 * 1024;

/// `value`, or a preview of it when its JSON is larger than `MAX_PAYLOAD`.
pub fn bounded(value: Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_PAYLOAD {
        return value;
    }
    let mut end = MAX_PAYLOAD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "truncated": true, "bytes": text.len(), "preview": &text[..end] })
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

    /// An observer that records an agent loop's LLM and tool calls under
    /// `parent`.
    pub fn agent_observer(
        &self,
        trace_id: TraceId,
        run_id: Option<RunId>,
        parent: SpanId,
    ) -> AgentSpans {
        AgentSpans {
            tracer: self.clone(),
            trace_id,
            run_id,
            parent,
            open: Mutex::new(HashMap::new()),
        }
    }
}

/// Records each LLM call and tool call of one agent run as a span.
#[derive(Debug)]
pub struct AgentSpans {
    tracer: Tracer,
    trace_id: TraceId,
    run_id: Option<RunId>,
    parent: SpanId,
    open: Mutex<HashMap<String, SpanId>>,
}

impl AgentSpans {
    fn child(&self, name: String) -> NewSpan {
        NewSpan {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            parent_span_id: Some(self.parent),
            run_id: self.run_id,
            name,
            attributes: Default::default(),
            input: None,
            start_time: chrono::Utc::now(),
        }
    }

    fn remember(&self, key: String, span_id: SpanId) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, span_id);
    }

    fn take(&self, key: &str) -> Option<SpanId> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }
}

#[async_trait]
impl AgentObserver for AgentSpans {
    async fn llm_call_started(&self, call: &LlmCallStarted<'_>) {
        let last = call.request.messages.last();
        let tools: Vec<&str> = call.request.tools.iter().map(|t| t.name.as_str()).collect();
        let span = self
            .child("chat".into())
            .attr(attr::OPERATION, "chat")
            .attr(attr::AGENT, call.persona.as_str())
            .attr("myloware.turn", call.turn)
            .input(bounded(json!({
                "messages": call.request.messages.len(),
                "last": last,
                "tools": tools,
            })))
            .started_at(call.started_at);
        self.remember(format!("llm:{}", call.turn), span.span_id);
        self.tracer.open(span).await;
    }

    async fn llm_call_ended(&self, call: &LlmCallEnded<'_>) {
        let Some(span_id) = self.take(&format!("llm:{}", call.turn)) else {
            return;
        };
        let end = match call.outcome {
            Ok(response) => {
                let mut end = SpanEnd::ok(Some(bounded(
                    serde_json::to_value(&response.message).unwrap_or(Value::Null),
                )))
                .attr(attr::RESPONSE_MODEL, response.model.as_str());
                if let Some(usage) = response.usage {
                    end = end
                        .attr(attr::INPUT_TOKENS, usage.prompt_tokens)
                        .attr(attr::OUTPUT_TOKENS, usage.completion_tokens);
                }
                end
            }
            Err(e) => SpanEnd::error(e.to_string()),
        };
        self.tracer
            .close(self.trace_id, span_id, end.ended_at(call.ended_at))
            .await;
    }

    async fn tool_call_started(&self, call: &ToolCallStarted<'_>) {
        let span = self
            .child(format!("execute_tool {}", call.name))
            .attr(attr::OPERATION, "execute_tool")
            .attr(attr::TOOL, call.name)
            .attr(attr::TOOL_CALL_ID, call.call_id)
            .attr(attr::AGENT, call.persona.as_str())
            .input(bounded(call.args.clone()))
            .started_at(call.started_at);
        self.remember(format!("tool:{}", call.call_id), span.span_id);
        self.tracer.open(span).await;
    }

    async fn tool_call_ended(&self, _persona: Agent, record: &ToolCallRecord) {
        let Some(span_id) = self.take(&format!("tool:{}", record.call_id)) else {
            return;
        };
        let end = match &record.error {
            Some(error) => SpanEnd::error(error.clone()),
            None => SpanEnd::ok(record.result.clone().map(bounded)),
        };
        self.tracer
            .close(self.trace_id, span_id, end.ended_at(record.ended_at))
            .await;
    }
}
