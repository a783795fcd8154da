//! The run-tree recorder: writes each span to the store when it opens and
//! again when it closes (so a stuck run shows what is still open), and hands
//! closed spans to the OTLP exporter when one is configured. An LLM or tool
//! call's span is written once, closed, when the call ends within
//! `CALL_OPEN_AFTER`; a longer call's span is written open at that point.
//! The closed spans of quick calls wait for the agent's next write (a long
//! call's opening, or `AgentSpans::flush` when the agent ends): an agent's
//! quick calls do not each wait for a commit of their own.
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
use std::sync::Arc;
use std::time::Duration;

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
            calls: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            finished: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }
}

/// How long an LLM or tool call runs before its span is written open. A
/// call that ends sooner (every scripted one, most tool calls) is written
/// once, closed; a longer one shows as open in the run tree while it lasts.
pub const CALL_OPEN_AFTER: Duration = Duration::from_millis(200);

/// Records each LLM call and tool call of one agent run as a span.
#[derive(Debug)]
pub struct AgentSpans {
    tracer: Tracer,
    trace_id: TraceId,
    run_id: Option<RunId>,
    parent: SpanId,
    /// The calls under way, by `llm:<turn>` / `tool:<call id>`. Held across
    /// a span's first write, so a call's end waits for its opening.
    calls: Arc<tokio::sync::Mutex<HashMap<String, Call>>>,
    /// Quick calls' spans, closed and not written yet (see `flush`).
    finished: Finished,
}

/// Spans closed before they were written, waiting for the next write.
type Finished = Arc<std::sync::Mutex<Vec<Span>>>;

/// Writes `spans`, all issued together (on SQLite, one commit).
async fn record_all(tracer: &Tracer, spans: Vec<Span>) {
    futures::future::join_all(spans.into_iter().map(|span| tracer.record(span))).await;
}

/// The spans in `finished`, taken out.
fn take(finished: &Finished) -> Vec<Span> {
    std::mem::take(&mut *held(finished))
}

/// `finished`, locked. A panic while it was held leaves a list of whole
/// spans, so a poisoned lock is taken over.
fn held(finished: &Finished) -> std::sync::MutexGuard<'_, Vec<Span>> {
    finished.lock().unwrap_or_else(|p| p.into_inner())
}

/// A call under way: its span not written yet (and the timer that writes it
/// open), or written open.
#[derive(Debug)]
enum Call {
    Unwritten(Box<NewSpan>, tokio::task::AbortHandle),
    Open(SpanId),
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

    /// A call started: its span is written open if it is still running
    /// after `CALL_OPEN_AFTER`, with the spans of the calls that ended
    /// before it.
    async fn started(&self, key: String, span: NewSpan) {
        let calls = Arc::clone(&self.calls);
        let finished = Arc::clone(&self.finished);
        let tracer = self.tracer.clone();
        let timer_key = key.clone();
        let mut held = self.calls.lock().await;
        let timer = tokio::spawn(async move {
            tokio::time::sleep(CALL_OPEN_AFTER).await;
            let mut calls = calls.lock().await;
            if let Some(Call::Unwritten(span, _)) = calls.remove(&timer_key) {
                let span_id = span.span_id;
                tokio::join!(tracer.open(*span), record_all(&tracer, take(&finished)));
                calls.insert(timer_key, Call::Open(span_id));
            }
        });
        held.insert(key, Call::Unwritten(Box::new(span), timer.abort_handle()));
    }

    /// A call ended: its span kept, closed, for the next write, or closed
    /// in the store if it was written open.
    async fn ended(&self, key: &str, end: SpanEnd) {
        let call = self.calls.lock().await.remove(key);
        match call {
            Some(Call::Unwritten(span, timer)) => {
                timer.abort();
                let closed = Span::opened(*span).closed(end);
                held(&self.finished).push(closed);
            }
            Some(Call::Open(span_id)) => self.tracer.close(self.trace_id, span_id, end).await,
            None => {}
        }
    }

    /// Writes the spans of the calls that ended before they were written.
    /// Called when the agent has ended, before its outcome is acted on, so
    /// the run tree holds every call of a finished agent.
    pub async fn flush(&self) {
        record_all(&self.tracer, take(&self.finished)).await;
    }
}

/// An observer dropped with spans unwritten (its agent's task ended
/// without `flush`) still writes them, on a task of their own.
impl Drop for AgentSpans {
    fn drop(&mut self) {
        let spans = take(&self.finished);
        if spans.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tracer = self.tracer.clone();
            runtime.spawn(async move { record_all(&tracer, spans).await });
        }
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
        self.started(format!("llm:{}", call.turn), span).await;
    }

    async fn llm_call_ended(&self, call: &LlmCallEnded<'_>) {
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
        self.ended(&format!("llm:{}", call.turn), end.ended_at(call.ended_at))
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
        self.started(format!("tool:{}", call.call_id), span).await;
    }

    async fn tool_call_ended(&self, _persona: Agent, record: &ToolCallRecord) {
        let end = match &record.error {
            Some(error) => SpanEnd::error(error.clone()),
            None => SpanEnd::ok(record.result.clone().map(bounded)),
        };
        self.ended(
            &format!("tool:{}", record.call_id),
            end.ended_at(record.ended_at),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Persona;
    use crate::store::SqliteStore;
    use chrono::Utc;

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

    async fn observer(dir: &std::path::Path) -> (Arc<dyn Store>, AgentSpans) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("mw.db")).await.unwrap());
        store.migrate().await.unwrap();
        let tracer = Tracer::new(Arc::clone(&store), None);
        let spans = tracer.agent_observer(TraceId::random(), None, SpanId::random());
        (store, spans)
    }

    async fn start(spans: &AgentSpans, args: &Value) {
        start_call(spans, "call-1", args).await;
    }

    async fn start_call(spans: &AgentSpans, call_id: &str, args: &Value) {
        spans
            .tool_call_started(&ToolCallStarted {
                persona: Agent::Persona(Persona::Riley),
                call_id,
                name: "write_script",
                args,
                started_at: Utc::now(),
            })
            .await;
    }

    async fn end(spans: &AgentSpans, args: &Value) {
        end_call(spans, "call-1", args).await;
    }

    async fn end_call(spans: &AgentSpans, call_id: &str, args: &Value) {
        let record = ToolCallRecord {
            call_id: call_id.into(),
            name: "write_script".into(),
            args: args.clone(),
            result: Some(json!({"stored": true})),
            error: None,
            started_at: Utc::now(),
            ended_at: Utc::now(),
        };
        spans
            .tool_call_ended(Agent::Persona(Persona::Riley), &record)
            .await;
    }

    /// A call that ends at once is written once, already closed, with its
    /// input and output, when the agent's spans are flushed.
    #[tokio::test]
    async fn a_quick_call_is_written_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, spans) = observer(dir.path()).await;
        let args = json!({"scenes": 12});
        start(&spans, &args).await;
        assert!(
            store.list_spans(spans.trace_id).await.unwrap().is_empty(),
            "nothing is written while the call is young"
        );
        end(&spans, &args).await;
        assert!(
            store.list_spans(spans.trace_id).await.unwrap().is_empty(),
            "the closed span waits for the agent's next write"
        );
        spans.flush().await;
        let listed = store.list_spans(spans.trace_id).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, SpanStatus::Ok);
        assert_eq!(listed[0].input, Some(args));
        assert_eq!(listed[0].output, Some(json!({"stored": true})));
        assert_eq!(listed[0].parent_span_id, Some(spans.parent));
        assert!(listed[0].end_time.is_some());
    }

    /// The spans of quick calls are written with the opening of a later
    /// long call, or by the observer dropped without a flush.
    #[tokio::test]
    async fn quick_calls_are_written_with_the_next_long_call_or_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (store, spans) = observer(dir.path()).await;
        let args = json!({"scenes": 12});
        start_call(&spans, "quick", &args).await;
        end_call(&spans, "quick", &args).await;
        start_call(&spans, "long", &args).await;
        tokio::time::sleep(CALL_OPEN_AFTER * 2).await;
        let listed = store.list_spans(spans.trace_id).await.unwrap();
        let status = |call: &str| {
            listed
                .iter()
                .find(|s| s.attributes.get(attr::TOOL_CALL_ID) == Some(&json!(call)))
                .map(|s| s.status)
        };
        assert_eq!(status("quick"), Some(SpanStatus::Ok));
        assert_eq!(status("long"), Some(SpanStatus::Open));

        end_call(&spans, "long", &args).await;
        start_call(&spans, "last", &args).await;
        end_call(&spans, "last", &args).await;
        let trace_id = spans.trace_id;
        drop(spans);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let listed = store.list_spans(trace_id).await.unwrap();
            if listed.len() == 3 {
                assert!(listed.iter().all(|s| s.status == SpanStatus::Ok));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{listed:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A call still running after `CALL_OPEN_AFTER` shows as open until it
    /// ends, then closed: the same span, written twice.
    #[tokio::test]
    async fn a_long_call_shows_open_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, spans) = observer(dir.path()).await;
        let args = json!({"scenes": 12});
        start(&spans, &args).await;
        tokio::time::sleep(CALL_OPEN_AFTER * 2).await;
        let open = store.list_spans(spans.trace_id).await.unwrap();
        assert_eq!(open.len(), 1, "written open by now");
        assert!(open[0].is_open());
        assert_eq!(open[0].input, Some(args.clone()));
        end(&spans, &args).await;
        let closed = store.list_spans(spans.trace_id).await.unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].span_id, open[0].span_id);
        assert_eq!(closed[0].status, SpanStatus::Ok);
        assert_eq!(closed[0].output, Some(json!({"stored": true})));
    }
}
