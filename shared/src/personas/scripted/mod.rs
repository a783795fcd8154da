//! The scripted brain: the default `Llm`, offline and deterministic: the
//! personas' (and Brendan's) own script, played without a model.
//!
//! It exists so the whole system (graph, tools, providers, evidence) runs and
//! is testable without a model or a key, and so a run behaves the same every
//! time. It reads the conversation like a model would: the system prompt's
//! `You are <Name>` says whose part to play, the first user message is the
//! run context (`personas::PersonaContext`), and earlier tool calls and
//! results say what is left to do. It only calls tools it was offered, and it
//! honours each persona's contract: Riley submits exactly `clips.count`
//! clips, Alex renders, Quinn publishes. Brendan's part turns plain-English
//! requests into tool calls.
use async_trait::async_trait;

use crate::personas::Agent;
use crate::providers::llm::{
    AssistantMessage, Llm, LlmError, LlmRequest, LlmResponse, Message, ToolCall, Usage,
};

mod brendan;
mod crew;
#[cfg(test)]
mod tests;

/// The offline brain. Stateless: every answer is a function of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScriptedLlm;

impl ScriptedLlm {
    pub const MODEL: &'static str = "scripted";

    pub fn new() -> Self {
        Self
    }

    /// The next assistant message for `request`, synchronously.
    pub fn answer(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let transcript = Transcript::new(request);
        let agent = transcript.agent().ok_or_else(|| {
            LlmError::Script(
                "the system prompt does not name a persona (expected \"You are <Name>\")".into(),
            )
        })?;
        let message = match agent {
            Agent::Brendan => brendan::reply(&transcript),
            Agent::Persona(persona) => crew::reply(persona, &transcript),
        };
        Ok(LlmResponse {
            usage: Some(estimate_usage(request, &message)),
            message,
            model: Self::MODEL.to_owned(),
        })
    }
}

#[async_trait]
impl Llm for ScriptedLlm {
    async fn chat(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.answer(request)
    }
}

/// Roughly four characters a token, so run trees show plausible numbers.
fn estimate_usage(request: &LlmRequest, reply: &AssistantMessage) -> Usage {
    let prompt: usize = request
        .messages
        .iter()
        .map(|m| m.text().map_or(0, str::len))
        .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| t.description.len() + t.parameters.to_string().len())
            .sum::<usize>();
    let completion = reply.content.as_deref().map_or(0, str::len)
        + reply
            .tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.to_string().len())
            .sum::<usize>();
    Usage {
        prompt_tokens: prompt.div_ceil(4) as u64,
        completion_tokens: completion.div_ceil(4) as u64,
    }
}

/// The conversation as the scripted brain reads it.
pub(crate) struct Transcript<'a> {
    messages: &'a [Message],
    offered: Vec<&'a str>,
}

/// A tool call made earlier in the conversation, with its result content if
/// one came back.
pub(crate) struct PastCall<'a> {
    pub call: &'a ToolCall,
    pub result: Option<&'a str>,
}

impl<'a> Transcript<'a> {
    fn new(request: &'a LlmRequest) -> Self {
        Self {
            messages: &request.messages,
            offered: request.tools.iter().map(|t| t.name.as_str()).collect(),
        }
    }

    /// Whose part to play: the name after "You are" in the system prompt.
    fn agent(&self) -> Option<Agent> {
        let system = self.messages.iter().find_map(|m| match m {
            Message::System { content } => Some(content.as_str()),
            _ => None,
        })?;
        let rest = &system[system.find("You are ")? + "You are ".len()..];
        let name: String = rest
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        name.parse().ok()
    }

    fn offers(&self, tool: &str) -> bool {
        self.offered.contains(&tool)
    }

    fn first_user(&self) -> Option<&'a str> {
        self.messages.iter().find_map(|m| match m {
            Message::User { content } => Some(content.as_str()),
            _ => None,
        })
    }

    /// Index and text of the last user message.
    fn last_user(&self) -> Option<(usize, &'a str)> {
        self.messages
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, m)| match m {
                Message::User { content } => Some((i, content.as_str())),
                _ => None,
            })
    }

    /// Every tool call made after message `from`, in order.
    fn calls_after(&self, from: usize) -> Vec<PastCall<'a>> {
        let later = &self.messages[from.min(self.messages.len())..];
        later
            .iter()
            .filter_map(|m| match m {
                Message::Assistant(reply) => Some(&reply.tool_calls),
                _ => None,
            })
            .flatten()
            .map(|call| PastCall {
                call,
                result: later.iter().find_map(|m| match m {
                    Message::Tool {
                        tool_call_id,
                        content,
                    } if *tool_call_id == call.id => Some(content.as_str()),
                    _ => None,
                }),
            })
            .collect()
    }

    /// The last message, when it is a tool result.
    fn last_tool_result(&self) -> Option<(&'a str, &'a str)> {
        match self.messages.last()? {
            Message::Tool {
                tool_call_id,
                content,
            } => Some((tool_call_id.as_str(), content.as_str())),
            _ => None,
        }
    }

    fn messages(&self) -> &'a [Message] {
        self.messages
    }

    /// A fresh, deterministic call id.
    fn call(&self, agent: Agent, name: &str, arguments: serde_json::Value) -> ToolCall {
        let made = self.calls_after(0).len();
        ToolCall {
            id: format!("call_{agent}_{}", made + 1),
            name: name.to_owned(),
            arguments,
        }
    }
}
