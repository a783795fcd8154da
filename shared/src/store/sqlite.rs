//! The embedded default: one SQLite file (`.myloware/mw.db`) in WAL mode.
//! Writes go through a single connection, SQLite's own model, so concurrent
//! writers queue instead of failing with `SQLITE_BUSY`; reads use a pool.
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::sql_store;
use super::sql_engine::sql_engine_store;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the database file at `path`, and its folder.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a committed transaction survives a process
            // crash; only an OS crash or power loss can lose the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // A page cache large enough for the hot rows (64 MiB), so writes
            // do not re-read pages from the file.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // Checkpoint the WAL every 64 MiB rather than 4 MiB: a page rewritten
            // by many transitions in between is copied to the file once.
            .pragma("wal_autocheckpoint", "16384")
            .busy_timeout(Duration::from_secs(10));
        // A local file cannot drop a connection the way a server can, so the
        // round trip that tests each connection before use is skipped.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        Ok(Self { writer, reader })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(StoreError::Migrate)
    }
}

sql_store!(SqliteStore, sqlx::Sqlite);
sql_engine_store!(SqliteStore, sqlx::Sqlite);
