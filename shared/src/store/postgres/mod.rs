//! Postgres (RDS in AWS, any server locally), on sqlx. Table and column
//! names match the runbook, so its psql queries work verbatim against this
//! database.
//!
//! Postgres reads what is committed statement by statement, so a provider
//! job's settlement first takes a lock on its task (`pg_advisory_xact_lock`,
//! held to the commit) before it looks at the task's other jobs: otherwise
//! the last two jobs, settled side by side, could each see the other pending
//! and neither complete the task.
mod engine;
mod rows;
mod store;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PostgresStore {
    const BACKEND: &'static str = "postgres";

    /// Connects to `url` (`postgres://user@host:port/db`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Open(redact_url_error(url, &e)))?;
        Ok(Self { pool })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::migrate(Self::BACKEND, e))
    }
}

/// The connection error, naming the server but never its password.
fn redact_url_error(url: &str, err: &sqlx::Error) -> String {
    format!("{}: {err}", super::redact_url(url))
}
