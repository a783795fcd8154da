//! The pipeline core: starting, cancelling and deciding runs, and the
//! handlers behind the task and callback queues. The HTTP API, the Lambda
//! functions and the CLI all call into this; none of them holds logic of its
//! own.
pub mod callbacks;
pub mod cost;
pub mod doctor;
mod error;
mod executions;
mod gates;
mod graph;
pub mod intents;
pub mod limits;
mod reconcile;
mod redrive;
mod review;
mod runs;
mod spans;
mod spend;
mod tools;
mod watch;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::{Project, ProvidersMode};
use crate::engine::Engine;
use crate::hitl::HitlSigner;
use crate::providers::llm::Llm;
use crate::providers::ProviderClients;
use crate::queue::Queue;
use crate::store::Store;
use crate::telemetry::spans::Tracer;
use crate::webhooks::WebhookSecrets;

pub use crate::engine::ExecutionEnded as ExecutionStatusChange;
pub use error::PipelineError;
pub use executions::ExecutionEndOutcome;
pub use gates::{ApprovalLink, GateDecision, REJECTED_ERROR};
pub use graph::{steps, RunGraph, Step, StepStatus};
pub use reconcile::{ReconcileReport, ReconcileSettings};
pub use redrive::{Lineage, Redrive, ReplayRequest, RunLink};
pub use review::{GateReview, GateView};
pub use runs::{Evidence, NewRunRequest};
pub use spans::{chat_tree, usage_attributes, ChatTree, RunTree};
pub use spend::BUDGET_EXCEEDED;
pub use watch::{RunWatch, MAX_WAIT};

/// Where things are reachable and which modes are on; fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where people reach the API (approval links).
    pub public_base_url: String,
    /// Where providers call back.
    pub webhook_base_url: String,
    pub providers_mode: ProvidersMode,
    pub task_queue_url: String,
    pub callback_queue_url: String,
    /// When overdue jobs are asked about.
    pub reconcile: ReconcileSettings,
    /// What runs are costed with (`cost`).
    pub prices: cost::Prices,
    /// A budget for every run, in place of its project's (`BUDGET_USD`).
    pub budget_usd: Option<f64>,
    /// Whether runs run on Step Functions: their AWS lines are then spend,
    /// not an estimate.
    pub on_aws: bool,
}

/// The pipeline core and the ports it runs on, built once at start-up.
/// Cloned for every task, tool and handler: each part is shared, so a clone
/// allocates nothing.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn Engine>,
    pub queue: Arc<dyn Queue>,
    pub hitl: Arc<HitlSigner>,
    pub settings: Arc<Settings>,
    /// The state machine of each project (its ARN).
    pub state_machines: Arc<HashMap<Project, String>>,
    pub providers: Arc<ProviderClients>,
    pub llm: Arc<dyn Llm>,
    pub webhook_secrets: Arc<WebhookSecrets>,
    /// Records the run trees (spans) and exports them.
    pub tracer: Tracer,
    /// The requests waiting for a run's status to change.
    pub run_watch: Arc<RunWatch>,
}

impl Pipeline {
    /// The state machine that runs `project`, or `NotFound`.
    pub fn state_machine(&self, project: &Project) -> Result<&str, PipelineError> {
        self.state_machines
            .get(project)
            .map(String::as_str)
            .ok_or_else(|| {
                let mut known: Vec<&str> =
                    self.state_machines.keys().map(Project::as_str).collect();
                known.sort_unstable();
                PipelineError::NotFound(format!("project {project} (known: {})", known.join(", ")))
            })
    }
}
