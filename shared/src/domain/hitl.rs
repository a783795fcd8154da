//! Human-in-the-loop requests and the decisions that end them.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{named_enum, Gate, NewArtifact, RunId};

named_enum! {
    /// A human's answer at a gate.
    pub enum HitlDecision: "hitl decision" {
        Approved => "approved",
        Rejected => "rejected",
    }
}

/// A `hitl_requests` row: a run waiting at a gate, and once decided, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HitlRequest {
    pub run_id: RunId,
    pub gate: Gate,
    /// The engine task to complete. A credential: never serialized, so no
    /// API answer, evidence bundle or log shows it.
    #[serde(skip_serializing, default)]
    pub task_token: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub decision: Option<HitlDecision>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// When the engine took the decision (its task completed). A decision
    /// without it was stored but not yet confirmed by the engine: it is sent
    /// again (a second click, the reconciler, a restart) until it is.
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A gate the run now waits at.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHitlRequest {
    pub run_id: RunId,
    pub gate: Gate,
    pub task_token: Option<String>,
    /// The `hitl.request` artifact (the approval link) stored with it.
    pub artifact: Option<NewArtifact>,
}
