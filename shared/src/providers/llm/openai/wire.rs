//! The OpenAI chat-completions wire format, as published: `tools` of type
//! `function`, `tool_calls` whose `arguments` are JSON *text*, `usage` counts.
//! Both directions derive serde so the adapter and the fake server in tests
//! speak exactly the same format.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::{AssistantMessage, LlmRequest, Message, ToolCall, ToolSpec, Usage};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChatRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool>,
}

impl ChatRequest {
    pub fn new(model: &str, request: &LlmRequest) -> Self {
        Self {
            model: model.to_owned(),
            messages: request.messages.iter().map(WireMessage::from).collect(),
            tools: request.tools.iter().map(WireTool::from).collect(),
        }
    }

    /// Back to our model (the fake server's side).
    #[cfg(test)]
    pub fn into_request(self) -> LlmRequest {
        LlmRequest {
            messages: self.messages.into_iter().map(Message::from).collect(),
            tools: self
                .tools
                .into_iter()
                .map(|tool| ToolSpec {
                    name: tool.function.name,
                    description: tool.function.description,
                    parameters: tool.function.parameters,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(crate) enum WireMessage {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<WireToolCall>>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl From<&Message> for WireMessage {
    fn from(message: &Message) -> Self {
        match message {
            Message::System { content } => Self::System {
                content: content.clone(),
            },
            Message::User { content } => Self::User {
                content: content.clone(),
            },
            Message::Assistant(reply) => Self::Assistant {
                content: reply.content.clone(),
                tool_calls: (!reply.tool_calls.is_empty())
                    .then(|| reply.tool_calls.iter().map(WireToolCall::from).collect()),
            },
            Message::Tool {
                tool_call_id,
                content,
            } => Self::Tool {
                tool_call_id: tool_call_id.clone(),
                content: content.clone(),
            },
        }
    }
}

impl From<WireMessage> for Message {
    fn from(message: WireMessage) -> Self {
        match message {
            WireMessage::System { content } => Self::System { content },
            WireMessage::User { content } => Self::User { content },
            WireMessage::Assistant {
                content,
                tool_calls,
            } => Self::Assistant(reply_from_wire(content, tool_calls)),
            WireMessage::Tool {
                tool_call_id,
                content,
            } => Self::Tool {
                tool_call_id,
                content,
            },
        }
    }
}

pub(crate) fn reply_from_wire(
    content: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
) -> AssistantMessage {
    AssistantMessage {
        content: content.filter(|text| !text.is_empty()),
        tool_calls: tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(ToolCall::from)
            .collect(),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: WireFunction,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Value,
}

impl From<&ToolSpec> for WireTool {
    fn from(tool: &ToolSpec) -> Self {
        Self {
            kind: "function".to_owned(),
            function: WireFunction {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: WireCall,
}

fn function_kind() -> String {
    "function".to_owned()
}

/// `arguments` is JSON text on the wire; some servers send an object instead,
/// which we accept too.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireCall {
    pub name: String,
    pub arguments: Value,
}

impl From<&ToolCall> for WireToolCall {
    fn from(call: &ToolCall) -> Self {
        let arguments = match &call.arguments {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        Self {
            id: call.id.clone(),
            kind: function_kind(),
            function: WireCall {
                name: call.name.clone(),
                arguments: Value::String(arguments),
            },
        }
    }
}

impl From<WireToolCall> for ToolCall {
    fn from(call: WireToolCall) -> Self {
        let arguments = match call.function.arguments {
            Value::String(raw) if raw.trim().is_empty() => Value::Object(Default::default()),
            Value::String(raw) => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
            other => other,
        };
        Self {
            id: call.id,
            name: call.function.name,
            arguments,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChatResponse {
    #[serde(default)]
    pub model: Option<String>,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: WireReply,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireReply {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    /// Set when the model refused; `content` is absent or null then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        }
    }
}

/// The error envelope: `{"error": {"message", "type", "param", "code"}}`,
/// or a bare string.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    Detailed {
        message: String,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<Value>,
    },
    Text(String),
}

impl ErrorBody {
    /// The message, and the error's `code` (else its `type`) as text.
    pub fn into_parts(self) -> (String, Option<String>) {
        match self {
            Self::Detailed {
                message,
                kind,
                code,
            } => {
                let code = match code {
                    Some(Value::String(code)) => Some(code),
                    Some(Value::Number(code)) => Some(code.to_string()),
                    _ => kind,
                };
                (message, code)
            }
            Self::Text(message) => (message, None),
        }
    }
}
