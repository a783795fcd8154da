//! The loop with the scripted brain and fake tools: whole persona turns for
//! both projects and Brendan (`flows`), and each way a persona fails
//! (`failures`). Helpers shared by both live here.
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::*;
use crate::domain::{Persona, RunId};
use crate::personas::testing::Fakes;
use crate::personas::{PersonaContext, ProjectSpec};
use crate::providers::llm::LlmResponse;

mod failures;
mod flows;

pub(super) fn run_ctx(
    spec: &ProjectSpec,
    persona: Persona,
    context: &PersonaContext,
) -> ToolContext {
    ToolContext::run(
        context.run_id,
        spec.name.clone(),
        persona,
        Some("token".into()),
    )
}

pub(super) async fn play(
    spec: &ProjectSpec,
    persona: Persona,
    context: &PersonaContext,
    fakes: &Fakes,
    llm: &dyn Llm,
) -> Result<AgentOutcome, AgentError> {
    run_agent(
        spec.persona(persona).unwrap(),
        &fakes.registry,
        llm,
        &run_ctx(spec, persona, context),
        &[Message::user(context.to_user_message())],
        &NoopObserver,
    )
    .await
}

/// Answers from a fixed list; the last answer repeats forever.
#[derive(Debug)]
pub(super) struct Replay(Mutex<Vec<AssistantMessage>>);

impl Replay {
    pub(super) fn new(replies: Vec<AssistantMessage>) -> Self {
        Self(Mutex::new(replies))
    }
}

#[async_trait]
impl Llm for Replay {
    async fn chat(&self, _: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let mut replies = self.0.lock().unwrap();
        let message = if replies.len() > 1 {
            replies.remove(0)
        } else {
            replies[0].clone()
        };
        Ok(LlmResponse {
            message,
            usage: None,
            model: "replay".into(),
        })
    }
}

pub(super) fn calling(name: &str, arguments: Value) -> AssistantMessage {
    AssistantMessage::calls(vec![ToolCall {
        id: format!("c-{name}"),
        name: name.into(),
        arguments,
    }])
}

pub(super) fn aismr_context() -> (ProjectSpec, PersonaContext) {
    let spec = ProjectSpec::load("aismr").unwrap();
    let context = PersonaContext::new(RunId::new(), &spec, None);
    (spec, context)
}
