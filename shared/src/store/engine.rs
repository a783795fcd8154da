//! The `EngineStore` port: what the local engine persists. An execution is a
//! row holding a snapshot of the interpreter; every transition is one
//! `Commit` — the new snapshot (compare-and-set on its version), the history
//! events it produced and the queue messages it sends — written in one transaction before anything is acted on. Commits of
//! many executions may share a transaction (group commit); a commit whose
//! version check fails is skipped without touching the others.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// A history event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRecord {
    pub event_id: i64,
    pub previous_event_id: i64,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    /// The event's details as JSON text.
    pub details: String,
}

/// A message for the local queue, sent once the transition is committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueMessage {
    pub id: String,
    pub queue_url: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub receive_count: i64,
}

/// How an execution stands after a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `ABORTED` or `TIMED_OUT`.
    pub status: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub stop_date: Option<DateTime<Utc>>,
    /// The interpreter snapshot as JSON text.
    pub snapshot: String,
}

/// What is fixed when an execution starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub definition: String,
    pub input: String,
    pub start_date: DateTime<Utc>,
}

/// Whether a commit creates the execution or advances it from a version.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitKind {
    Start(NewExecution),
    Advance { expected_version: i64 },
}

/// One transition of one execution, written all together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub execution_arn: String,
    pub kind: CommitKind,
    pub version: i64,
    pub state: ExecutionState,
    pub history: Vec<HistoryRecord>,
    pub messages: Vec<QueueMessage>,
}

/// Why a commit in a group was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRefused {
    #[error("execution {0} already exists")]
    AlreadyExists(String),
    #[error("execution {0} was advanced by someone else")]
    VersionConflict(String),
}

impl Commit {
    /// Why this commit was refused when its write changed nothing: its
    /// execution already existed, or had moved past the expected version.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn refusal(&self) -> CommitRefused {
        match self.kind {
            CommitKind::Start(_) => CommitRefused::AlreadyExists(self.execution_arn.clone()),
            CommitKind::Advance { .. } => {
                CommitRefused::VersionConflict(self.execution_arn.clone())
            }
        }
    }
}

/// An execution as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub definition: String,
    pub input: String,
    pub state: ExecutionState,
    pub version: i64,
    pub start_date: DateTime<Utc>,
}

/// What one group commit writes: transitions of many executions, and the
/// queue messages their consumers acknowledged meanwhile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub commits: Vec<Commit>,
    /// Messages sent on their own (not by a transition), e.g. callbacks.
    pub messages: Vec<QueueMessage>,
    /// Ids of queue messages to delete.
    pub acks: Vec<String>,
}

#[async_trait]
pub trait EngineStore: Send + Sync + std::fmt::Debug {
    /// Applies a batch in one transaction; each commit answers for itself
    /// (in order), a refused one leaving the others unaffected.
    async fn commit(&self, batch: Batch) -> Result<Vec<Result<(), CommitRefused>>, StoreError>;
    async fn load_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError>;
    /// The same without the definition text: for describing an execution.
    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Executions with status `RUNNING`: what to resume after a restart.
    async fn running_executions(&self) -> Result<Vec<ExecutionRecord>, StoreError>;
    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryRecord>, StoreError>;
    /// Messages not yet acknowledged, oldest first.
    async fn queued_messages(&self, queue_url: &str) -> Result<Vec<QueueMessage>, StoreError>;
    /// Whether concurrent `commit` calls are grouped into one transaction by
    /// the store itself (SQLite's group commit), so the engine need not
    /// batch them first.
    fn groups_writes(&self) -> bool {
        false
    }
}
