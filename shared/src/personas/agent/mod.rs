//! The agent loop: a model, a persona's spec and its tools, until a final
//! answer.
//!
//! Each turn sends the whole conversation and the allowed tools' specs to the
//! [`Llm`]. Tool calls are checked against the allowlist *before* any of them
//! runs: one call outside it fails the persona with
//! [`AgentError::ToolNotAllowed`], because a model reaching for tools it was
//! not given is a bug or an injection, not something to negotiate.
//!
//! Tool failures get one chance: the error goes back to the model as the
//! tool's result (`{"error": "…"}`), so it can fix its arguments and retry. A
//! second failing call, or a final answer while a failed tool has not since
//! succeeded, fails the persona with [`AgentError::Tool`] naming the tool.
//! A final answer without every required tool having succeeded is
//! [`AgentError::MissingRequiredTool`]; more than [`MAX_TURNS`] model calls is
//! [`AgentError::TooManyTurns`].
//!
//! A service failing in a way that may pass (a tool's provider, or the model
//! itself, still throttled or down after their clients' retries) is not the
//! model's to handle: the persona stops at once with an error whose
//! [`code`](AgentError::code) is `Worker.Transient`, which the state
//! machine's `Retry` repeats with its own backoff. The tools are idempotent,
//! so the repeat does not submit twice what was already submitted.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::spec::PersonaSpec;
use super::tools::{catalog, schema, Tool, ToolContext, ToolError, ToolRegistry};
use super::Agent;
use crate::providers::llm::{
    AssistantMessage, Llm, LlmError, LlmRequest, Message, ToolCall, Usage,
};

mod observer;
mod spans;
#[cfg(test)]
mod tests;

pub use observer::{AgentObserver, LlmCallEnded, LlmCallStarted, NoopObserver, ToolCallStarted};
pub use spans::{AgentSpans, CALL_OPEN_AFTER};

/// Model calls allowed per agent run. The longest honest plan (Riley, Quinn:
/// two tools, a retry, a final answer) needs four or five.
pub const MAX_TURNS: u32 = 12;

/// What a persona did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentOutcome {
    /// The model's final answer.
    pub summary: String,
    /// Every tool call, in order, failed ones included.
    pub tool_results: Vec<ToolCallRecord>,
    /// Tokens over all turns, as far as the model reported them.
    pub usage: Usage,
    /// Model calls made.
    pub turns: u32,
    /// The conversation after the system prompt: the input, then every
    /// assistant and tool message (chat memory keeps this).
    pub messages: Vec<Message>,
}

impl AgentOutcome {
    /// The result of the last successful call of `tool`.
    pub fn result_of(&self, tool: &str) -> Option<&Value> {
        self.tool_results
            .iter()
            .rev()
            .find(|record| record.name == tool && record.error.is_none())
            .and_then(|record| record.result.as_ref())
    }
}

/// One tool call with its inputs, output or error, and timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub call_id: String,
    pub name: String,
    pub args: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// Why a persona failed. Each names the persona, and the tool where one is
/// to blame, so a failed run says who did what.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("persona {persona} called tool {tool:?}, which is not on its allowlist")]
    ToolNotAllowed { persona: Agent, tool: String },
    #[error("persona {persona} may use tool {tool:?}, but no implementation is registered")]
    ToolNotRegistered { persona: Agent, tool: String },
    #[error("persona {persona}: tool {tool} failed: {message}")]
    Tool {
        persona: Agent,
        tool: String,
        message: String,
    },
    /// A tool's service failed in a way that may pass: the step is worth
    /// repeating later.
    #[error("persona {persona}: tool {tool} failed for now: {message}")]
    ToolUnavailable {
        persona: Agent,
        tool: String,
        message: String,
    },
    #[error("persona {persona} finished without calling required tool {tool:?}")]
    MissingRequiredTool { persona: Agent, tool: String },
    #[error("persona {persona} did not finish within {turns} model calls")]
    TooManyTurns { persona: Agent, turns: u32 },
    #[error("persona {persona}: the model call failed")]
    Llm {
        persona: Agent,
        #[source]
        source: LlmError,
    },
}

impl AgentError {
    /// A stable name for the failure, usable as an ASL error name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ToolNotAllowed { .. } => "Agent.ToolNotAllowed",
            Self::ToolNotRegistered { .. } => "Agent.ToolNotRegistered",
            Self::Tool { .. } => "Agent.ToolFailed",
            Self::ToolUnavailable { .. } => TRANSIENT,
            Self::MissingRequiredTool { .. } => "Agent.MissingRequiredTool",
            Self::TooManyTurns { .. } => "Agent.TooManyTurns",
            Self::Llm { source, .. } if source.is_transient() => TRANSIENT,
            Self::Llm { .. } => "Agent.LlmFailed",
        }
    }
}

/// The error name the state machines retry: a failure that may pass.
pub const TRANSIENT: &str = "Worker.Transient";

/// The tool-result content the model sees for a failed call.
pub fn error_content(message: &str) -> String {
    json!({ "error": message }).to_string()
}

/// The error message in a tool-result content, if it reports a failure.
pub fn error_in_content(content: &str) -> Option<String> {
    match serde_json::from_str::<Value>(content).ok()? {
        Value::Object(map) if map.len() == 1 => map.get("error")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Runs `spec`'s agent on `input` (the conversation after the system prompt,
/// ending with the new user message) until it gives a final answer.
#[tracing::instrument(skip_all, fields(persona = %spec.persona))]
pub async fn run_agent(
    spec: &PersonaSpec,
    registry: &ToolRegistry,
    llm: &dyn Llm,
    ctx: &ToolContext,
    input: &[Message],
    observer: &dyn AgentObserver,
) -> Result<AgentOutcome, AgentError> {
    let persona = spec.persona;
    let mut tools = Vec::with_capacity(spec.tools.len());
    for name in &spec.tools {
        let tool = registry
            .get(name)
            .ok_or_else(|| AgentError::ToolNotRegistered {
                persona,
                tool: name.clone(),
            })?;
        tools.push(tool.spec());
    }
    let mut request = LlmRequest {
        messages: std::iter::once(Message::system(&spec.prompt))
            .chain(input.iter().cloned())
            .collect(),
        tools,
    };
    let mut records: Vec<ToolCallRecord> = Vec::new();
    let mut usage = Usage::default();
    // A failed call the model has not yet recovered from: (tool, message).
    let mut unrecovered: Option<(String, String)> = None;

    for turn in 1..=MAX_TURNS {
        let (reply, turn_usage) = ask(llm, &request, persona, turn, observer).await?;
        usage += turn_usage.unwrap_or_default();
        request.messages.push(Message::Assistant(reply.clone()));

        if reply.tool_calls.is_empty() {
            if let Some((tool, message)) = unrecovered {
                return Err(AgentError::Tool {
                    persona,
                    tool,
                    message,
                });
            }
            check_required(spec, &records)?;
            tracing::debug!(turns = turn, tool_calls = records.len(), "agent finished");
            let messages = request.messages.split_off(1);
            return Ok(AgentOutcome {
                summary: reply.content.unwrap_or_default(),
                tool_results: records,
                usage,
                turns: turn,
                messages,
            });
        }

        if let Some(call) = reply.tool_calls.iter().find(|c| !spec.allows(&c.name)) {
            tracing::warn!(tool = %call.name, "tool outside the allowlist");
            return Err(AgentError::ToolNotAllowed {
                persona,
                tool: call.name.clone(),
            });
        }
        for call in &reply.tool_calls {
            let (record, transient) = call_tool(registry, ctx, call, persona, observer).await;
            if transient {
                let message = record.error.clone().unwrap_or_default();
                tracing::warn!(tool = %record.name, error = %message, "tool's service unavailable; the step will be repeated");
                return Err(AgentError::ToolUnavailable {
                    persona,
                    tool: record.name,
                    message,
                });
            }
            let content = match (&record.error, &record.result) {
                (Some(message), _) => error_content(message),
                (None, result) => result.as_ref().unwrap_or(&Value::Null).to_string(),
            };
            request.messages.push(Message::tool(&call.id, content));
            match &record.error {
                Some(message) => {
                    tracing::info!(tool = %record.name, error = %message, "tool failed");
                    if unrecovered.is_some() {
                        return Err(AgentError::Tool {
                            persona,
                            tool: record.name,
                            message: message.clone(),
                        });
                    }
                    unrecovered = Some((record.name.clone(), message.clone()));
                }
                None if unrecovered
                    .as_ref()
                    .is_some_and(|(tool, _)| *tool == record.name) =>
                {
                    unrecovered = None;
                }
                None => {}
            }
            records.push(record);
        }
    }
    Err(AgentError::TooManyTurns {
        persona,
        turns: MAX_TURNS,
    })
}

async fn ask(
    llm: &dyn Llm,
    request: &LlmRequest,
    persona: Agent,
    turn: u32,
    observer: &dyn AgentObserver,
) -> Result<(AssistantMessage, Option<Usage>), AgentError> {
    let started_at = Utc::now();
    observer
        .llm_call_started(&LlmCallStarted {
            persona,
            turn,
            request,
            started_at,
        })
        .await;
    let result = llm.chat(request).await;
    observer
        .llm_call_ended(&LlmCallEnded {
            persona,
            turn,
            started_at,
            ended_at: Utc::now(),
            outcome: result.as_ref(),
        })
        .await;
    let response = result.map_err(|source| AgentError::Llm { persona, source })?;
    Ok((response.message, response.usage))
}

/// Holds a call's arguments to the schema its tool promised the model (the
/// catalog's, derived from the tool's `*Args` type), before the tool runs.
fn check_arguments(tool: &dyn Tool, name: &str, arguments: &Value) -> Result<(), ToolError> {
    let checked = match catalog::parameters(name) {
        Some(schema) => schema::check(schema, arguments),
        None => schema::check(&tool.spec().parameters, arguments),
    };
    checked.map_err(|violation| ToolError::InvalidArguments(violation.to_string()))
}

/// Runs one call; answers its record and whether it failed transiently.
async fn call_tool(
    registry: &ToolRegistry,
    ctx: &ToolContext,
    call: &ToolCall,
    persona: Agent,
    observer: &dyn AgentObserver,
) -> (ToolCallRecord, bool) {
    let started_at = Utc::now();
    observer
        .tool_call_started(&ToolCallStarted {
            persona,
            call_id: &call.id,
            name: &call.name,
            args: &call.arguments,
            started_at,
        })
        .await;
    let outcome = match registry.get(&call.name) {
        Some(tool) => match check_arguments(tool.as_ref(), &call.name, &call.arguments) {
            Ok(()) => tool.call(ctx, call.arguments.clone()).await,
            Err(refused) => Err(refused),
        },
        // Unreachable after the start-up check; kept as an error, not a panic.
        None => Err(ToolError::failed("no implementation is registered")),
    };
    let transient = outcome.as_ref().is_err_and(ToolError::is_transient);
    let (result, error) = match outcome {
        Ok(result) => (Some(result), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let record = ToolCallRecord {
        call_id: call.id.clone(),
        name: call.name.clone(),
        args: call.arguments.clone(),
        result,
        error,
        started_at,
        ended_at: Utc::now(),
    };
    observer.tool_call_ended(persona, &record).await;
    (record, transient)
}

fn check_required(spec: &PersonaSpec, records: &[ToolCallRecord]) -> Result<(), AgentError> {
    match spec.required_tools.iter().find(|tool| {
        !records
            .iter()
            .any(|record| record.name == **tool && record.error.is_none())
    }) {
        Some(tool) => Err(AgentError::MissingRequiredTool {
            persona: spec.persona,
            tool: tool.clone(),
        }),
        None => Ok(()),
    }
}
