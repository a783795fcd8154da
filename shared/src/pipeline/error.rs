//! What can go wrong in the pipeline core, in terms the API and the CLI map to
//! statuses and exit codes.
use crate::engine::EngineError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A run, gate or project that does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// Bad input (400/422).
    #[error("{0}")]
    Invalid(String),
    /// The thing exists but is not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// A signed link that is forged, expired or for something else (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the engine refused: {0}")]
    Engine(#[from] EngineError),
    #[error("the queue failed: {0}")]
    Queue(#[from] crate::queue::QueueError),
    /// A provider could not be asked (after the client's own retries).
    #[error("{0}")]
    Provider(String),
}

impl PipelineError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
}
