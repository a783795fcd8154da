//! A local OpenAI-compatible server for tests: axum on `127.0.0.1:0`, the
//! same wire types as the adapter, answers chosen by the test. `answering()`
//! puts a brain (the scripted one) behind the wire so a whole persona turn can cross
//! real HTTP.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::wire::{ChatRequest, ChatResponse, Choice, WireReply, WireToolCall, WireUsage};

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Self {
        Self::raw(status, body.to_string())
    }

    pub fn raw(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub authorization: Option<String>,
    pub body: Value,
}

type Reply = Arc<dyn Fn(usize, &Value) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Shared {
    reply: Reply,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running fake; stops when dropped.
#[derive(Debug)]
pub(crate) struct FakeServer {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Answers request `n` (from 0) with `reply(n, body)`.
    pub async fn spawn(reply: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            reply: Arc::new(reply),
            seen: seen.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url,
            seen,
            task,
        }
    }

    /// `brain` behind the real wire format (the scripted brain, say).
    pub async fn answering(
        brain: impl Fn(&super::super::LlmRequest) -> super::super::LlmResponse + Send + Sync + 'static,
    ) -> Self {
        Self::spawn(move |_, body| {
            let request: ChatRequest = match serde_json::from_value(body.clone()) {
                Ok(request) => request,
                Err(e) => {
                    return Answer::json(400, json!({"error": {"message": e.to_string()}}));
                }
            };
            let model = request.model.clone();
            let reply = brain(&request.into_request());
            let message = reply.message;
            let usage = reply.usage.unwrap_or_default();
            let completion = ChatResponse {
                model: Some(model),
                choices: vec![Choice {
                    index: 0,
                    finish_reason: Some(
                        if message.tool_calls.is_empty() {
                            "stop"
                        } else {
                            "tool_calls"
                        }
                        .to_owned(),
                    ),
                    message: WireReply {
                        role: Some("assistant".to_owned()),
                        content: message.content,
                        refusal: None,
                        tool_calls: (!message.tool_calls.is_empty())
                            .then(|| message.tool_calls.iter().map(WireToolCall::from).collect()),
                    },
                }],
                usage: Some(WireUsage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                    total_tokens: usage.total_tokens(),
                }),
            };
            Answer::json(200, serde_json::to_value(completion).unwrap())
        })
        .await
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn complete(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = {
        let mut seen = shared.seen.lock().unwrap();
        seen.push(Seen {
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.clone(),
        });
        seen.len() - 1
    };
    let answer = (shared.reply)(n, &body);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
}
