//! The `Llm` port: one chat completion with tool calling, nothing more.
//!
//! The agent loop (`personas::agent`) is the only caller; it owns the
//! conversation and the tools, so the port stays a single stateless call that
//! any OpenAI-compatible server, or the offline scripted brain
//! (`personas::scripted`), can answer.
//! The message model here is ours, not a provider's wire format: adapters
//! translate at their edge (see [`openai`]), so a run's transcript reads the
//! same whichever brain produced it.
//!
//! The adapter is chosen once at start-up (`wiring::llm`): no base URL
//! means the scripted brain, which needs no network and no key.
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod openai;

pub use openai::OpenAiLlm;

/// Asks a model for the next assistant message of a conversation.
#[async_trait]
pub trait Llm: Send + Sync + fmt::Debug {
    async fn chat(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError>;
}

/// One completion request: the whole conversation so far and the tools the
/// model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
}

/// A tool as the model sees it: a name, what it is for, and a JSON Schema for
/// its arguments object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// A message of a conversation. Serialized with a `role` tag, so transcripts
/// stored as evidence read like the chat they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant(AssistantMessage),
    /// The result of one tool call, answering the call with `tool_call_id`.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: content.into(),
        }
    }

    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }

    /// The text of the message, if it has any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::System { content } | Self::User { content } | Self::Tool { content, .. } => {
                Some(content)
            }
            Self::Assistant(reply) => reply.content.as_deref(),
        }
    }
}

/// What the model says: text, tool calls, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl AssistantMessage {
    /// A final answer: text and no tool calls.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: Some(content.into()),
            tool_calls: Vec::new(),
        }
    }

    /// A turn that only calls tools.
    pub fn calls(tool_calls: Vec<ToolCall>) -> Self {
        Self {
            content: None,
            tool_calls,
        }
    }
}

/// The model asking for one tool to be run. `arguments` is the JSON the model
/// produced; when a provider sends text that is not JSON, adapters keep it as
/// a JSON string so the loop can tell the model what was wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    pub message: AssistantMessage,
    pub usage: Option<Usage>,
    /// The model that answered, as the provider names it.
    pub model: String,
}

/// Token counts for one call, or summed over several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// Why a completion failed. Messages carry the provider's status and words,
/// never the request headers, so no key can leak through an error.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status.
    #[error("LLM provider answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The error's `code` (or `type`): `rate_limit_exceeded`,
        /// `insufficient_quota`, …
        code: Option<String>,
        /// The wait the answer asked for (`retry-after-ms`, `retry-after`).
        retry_after: Option<Duration>,
    },
    /// No complete answer within the configured timeout.
    #[error("LLM provider did not answer within {}s", .after.as_secs_f64())]
    Timeout { after: Duration },
    /// The request never got an answer (connection refused, TLS, DNS …).
    #[error("LLM provider unreachable")]
    Transport(#[source] reqwest::Error),
    /// The provider answered 2xx with something that is not a completion.
    #[error("LLM provider sent a malformed response: {0}")]
    Malformed(String),
    /// The model answered, but not with something to act on: it refused
    /// (`refusal`), ran out of tokens (`finish_reason: length`) or was
    /// filtered (`finish_reason: content_filter`).
    #[error("the model gave no usable answer: {0}")]
    Unusable(String),
    /// The scripted brain was asked something it cannot play.
    #[error("scripted LLM: {0}")]
    Script(String),
}

impl LlmError {
    /// Whether asking again later may succeed: a timeout, no connection, a
    /// throttle or a server error. A used-up quota (`insufficient_quota`)
    /// is a 429 that waiting does not cure.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport(_) => true,
            Self::Status { status, code, .. } => match status {
                429 => !matches!(
                    code.as_deref(),
                    Some("insufficient_quota" | "credit_balance_exhausted")
                ),
                408 | 409 | 500..=599 => true,
                _ => false,
            },
            Self::Malformed(_) | Self::Unusable(_) | Self::Script(_) => false,
        }
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// How to build the LLM, from `LLM_BASE_URL`, `LLM_API_KEY` and `LLM_MODEL`.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// An OpenAI-compatible endpoint such as `https://api.openai.com/v1`;
    /// `None` selects the offline scripted brain.
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub model: String,
    pub timeout: Duration,
}

impl LlmSettings {
    pub const DEFAULT_MODEL: &'static str = "gpt-4o-mini";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: Self::DEFAULT_MODEL.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_with_a_role_tag() {
        let reply = Message::Assistant(AssistantMessage::calls(vec![ToolCall {
            id: "c1".into(),
            name: "record_ideas".into(),
            arguments: serde_json::json!({"title": "t"}),
        }]));
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["role"], "assistant");
        assert_eq!(json["tool_calls"][0]["name"], "record_ideas");
        let back: Message = serde_json::from_value(json).unwrap();
        assert_eq!(back, reply);
        let tool = serde_json::to_value(Message::tool("c1", "{}")).unwrap();
        assert_eq!(
            tool,
            serde_json::json!({"role": "tool", "tool_call_id": "c1", "content": "{}"})
        );
    }
}
