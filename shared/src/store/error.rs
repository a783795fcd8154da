//! Store errors: what went wrong, in terms a caller can act on. An
//! adapter's own error (rusqlite's, sqlx's) is kept as the source of a
//! `Database` or `Migrate` error, boxed, so that no caller depends on which
//! adapter runs; each adapter converts its errors beside its code.
use crate::domain::{ParseError, RunStatus};

/// An adapter's own error, as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("illegal status change: {from} -> {to}")]
    IllegalTransition { from: RunStatus, to: RunStatus },
    #[error("status change refused: expected {expected}, but the run is {actual}")]
    Conflict {
        expected: RunStatus,
        actual: RunStatus,
    },
    #[error("{what} already exists")]
    Duplicate { what: String },
    #[error("{0}")]
    Refused(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] ParseError),
    #[error("stored JSON is corrupt: {0}")]
    CorruptJson(#[from] serde_json::Error),
    #[error("could not open the database: {0}")]
    Open(String),
    #[error("{backend} database migration failed")]
    Migrate {
        backend: &'static str,
        #[source]
        source: BoxError,
    },
    /// A statement failed in the database `backend` (`sqlite`, `postgres`).
    #[error("{backend} database error")]
    Database {
        backend: &'static str,
        #[source]
        source: BoxError,
    },
    /// A write whose transaction did not commit (it may have run alone
    /// correctly, but nothing of it was kept).
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    #[error("{0}")]
    Unsupported(String),
    /// A DynamoDB call failed: the operation and the service's message
    /// (error code, request id), never a credential.
    #[error("DynamoDB {operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
}

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub(crate) fn duplicate(what: impl Into<String>) -> Self {
        Self::Duplicate { what: what.into() }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn database(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Database {
            backend,
            source: source.into(),
        }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn migrate(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Migrate {
            backend,
            source: source.into(),
        }
    }

    /// `create_run` drew `JOB_CODE_ATTEMPTS` job codes and every one was taken.
    pub(crate) fn no_free_job_code(project: impl std::fmt::Display) -> Self {
        Self::Refused(format!(
            "no free job code for project {project} after {} attempts",
            super::JOB_CODE_ATTEMPTS
        ))
    }
}
