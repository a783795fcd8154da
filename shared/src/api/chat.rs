//! `POST /v1/chat/brendan {user_id, message}` → `{response, run_ids}`: one
//! turn with Brendan, who remembers each user's conversation (in the store)
//! and acts through his tools. Like every body here, it needs no JSON
//! content type: the runbook's `curl -d` sends none.
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, JsonBody};
use crate::domain::{ChatRole, NewSpan, RunId, SpanEnd, SpanId, SpanLink, TraceId};
use crate::personas::agent::{run_agent, AgentError, AgentOutcome, AgentSpans};
use crate::personas::{brendan, ToolContext};
use crate::providers::llm::{AssistantMessage, Message};
use crate::telemetry::spans::{attr, bounded};

/// How many earlier messages Brendan sees.
const MEMORY: u32 = 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/chat/brendan", post(chat))
}

/// One chat turn.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct ChatBody {
    /// Who is talking (1-128 printable characters).
    #[schemars(length(min = 1, max = 128))]
    user_id: String,
    /// What they say (at most 4,000 characters).
    #[schemars(length(min = 1, max = 4000))]
    message: String,
}

/// Brendan's answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct ChatAnswer {
    pub response: String,
    /// The runs this turn started or acted on.
    pub run_ids: Vec<RunId>,
    /// The turn's `brendan-chat` trace.
    pub trace_id: TraceId,
}

async fn chat(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Json<ChatAnswer>, ApiError> {
    let user = crate::pipeline::limits::user_id(&body.user_id)?;
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request("message is empty"));
    }
    crate::pipeline::limits::message(
        Some(body.message.clone()),
        crate::pipeline::limits::CHAT_MESSAGE_MAX_CHARS,
    )?;
    let pipeline = &state.pipeline;
    let history = pipeline.store.conversation(user, MEMORY).await?;
    let mut messages: Vec<Message> = history
        .iter()
        .map(|m| match m.role {
            ChatRole::User => Message::user(m.content.clone()),
            ChatRole::Brendan => Message::Assistant(AssistantMessage::text(m.content.clone())),
        })
        .collect();
    messages.push(Message::user(body.message.clone()));
    // `brendan-chat`: a trace of its own (the turn may start runs, each with
    // its own trace); it names the runs it started when it closes.
    let trace_id = TraceId::random();
    let span_id = SpanId::random();
    pipeline
        .tracer
        .open(
            NewSpan {
                trace_id,
                span_id,
                parent_span_id: None,
                run_id: None,
                name: "brendan-chat".into(),
                attributes: Default::default(),
                input: Some(bounded(json!({ "user_id": user, "message": body.message }))),
                start_time: chrono::Utc::now(),
            }
            .attr(attr::OPERATION, "invoke_agent")
            .attr(attr::AGENT, "brendan"),
        )
        .await;
    let observer = AgentSpans::new(&pipeline.tracer, trace_id, None, span_id);
    let outcome = run_agent(
        &brendan::spec(),
        &pipeline.brendan_tools(),
        pipeline.llm.as_ref(),
        &ToolContext::chat_turn(user, SpanLink { trace_id, span_id }),
        &messages,
        &observer,
    )
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // The model itself failed: not the user's doing.
        Err(e @ AgentError::Llm { .. }) => {
            tokio::join!(
                observer.flush(),
                pipeline
                    .tracer
                    .close(trace_id, span_id, SpanEnd::error(e.to_string()))
            );
            let status = if e.code() == crate::personas::agent::TRANSIENT {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            };
            return Err(ApiError::new(status, "brendan_failed", e.to_string()));
        }
        // What was asked could not be done (an unknown job code, a gate
        // not reached): an answer that says so, not a server error.
        Err(e) => AgentOutcome {
            summary: format!("I couldn't do that: {}", explain(&e)),
            tool_results: Vec::new(),
            usage: Default::default(),
            turns: 0,
            messages: Vec::new(),
        },
    };
    let mut run_ids: Vec<RunId> = Vec::new();
    for record in &outcome.tool_results {
        let found = record
            .result
            .as_ref()
            .and_then(|r| r.get("run_id"))
            .and_then(Value::as_str);
        if let Some(id) = found.and_then(|id| id.parse().ok()) {
            if !run_ids.contains(&id) {
                run_ids.push(id);
            }
        }
    }
    let (appended, ()) = tokio::join!(
        pipeline.store.append_conversation(
            user,
            vec![
                (ChatRole::User, body.message, Vec::new()),
                (ChatRole::Brendan, outcome.summary.clone(), run_ids.clone()),
            ],
        ),
        observer.flush()
    );
    appended?;
    let ids: Vec<String> = run_ids.iter().map(RunId::to_string).collect();
    let mut end = SpanEnd::ok(Some(bounded(
        json!({ "response": outcome.summary, "run_ids": run_ids }),
    )))
    .attr("myloware.run_ids", ids.join(","));
    if let Ok(usage) = serde_json::to_value(outcome.usage) {
        end = crate::pipeline::usage_attributes(end, Some(&usage));
    }
    pipeline.tracer.close(trace_id, span_id, end).await;
    Ok(Json(ChatAnswer {
        response: outcome.summary,
        run_ids,
        trace_id,
    }))
}

/// What went wrong, as Brendan says it: the tool's own words, without the
/// persona and tool names meant for logs.
fn explain(error: &AgentError) -> String {
    match error {
        AgentError::Tool { message, .. } | AgentError::ToolUnavailable { message, .. } => {
            message.clone()
        }
        other => other.to_string(),
    }
}
