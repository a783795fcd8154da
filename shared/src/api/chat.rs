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
use crate::domain::{ChatRole, RunId};
use crate::personas::agent::{run_agent, NoopObserver};
use crate::personas::{brendan, ToolContext};
use crate::providers::llm::{AssistantMessage, Message};

/// How many earlier messages Brendan sees.
const MEMORY: u32 = 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/chat/brendan", post(chat))
}

#[derive(Debug, Deserialize)]
struct ChatBody {
    user_id: String,
    message: String,
}

async fn chat(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Json<Value>, ApiError> {
    let user = body.user_id.trim();
    if user.is_empty() || user.len() > 128 {
        return Err(ApiError::bad_request("user_id must be 1-128 characters"));
    }
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request("message is empty"));
    }
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
    let outcome = run_agent(
        &brendan::spec(),
        &pipeline.brendan_tools(),
        pipeline.llm.as_ref(),
        &ToolContext::chat(user),
        &messages,
        &NoopObserver,
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "brendan_failed", e.to_string()))?;
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
    pipeline
        .store
        .append_conversation(
            user,
            vec![
                (ChatRole::User, body.message, Vec::new()),
                (ChatRole::Brendan, outcome.summary.clone(), run_ids.clone()),
            ],
        )
        .await?;
    Ok(Json(
        json!({ "response": outcome.summary, "run_ids": run_ids }),
    ))
}
