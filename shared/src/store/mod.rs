//! The `Store` port: everything a run leaves on the record, one trait per
//! aggregate (`port.rs`). Adapters, each in a folder of its own with the same
//! files (`mod.rs`, `store.rs`, `engine.rs` for the local engine's tables
//! where it has them, and its rows or items): `sqlite` (the embedded
//! default), `postgres`, `dynamodb` (one table, the distributed default in
//! AWS). The statements SQLite and Postgres share are written once in `sql`.
//! Every adapter passes the same conformance suite
//! (`tests/it/store_conformance.rs`).
//!
//! Writes that must not be half-done (a status change and its artifact, a
//! webhook event and its idempotency key) are single statements or single
//! transactions in every adapter (`TransactWriteItems` in DynamoDB); status
//! changes are compare-and-set.
mod clock;
mod dynamodb;
pub mod engine;
mod error;
mod port;
#[cfg(feature = "postgres")]
mod postgres;
mod settings;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::domain::{
    HitlDecision, HitlRequest, JobStatus, NewArtifact, Project, ProviderJob, Run, RunId, RunRef,
    RunStatus, WebhookEvent,
};

pub use dynamodb::DynamoDbStore;
pub use engine::EngineStore;
pub use error::{BoxError, StoreError};
pub use port::{
    ArtifactStore, ConversationStore, GateStore, Maintenance, ProviderJobStore, RunStore,
    SpanStore, Store, WebhookEventStore,
};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use settings::{redact_url, DatabaseConfig};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// The store's traits, for calling their methods on an adapter itself
/// (`SqliteStore`, `DynamoDbStore`) or through a generic `S: Store`:
/// `use crate::store::prelude::*`. A `dyn Store` needs none of them.
pub mod prelude {
    pub use crate::store::port::{
        ArtifactStore as _, ConversationStore as _, GateStore as _, Maintenance as _,
        ProviderJobStore as _, RunStore as _, SpanStore as _, WebhookEventStore as _,
    };
}

/// The adapter `config` names, seen through each port it implements.
#[derive(Debug, Clone)]
pub struct Backend {
    pub store: Arc<dyn Store>,
    /// The local engine's storage; DynamoDB has none (it runs with Step
    /// Functions).
    pub engine: Option<Arc<dyn EngineStore>>,
}

impl Backend {
    /// The local engine's storage, or why this store has none.
    pub fn engine_store(&self) -> Result<Arc<dyn EngineStore>, StoreError> {
        self.engine.clone().ok_or_else(|| {
            StoreError::Unsupported(format!(
                "the local engine cannot keep executions in {}; use ENGINE=stepfunctions",
                self.store.backend()
            ))
        })
    }
}

/// Opens the store `config` names and applies pending migrations.
pub async fn open(config: &DatabaseConfig) -> Result<Backend, StoreError> {
    let backend = match config {
        #[cfg(feature = "sqlite")]
        DatabaseConfig::Sqlite { path } => {
            let adapter = Arc::new(SqliteStore::open(path).await?);
            Backend {
                store: adapter.clone(),
                engine: Some(adapter),
            }
        }
        #[cfg(feature = "postgres")]
        DatabaseConfig::Postgres { url } => {
            let adapter = Arc::new(PostgresStore::connect(url).await?);
            Backend {
                store: adapter.clone(),
                engine: Some(adapter),
            }
        }
        DatabaseConfig::DynamoDb { table } => Backend {
            store: Arc::new(DynamoDbStore::connect(table).await),
            engine: None,
        },
        // A build without the adapter (a Lambda function's: DynamoDB only).
        #[allow(unreachable_patterns)]
        other => {
            return Err(StoreError::Unsupported(format!(
                "this build has no adapter for the store {other}: build myloware with the \
                 feature `{}`",
                if matches!(other, DatabaseConfig::Sqlite { .. }) {
                    "sqlite"
                } else {
                    "postgres"
                }
            )))
        }
    };
    backend.store.migrate().await?;
    Ok(backend)
}

/// Opens the store `config` names and applies pending migrations.
pub async fn connect(config: &DatabaseConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(open(config).await?.store)
}

/// The run `key` names, by id or job code.
pub async fn find_run(store: &dyn Store, key: &RunRef) -> Result<Option<Run>, StoreError> {
    match key {
        RunRef::Id(id) => store.get_run(*id).await,
        RunRef::Code(code) => store.find_run_by_job_code(code).await,
    }
}

/// Which runs `list_runs` returns: newest first, `limit` per page, the page
/// after the run `after` when given.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub project: Option<Project>,
    pub limit: Option<u32>,
    pub after: Option<RunId>,
}

impl RunFilter {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 500;

    pub(crate) fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

/// One page of runs; `next` is the cursor for the following page, if any.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next: Option<RunId>,
}

impl RunPage {
    /// The page from up to `limit + 1` runs read in order: the extra one
    /// only says that a next page exists.
    pub(crate) fn from_overfetched(mut runs: Vec<Run>, limit: usize) -> Self {
        let next = if runs.len() > limit {
            runs.truncate(limit);
            runs.last().map(|r| r.run_id)
        } else {
            None
        };
        Self { runs, next }
    }
}

/// A compare-and-set status change, with what it changes alongside, applied
/// all together or not at all.
#[derive(Debug, Clone)]
pub struct Transition {
    pub run_id: RunId,
    pub from: RunStatus,
    pub to: RunStatus,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub artifact: Option<NewArtifact>,
    /// A redrive: the one change out of a terminal status (`failed` back to
    /// `running`), made only by `Transition::redrive`.
    redrive: bool,
}

impl Transition {
    pub fn new(run_id: RunId, from: RunStatus, to: RunStatus) -> Self {
        Self {
            run_id,
            from,
            to,
            error: None,
            result: None,
            artifact: None,
            redrive: false,
        }
    }

    /// A failed run going back to `running`, continued by a new execution
    /// (`RunStatus::can_be_redriven`). Compare-and-set like every change,
    /// so of two redrives of the same run one wins.
    pub fn redrive(run_id: RunId) -> Self {
        Self {
            redrive: true,
            ..Self::new(run_id, RunStatus::Failed, RunStatus::Running)
        }
    }

    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    pub fn result(mut self, result: Value) -> Self {
        self.result = Some(result);
        self
    }

    pub fn artifact(mut self, artifact: NewArtifact) -> Self {
        self.artifact = Some(artifact);
        self
    }

    pub(crate) fn check_legal(&self) -> Result<(), StoreError> {
        let redrive = self.redrive && self.from.can_be_redriven() && self.to == RunStatus::Running;
        if redrive || self.from.can_become(self.to) {
            Ok(())
        } else {
            Err(StoreError::IllegalTransition {
                from: self.from,
                to: self.to,
            })
        }
    }
}

/// What recording a webhook event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Inserted(WebhookEvent),
    /// Already recorded under the same provider and idempotency key; the
    /// stored event is returned unchanged.
    Duplicate(WebhookEvent),
}

impl Recorded {
    pub fn event(&self) -> &WebhookEvent {
        match self {
            Self::Inserted(e) | Self::Duplicate(e) => e,
        }
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate(_))
    }
}

/// How a provider job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Succeeded(Value),
    Failed(String),
}

impl JobOutcome {
    /// The settled job's status, result and error, as stored.
    pub(crate) fn into_parts(self) -> (JobStatus, Option<Value>, Option<String>) {
        match self {
            Self::Succeeded(result) => (JobStatus::Succeeded, Some(result), None),
            Self::Failed(error) => (JobStatus::Failed, None, Some(error)),
        }
    }
}

/// What settling a provider job did: settled it now, or found it settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Now(ProviderJob),
    Already(ProviderJob),
}

/// What `settle_provider_job_for_event` did: the settlement, and whether the
/// callback's webhook event was finished in the same write.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledForEvent {
    pub settled: Settled,
    pub event_finished: bool,
}

/// What deciding a gate did: decided it now, or found it decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    Now(HitlRequest),
    Already(HitlRequest),
}

/// A human's decision at a gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub decision: HitlDecision,
    pub decided_by: String,
    pub comment: Option<String>,
}

/// What `prune` deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub runs: u64,
    pub artifacts: u64,
    pub webhook_events: u64,
}

/// How many times `create_run` draws a new job code after a collision.
pub(crate) const JOB_CODE_ATTEMPTS: usize = 8;

/// A provider job's `checks` as stored (a `BIGINT`, a number attribute):
/// never negative, and far below `u32::MAX`, unless the record is corrupt.
pub(crate) fn check_count(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored).map_err(|_| {
        crate::domain::ParseError::new("check count", &stored.to_string(), "expected a u32").into()
    })
}
