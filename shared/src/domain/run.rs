//! A run: one execution of a project's persona graph.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{named_enum, JobCode, Project, RunId, RunStatus};

named_enum! {
    /// Whether a run talks to the mock providers or the real services.
    pub enum ProvidersMode: "providers mode" {
        Mock => "mock",
        Live => "live",
    }
}

/// A run as stored: the `runs` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Run {
    pub run_id: RunId,
    pub project: Project,
    pub status: RunStatus,
    pub job_code: JobCode,
    pub user_id: Option<String>,
    pub input: Value,
    pub result: Option<Value>,
    pub execution_id: Option<String>,
    pub providers_mode: ProvidersMode,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Run {
    /// What the run's log lines carry.
    pub fn labels(&self) -> RunLabels {
        RunLabels {
            run_id: self.run_id,
            project: self.project.clone(),
            providers_mode: self.providers_mode,
            status: self.status,
        }
    }
}

/// What every log line of a run's work carries (`telemetry::run_span`):
/// all a callback's path needs of its run, read without the run's input and
/// result (`Store::get_run_labels`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunLabels {
    pub run_id: RunId,
    pub project: Project,
    pub providers_mode: ProvidersMode,
    pub status: RunStatus,
}

/// What it takes to create a run; the store assigns the job code and times.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub run_id: RunId,
    pub project: Project,
    pub user_id: Option<String>,
    pub input: Value,
    pub providers_mode: ProvidersMode,
}

impl NewRun {
    pub fn new(project: Project, input: Value, providers_mode: ProvidersMode) -> Self {
        Self {
            run_id: RunId::new(),
            project,
            user_id: None,
            input,
            providers_mode,
        }
    }

    pub fn for_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
}
