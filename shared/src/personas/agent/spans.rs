//! The agent's spans: the run-tree recorder (`telemetry::spans::Tracer`) as
//! the agent loop's observer, one span per LLM call and tool call. An LLM or
//! tool call's span is written once, closed, when the call ends within
//! `CALL_OPEN_AFTER`; a longer call's span is written open at that point.
//! The closed spans of quick calls wait for the agent's next write (a long
//! call's opening, or `AgentSpans::flush` when the agent ends): an agent's
//! quick calls do not each wait for a commit of their own.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{AgentObserver, LlmCallEnded, LlmCallStarted, ToolCallStarted};
use crate::domain::{NewSpan, RunId, Span, SpanEnd, SpanId, TraceId};
use crate::personas::{Agent, ToolCallRecord};
use crate::telemetry::spans::{attr, bounded, Tracer};

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
    /// Records an agent loop's LLM and tool calls under `parent`.
    pub fn new(tracer: &Tracer, trace_id: TraceId, run_id: Option<RunId>, parent: SpanId) -> Self {
        Self {
            tracer: tracer.clone(),
            trace_id,
            run_id,
            parent,
            calls: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            finished: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }

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
    use crate::domain::{Persona, SpanStatus};
    use crate::store::{SqliteStore, Store};
    use chrono::Utc;

    async fn observer(dir: &std::path::Path) -> (Arc<dyn Store>, AgentSpans) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("mw.db")).await.unwrap());
        store.migrate().await.unwrap();
        let tracer = Tracer::new(Arc::clone(&store), None);
        let spans = AgentSpans::new(&tracer, TraceId::random(), None, SpanId::random());
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
