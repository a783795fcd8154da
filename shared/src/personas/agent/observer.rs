//! What the agent loop reports as it goes, for run-tree spans and metrics.
//!
//! Every LLM call and tool call is announced when it starts and when it ends,
//! with its inputs, outputs, error and timing, so an observer can persist a
//! span as it opens and a stuck persona still shows what it was doing.
//! Callbacks are async so they can write to the store; they cannot fail the
//! persona (an observer that cannot record logs and carries on).
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ToolCallRecord;
use crate::personas::Agent;
use crate::providers::llm::{LlmError, LlmRequest, LlmResponse};

/// An LLM call about to be made. `turn` counts from 1 within one agent run.
#[derive(Debug)]
pub struct LlmCallStarted<'a> {
    pub persona: Agent,
    pub turn: u32,
    pub request: &'a LlmRequest,
    pub started_at: DateTime<Utc>,
}

/// An LLM call that returned, with its answer or error.
#[derive(Debug)]
pub struct LlmCallEnded<'a> {
    pub persona: Agent,
    pub turn: u32,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub outcome: Result<&'a LlmResponse, &'a LlmError>,
}

/// A tool call about to run. `call_id` is the model's id for it, also found
/// in the matching [`ToolCallRecord`].
#[derive(Debug)]
pub struct ToolCallStarted<'a> {
    pub persona: Agent,
    pub call_id: &'a str,
    pub name: &'a str,
    pub args: &'a Value,
    pub started_at: DateTime<Utc>,
}

/// Receives the loop's progress. Every method defaults to doing nothing.
#[async_trait]
pub trait AgentObserver: Send + Sync {
    async fn llm_call_started(&self, _call: &LlmCallStarted<'_>) {}
    async fn llm_call_ended(&self, _call: &LlmCallEnded<'_>) {}
    async fn tool_call_started(&self, _call: &ToolCallStarted<'_>) {}
    async fn tool_call_ended(&self, _persona: Agent, _record: &ToolCallRecord) {}
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

#[async_trait]
impl AgentObserver for NoopObserver {}
