//! Where the pipeline opens and closes the spans of a run's tree. Ids are
//! derived from the run (and persona task token, or gate), so the worker
//! that opens a persona span and the callbacks consumer that closes it,
//! perhaps in another process, name the same span.
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Pipeline, PipelineError};
use crate::domain::{
    Gate, NewSpan, Persona, Run, RunId, RunStatus, Span, SpanEnd, SpanId, SpanLink, TraceId,
};
use crate::personas::agent::AgentSpans;
use crate::telemetry::spans::{attr, bounded};

/// A run and the spans of its trace, by start time (open ones included).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunTree {
    pub run: Run,
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
    /// The run it replays, its replays and its redrives.
    #[serde(default)]
    pub lineage: super::Lineage,
    /// The cost of each span that has one (model calls, provider tools).
    #[serde(default)]
    pub costs: Vec<super::cost::SpanCost>,
}

impl RunTree {
    /// The tree with its spans' costs, from the run's jobs and artifacts.
    pub fn costed(
        mut self,
        jobs: &[crate::domain::ProviderJob],
        artifacts: &[crate::domain::Artifact],
        prices: &super::cost::Prices,
    ) -> Self {
        self.costs = super::cost::span_costs(&self.spans, jobs, artifacts, prices);
        self
    }
}

/// A trace that is no run's own: a chat turn (`brendan-chat`, the
/// `trace_id` `POST /v1/chat/brendan` answers) with its LLM and tool calls,
/// and the runs it started, whose own trees link back to it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChatTree {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
    /// The runs the turn's `start_run` calls started, in order.
    pub runs: Vec<Run>,
}

/// The chat turn `trace_id` from `store`: its spans, and the runs started
/// by its `start_run` calls (their results name them).
pub async fn chat_tree(
    store: &dyn crate::store::Store,
    trace_id: TraceId,
) -> Result<ChatTree, PipelineError> {
    let spans = store.list_spans(trace_id).await?;
    if spans.is_empty() {
        return Err(PipelineError::not_found(format!(
            "trace {trace_id}: nothing recorded (not a run, and no chat turn)"
        )));
    }
    let mut runs = Vec::new();
    for span in &spans {
        let started = span.attributes.get(attr::TOOL).and_then(Value::as_str)
            == Some(crate::personas::tools::catalog::START_RUN);
        let id = span
            .output
            .as_ref()
            .and_then(|o| o["run_id"].as_str())
            .and_then(|id| id.parse::<RunId>().ok());
        if let (true, Some(id)) = (started, id) {
            if let Some(run) = store.get_run(id).await? {
                if !runs.iter().any(|r: &Run| r.run_id == id) {
                    runs.push(run);
                }
            }
        }
    }
    Ok(ChatTree {
        trace_id,
        spans,
        runs,
    })
}

impl Pipeline {
    /// The chat turn `trace_id` (see `ChatTree`).
    pub async fn chat_tree(&self, trace_id: TraceId) -> Result<ChatTree, PipelineError> {
        chat_tree(self.store.as_ref(), trace_id).await
    }

    /// Waits, at most `timeout`, until the root of run `run_id`'s tree is
    /// closed (it closes just after the run's end is recorded), then sends
    /// what is left to export: for a process about to stop.
    pub async fn await_closed_tree(&self, run_id: RunId, timeout: std::time::Duration) {
        let trace_id = TraceId::of_run(run_id);
        let graph = SpanId::graph(run_id);
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let closed = self.tracer.list(trace_id).await.is_ok_and(|spans| {
                spans
                    .iter()
                    .any(|s| s.span_id == graph && s.end_time.is_some())
            });
            if closed {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.tracer.flush().await;
    }

    /// The run `key` names (id or job code) and its spans.
    pub async fn run_tree(&self, key: &str) -> Result<RunTree, PipelineError> {
        let run = self.find_run(key).await?;
        let trace_id = TraceId::of_run(run.run_id);
        let (jobs, artifacts) = tokio::try_join!(
            self.store.list_provider_jobs(run.run_id),
            self.store.list_artifacts(run.run_id)
        )?;
        let tree = RunTree {
            lineage: super::Lineage::of(&artifacts),
            spans: self.tracer.list(trace_id).await?,
            trace_id,
            run,
            costs: Vec::new(),
        };
        Ok(tree.costed(&jobs, &artifacts, &self.settings.prices))
    }

    /// `<project>-graph`: the root of the run's tree, open until it ends;
    /// linked to the chat turn that started the run, if one did, or to the
    /// graph span of the run it replays.
    /// A replay's also names the run it replays and the state it started at.
    pub(crate) async fn open_graph_span(
        &self,
        run: &Run,
        chat_turn: Option<SpanLink>,
        replay_of: Option<&(crate::domain::JobCode, String)>,
    ) {
        let mut span = NewSpan::in_run(run.run_id, format!("{}-graph", run.project))
            .id(SpanId::graph(run.run_id))
            .attr(attr::OPERATION, "invoke_agent")
            .attr(attr::AGENT, format!("{}-graph", run.project))
            .attr(attr::PROJECT, run.project.as_str())
            .attr("myloware.job_code", run.job_code.as_str())
            .input(bounded(run.input.clone()))
            .started_at(run.created_at);
        if let Some((origin, from)) = replay_of {
            span = span
                .attr(attr::REPLAY_OF, origin.as_str())
                .attr(attr::REPLAY_FROM, from.as_str());
        }
        if let Some(turn) = chat_turn {
            span = span
                .attr(attr::STARTED_FROM_TRACE, turn.trace_id.to_string())
                .attr(attr::STARTED_FROM_SPAN, turn.span_id.to_string());
        }
        self.tracer.open(span).await;
    }

    /// Closes what is still open of the run's tree, then its root, as the
    /// run's final status says.
    pub(crate) async fn end_run_spans(&self, run: &Run) {
        let output = json!({ "status": run.status, "result": run.result });
        let end = match run.status {
            RunStatus::Published => SpanEnd::ok(Some(bounded(output))),
            _ => {
                let mut end = SpanEnd::error(
                    run.error
                        .clone()
                        .unwrap_or_else(|| format!("run {}", run.status)),
                );
                end.output = Some(bounded(output));
                end
            }
        };
        self.tracer.end_run(run.run_id, end).await;
    }

    fn persona_span_id(run_id: RunId, persona: Persona, token: &str) -> SpanId {
        SpanId::persona(run_id, persona.as_str(), token)
    }

    /// `<project>:<persona>` under the graph span, and the observer that
    /// records the persona's LLM and tool calls under it.
    pub(crate) async fn open_persona_span(
        &self,
        run: &Run,
        persona: Persona,
        token: &str,
        input: &Value,
    ) -> AgentSpans {
        let span_id = Self::persona_span_id(run.run_id, persona, token);
        let span = NewSpan::in_run(run.run_id, format!("{}:{persona}", run.project))
            .id(span_id)
            .parent(SpanId::graph(run.run_id))
            .attr(attr::OPERATION, "invoke_agent")
            .attr(attr::AGENT, persona.as_str())
            .attr(attr::PROJECT, run.project.as_str())
            .input(bounded(input.clone()));
        self.tracer.open(span).await;
        AgentSpans::new(
            &self.tracer,
            TraceId::of_run(run.run_id),
            Some(run.run_id),
            span_id,
        )
    }

    pub(crate) async fn close_persona_span(
        &self,
        run_id: RunId,
        persona: Persona,
        token: &str,
        end: SpanEnd,
    ) {
        let span_id = Self::persona_span_id(run_id, persona, token);
        self.tracer
            .close(TraceId::of_run(run_id), span_id, end)
            .await;
    }

    /// Closes the persona's span and completes its task with `output`, the
    /// two writes issued together: on the way from a persona's last
    /// callback to the next state, the span's write does not add a commit
    /// of its own. The span keeps the end time `end` was made with; it is
    /// closed before the run can end (which closes what is left open).
    pub(crate) async fn close_persona_span_and_succeed(
        &self,
        run_id: RunId,
        persona: Persona,
        token: &str,
        end: SpanEnd,
        output: &Value,
    ) -> Result<(), PipelineError> {
        let ((), succeeded) = tokio::join!(
            self.close_persona_span(run_id, persona, token, end),
            self.succeed_task(token, output)
        );
        succeeded
    }

    /// `<project>:gate:<gate>` under the graph span, open while a human
    /// decides.
    pub(crate) async fn open_gate_span(&self, run: &Run, gate: &Gate) {
        let span = NewSpan::in_run(run.run_id, format!("{}:gate:{gate}", run.project))
            .id(SpanId::gate(run.run_id, gate.as_str()))
            .parent(SpanId::graph(run.run_id))
            .attr(attr::GATE, gate.as_str())
            .attr(attr::PROJECT, run.project.as_str());
        self.tracer.open(span).await;
    }

    pub(crate) async fn close_gate_span(&self, run_id: RunId, gate: &Gate, end: SpanEnd) {
        self.tracer
            .close(
                TraceId::of_run(run_id),
                SpanId::gate(run_id, gate.as_str()),
                end,
            )
            .await;
    }
}

/// Token counts of a persona, as span attributes, from its completion
/// record's `usage`.
pub fn usage_attributes(end: SpanEnd, usage: Option<&Value>) -> SpanEnd {
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    match (count("prompt_tokens"), count("completion_tokens")) {
        (Some(input), Some(output)) => end
            .attr(attr::INPUT_TOKENS, input)
            .attr(attr::OUTPUT_TOKENS, output),
        _ => end,
    }
}
