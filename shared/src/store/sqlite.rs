//! The embedded default: one SQLite file (`.myloware/mw.db`) in WAL mode.
//! Writes go through a single connection, SQLite's own model, so concurrent
//! writers queue instead of failing with `SQLITE_BUSY`; reads use a pool.
//! The WAL is checkpointed by a connection of its own, beside the writer.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Connection as _;
use tokio::sync::oneshot;

use super::sql::sql_store;
use super::sql_engine::sql_engine_store;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Stops the checkpointer when the last clone of the store goes.
    _checkpointer: Arc<oneshot::Sender<()>>,
}

/// How often the checkpointer copies committed WAL frames into the database
/// file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The WAL size (pages) at which the writer checkpoints by itself: a safety
/// net should the checkpointer fall behind.
const WRITER_CHECKPOINT_PAGES: &str = "65536";

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
            .busy_timeout(Duration::from_secs(10));
        let open_error = |e: sqlx::Error| StoreError::Open(format!("{}: {e}", path.display()));
        // A local file cannot drop a connection the way a server can, so the
        // round trip that tests each connection before use is skipped.
        // Checkpoints are not the writer's work: a checkpoint inside a commit
        // holds up every writer queued behind it (about a tenth of the
        // writer's time under load), while a passive checkpoint on another
        // connection runs beside the writes.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES),
            )
            .await
            .map_err(open_error)?;
        let checkpoints = SqliteConnection::connect_with(&options)
            .await
            .map_err(open_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(checkpoint_until(checkpoints, stopped));
        Ok(Self {
            writer,
            reader,
            _checkpointer: Arc::new(stop),
        })
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

/// Copies committed WAL frames into the database file every
/// `CHECKPOINT_EVERY` (passive: never waits for readers or the writer) until
/// the store goes.
async fn checkpoint_until(mut connection: SqliteConnection, mut stop: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut connection)
                    .await
                {
                    tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
                }
            }
        }
    }
    let _ = connection.close().await;
}

sql_store!(SqliteStore, sqlx::Sqlite);
sql_engine_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    /// The migrations' pages reach the database file without the writer
    /// checkpointing (its threshold is far above what they write).
    #[tokio::test]
    async fn the_checkpointer_copies_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mw.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.run_migrations().await.unwrap();
        let wal = std::fs::metadata(dir.path().join("mw.db-wal"))
            .unwrap()
            .len();
        assert!(wal > 16 * 4096, "the migrations wrote {wal} bytes of WAL");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let file = std::fs::metadata(&path).unwrap().len();
            if file > 8 * 4096 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still {file} bytes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
