//! Store errors: what went wrong, in terms a caller can act on.
use crate::domain::{ParseError, RunStatus};

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
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
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

    /// `create_run` drew `JOB_CODE_ATTEMPTS` job codes and every one was taken.
    pub(crate) fn no_free_job_code(project: impl std::fmt::Display) -> Self {
        Self::Refused(format!(
            "no free job code for project {project} after {} attempts",
            super::JOB_CODE_ATTEMPTS
        ))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}

/// True when `err` is a unique-constraint violation (any SQL backend).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// True when `err` is a foreign-key violation (any SQL backend).
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
