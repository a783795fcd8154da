//! The embedded default: one SQLite file (`.myloware/mw.db`) in WAL mode,
//! used through rusqlite on the calling thread.
//!
//! A call is a few statements on a file this process caches (tens of
//! microseconds), so it runs where it is made rather than being handed to a
//! connection thread and back: with sqlx's thread per connection every
//! statement cost two thread switches, most of the stack's CPU under load.
//!
//! - Writes are group-committed (`SqliteStore::write`): they queue, and
//!   whichever caller finds the one writer connection free runs every queued
//!   write in one transaction, each in a savepoint of its own, and hands each
//!   caller its result once the commit is done. A caller that finds the
//!   writer busy waits without holding its thread. One writer is SQLite's own
//!   model: writes queue instead of failing with `SQLITE_BUSY`.
//! - Reads use the writer connection when no batch is running (its page
//!   cache is never stale: no other connection writes), else one of two
//!   reader connections (WAL: a reader sees every commit made before it
//!   began; SQLite drops its page cache after another connection's commit).
//! - The WAL is checkpointed by a connection of its own, on a thread beside
//!   them.
//!
//! Migrations run through sqlx's migrator (the `_sqlx_migrations` table) and
//! times are stored as the RFC 3339 text sqlx wrote, so files written by
//! earlier versions open unchanged.
mod engine;
mod rows;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use self::rows::*;
use super::rows::{now, truncate};
use super::sql::{
    ARTIFACT_COLUMNS, HITL_COLUMNS, JOB_COLUMNS, RUN_COLUMNS, SPAN_COLUMNS, TERMINAL_STATUSES,
    WEBHOOK_COLUMNS,
};
use super::{
    Decided, Decision, JobOutcome, PruneReport, Recorded, RunFilter, RunPage, Settled, Store,
    StoreError, Transition, JOB_CODE_ATTEMPTS,
};
use crate::domain::{
    Artifact, ChatMessage, ChatRole, Gate, HitlRequest, JobCode, JobStatus, NewArtifact,
    NewHitlRequest, NewProviderJob, NewRun, NewSpan, NewWebhookEvent, Provider, ProviderJob, Run,
    RunId, RunStatus, Span, SpanEnd, SpanId, SpanStatus, TraceId, WebhookEvent, WebhookEventStatus,
};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
}

struct Db {
    path: PathBuf,
    /// Writes, and the reads inside them.
    writer: Mutex<Connection>,
    /// Writes waiting for the writer (see `SqliteStore::write`).
    pending: Mutex<Vec<PendingWrite>>,
    /// Reads on their own, beside the writes (WAL: a reader sees every
    /// transaction committed before it began).
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Dropped with the store: stops the checkpointer.
    _checkpointer: mpsc::Sender<()>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Connections for reads: one per core on the machines this runs on.
const READERS: usize = 2;

/// The writer's page cache: large enough for the hot rows (64 MiB), so
/// writes do not re-read pages from the file. Kept across transactions: no
/// other connection writes.
const WRITER_CACHE_KIB: i64 = 8_192;

/// A reader's page cache: SQLite drops it whenever another connection has
/// committed since the reader's last read, so a large one buys nothing.
const READER_CACHE_KIB: i64 = 2_048;

/// How often the checkpointer copies committed WAL frames into the database
/// file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The WAL size (pages) at which the connection checkpoints by itself: a
/// safety net should the checkpointer fall behind.
const WRITER_CHECKPOINT_PAGES: i64 = 65_536;

/// How long a call waits for another process's write lock (a CLI command
/// writing while `mw serve` runs) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection: every statement this adapter
/// issues, with room to spare.
const STATEMENT_CACHE: usize = 128;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the database file at `path`, and its folder.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        let open_error = |e: rusqlite::Error| StoreError::Open(format!("{}: {e}", path.display()));
        let connection = connect(path, WRITER_CACHE_KIB).map_err(open_error)?;
        // Checkpoints are not the writes' work: a checkpoint inside a commit
        // holds up every caller queued behind it, while a passive one on
        // another connection runs beside them.
        connection
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(open_error)?;
        let readers = (0..READERS)
            .map(|_| connect(path, READER_CACHE_KIB).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(open_error)?;
        let checkpoints = connect(path, READER_CACHE_KIB).map_err(open_error)?;
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("mw-sqlite-checkpoint".into())
            .spawn(move || checkpoint_until(checkpoints, stopped))
            .map_err(|e| StoreError::Open(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self {
            db: Arc::new(Db {
                path: path.to_owned(),
                writer: Mutex::new(connection),
                pending: Mutex::new(Vec::new()),
                readers,
                next_reader: AtomicUsize::new(0),
                _checkpointer: stop,
            }),
        })
    }

    /// Runs the read `f` on a reader connection: a free one if there is
    /// one, else the next in turn.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The writer's page cache is never stale (no other connection
        // writes), while a reader's is dropped after every commit: read
        // there when no batch is running, then run what queued meanwhile.
        if let Ok(mut connection) = self.db.writer.try_lock() {
            let read = f(&mut connection);
            drop(connection);
            self.run_pending();
            return read;
        }
        let readers = &self.db.readers;
        let first = self.db.next_reader.fetch_add(1, Ordering::Relaxed);
        let free =
            (0..readers.len()).find_map(|i| readers[(first + i) % readers.len()].try_lock().ok());
        let mut connection = match free {
            Some(connection) => connection,
            None => locked(&readers[first % readers.len()]),
        };
        f(&mut connection)
    }

    /// Runs `f` in a write transaction, committed when this returns `Ok`.
    ///
    /// Group commit without a thread of its own: the write is queued, and
    /// whichever caller finds the writer connection free runs every queued
    /// write in one transaction (each in a savepoint of its own, so one that
    /// fails leaves the others), commits once, and hands each caller its
    /// result. A caller that finds the writer busy waits without holding its
    /// thread; under load one commit, and one write of the pages the writes
    /// share, serves many writes.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let write: PendingWrite = Box::new(move |connection| {
            let outcome = match connection {
                Ok(connection) => in_savepoint(connection, f),
                Err(e) => Err(StoreError::NotCommitted(e.to_string())),
            };
            Box::new(move |committed: Result<(), &StoreError>| {
                let _ = done.send(match committed {
                    Ok(()) => outcome,
                    Err(e) => outcome.and(Err(StoreError::NotCommitted(e.to_string()))),
                });
            })
        });
        locked(&self.db.pending).push(write);
        self.run_pending();
        result.await.unwrap_or_else(|_| {
            Err(StoreError::NotCommitted(
                "the write was dropped before it ran".into(),
            ))
        })
    }

    /// Runs the queued writes if the writer connection is free, and again
    /// while writes queued meanwhile are waiting. A caller that finds the
    /// connection taken leaves its write to the one holding it, which looks
    /// at the queue again after letting the connection go.
    fn run_pending(&self) {
        loop {
            let mut connection = match self.db.writer.try_lock() {
                Ok(connection) => connection,
                // A panic in an earlier batch: run_batch rolls back what it left.
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            let batch = std::mem::take(&mut *locked(&self.db.pending));
            if batch.is_empty() {
                return;
            }
            run_batch(&mut connection, batch);
            drop(connection);
            if locked(&self.db.pending).is_empty() {
                return;
            }
        }
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let options = SqliteConnectOptions::new()
            .filename(&self.db.path)
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{}: {e}", self.db.path.display())))?;
        let migrated = MIGRATOR.run(&pool).await.map_err(StoreError::Migrate);
        pool.close().await;
        migrated
    }
}

/// A lock, taken. A panic inside an earlier call leaves no
/// transaction open (rusqlite rolls back on drop), so a poisoned lock is
/// taken over rather than failing every later call.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A queued write: runs on the writer connection (or learns why it cannot)
/// and returns what hands the caller its result once the commit is known.
type PendingWrite = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Runs `batch` in one transaction and tells each write how it ended.
fn run_batch(connection: &mut Connection, batch: Vec<PendingWrite>) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    if let Err(e) = connection.execute_batch("BEGIN IMMEDIATE") {
        let e = StoreError::from(e);
        for write in batch {
            write(Err(&e))(Err(&e));
        }
        return;
    }
    let delivers: Vec<Deliver> = batch
        .into_iter()
        .map(|write| write(Ok(connection)))
        .collect();
    let committed = connection.execute_batch("COMMIT").map_err(|e| {
        let _ = connection.execute_batch("ROLLBACK");
        StoreError::from(e)
    });
    for deliver in delivers {
        deliver(committed.as_ref().map(|_| ()));
    }
}

/// Runs `f` in a savepoint: undone alone if it fails.
fn in_savepoint<T>(
    connection: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection.prepare_cached("SAVEPOINT write")?.execute([])?;
    let outcome = f(connection);
    if outcome.is_err() {
        connection
            .prepare_cached("ROLLBACK TO write")?
            .execute([])?;
    }
    connection.prepare_cached("RELEASE write")?.execute([])?;
    outcome
}

/// A connection to the file at `path`, set up the same way every time.
fn connect(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    // NORMAL in WAL mode: a committed transaction survives a process crash;
    // only an OS crash or power loss can lose the last ones.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "cache_size", -cache_kib)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

/// Copies committed WAL frames into the database file every
/// `CHECKPOINT_EVERY` (passive: never waits for readers or the writer) until
/// the store goes.
fn checkpoint_until(connection: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
        }
    }
}

/// A time as stored: RFC 3339 with the offset spelled out, the text earlier
/// versions (sqlx) wrote, so old and new rows sort together.
fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

fn json(value: &Value) -> String {
    value.to_string()
}

fn insert_artifact(conn: &Connection, new: NewArtifact) -> Result<Artifact, StoreError> {
    let artifact = Artifact {
        id: Uuid::now_v7(),
        run_id: new.run_id,
        artifact_type: new.artifact_type,
        provider: new.provider,
        persona: new.persona,
        url: new.url,
        checksum: new.checksum,
        metadata: new.metadata,
        created_at: now(),
    };
    conn.prepare_cached(&format!(
        "INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        artifact.id.to_string(),
        artifact.run_id.to_string(),
        artifact.artifact_type.as_str(),
        artifact.provider.map(Provider::as_str),
        artifact.persona.map(|p| p.as_str()),
        artifact.url,
        artifact.checksum,
        json(&artifact.metadata),
        ts(&artifact.created_at),
    ])
    .map_err(|e| match constraint(&e) {
        Some(Constraint::ForeignKey) => StoreError::not_found(format!("run {}", artifact.run_id)),
        _ => e.into(),
    })?;
    Ok(artifact)
}

fn fetch_run(conn: &Connection, run_id: RunId) -> Result<Option<Run>, StoreError> {
    one(
        conn,
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
        params![run_id.to_string()],
        run,
    )
}

fn fetch_job(
    conn: &Connection,
    provider: Provider,
    job_id: &str,
) -> Result<Option<ProviderJob>, StoreError> {
    one(
        conn,
        &format!("SELECT {JOB_COLUMNS} FROM provider_jobs WHERE provider = ?1 AND job_id = ?2"),
        params![provider.as_str(), job_id],
        provider_job,
    )
}

fn fetch_span(
    conn: &Connection,
    trace_id: TraceId,
    span_id: SpanId,
) -> Result<Option<Span>, StoreError> {
    one(
        conn,
        &format!("SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ?1 AND span_id = ?2"),
        params![trace_id.to_string(), span_id.to_string()],
        span,
    )
}

impl SqliteStore {
    async fn update_run_field(
        &self,
        run_id: RunId,
        column: &str,
        value: String,
    ) -> Result<Run, StoreError> {
        let sql = format!(
            "UPDATE runs SET {column} = ?1, updated_at = ?2 WHERE run_id = ?3 RETURNING {RUN_COLUMNS}"
        );
        self.write(move |tx| {
            one(
                tx,
                &sql,
                params![value, ts(&now()), run_id.to_string()],
                run,
            )
        })
        .await?
        .ok_or_else(|| StoreError::not_found(format!("run {run_id}")))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await
    }

    async fn create_run(&self, new: NewRun) -> Result<Run, StoreError> {
        let sql = format!(
            "INSERT INTO runs ({RUN_COLUMNS}) \
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5, NULL, NULL, ?6, NULL, ?7, ?7)"
        );
        let input = json(&new.input);
        for _ in 0..JOB_CODE_ATTEMPTS {
            let job_code = JobCode::generate(&new.project);
            let created_at = now();
            let row = (
                sql.clone(),
                new.run_id.to_string(),
                new.project.as_str().to_owned(),
                job_code.as_str().to_owned(),
                new.user_id.clone(),
                input.clone(),
                new.providers_mode.as_str().to_owned(),
                ts(&created_at),
            );
            // A refused insert changes nothing: its error is the answer,
            // not a reason to undo the write.
            let inserted = self
                .write(move |tx| {
                    let (sql, run_id, project, code, user, input, mode, at) = row;
                    Ok(tx
                        .prepare_cached(&sql)?
                        .execute(params![run_id, project, code, user, input, mode, at]))
                })
                .await?;
            match inserted {
                Ok(_) => {
                    return Ok(Run {
                        run_id: new.run_id,
                        project: new.project,
                        status: RunStatus::Pending,
                        job_code,
                        user_id: new.user_id,
                        input: new.input,
                        result: None,
                        execution_id: None,
                        providers_mode: new.providers_mode,
                        error: None,
                        created_at,
                        updated_at: created_at,
                    })
                }
                Err(e)
                    if constraint(&e) == Some(Constraint::Unique)
                        && e.to_string().contains("job_code") =>
                {
                    continue
                }
                Err(e) if constraint(&e) == Some(Constraint::Unique) => {
                    return Err(StoreError::duplicate(format!("run {}", new.run_id)))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Refused(format!(
            "no free job code for project {} after {JOB_CODE_ATTEMPTS} attempts",
            new.project
        )))
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError> {
        self.with(|conn| fetch_run(conn, run_id))
    }

    async fn find_run_by_job_code(&self, code: &JobCode) -> Result<Option<Run>, StoreError> {
        self.with(|conn| {
            one(
                conn,
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE job_code = ?1"),
                params![code.as_str()],
                run,
            )
        })
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, StoreError> {
        let limit = filter.page_size();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs \
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR project = ?2) \
               AND (?3 IS NULL OR (created_at, run_id) < \
                    (SELECT c.created_at, c.run_id FROM runs c WHERE c.run_id = ?3)) \
             ORDER BY created_at DESC, run_id DESC LIMIT ?4"
        );
        let mut runs = self.with(|conn| {
            all(
                conn,
                &sql,
                params![
                    filter.status.map(|s| s.as_str()),
                    filter.project.as_ref().map(|p| p.as_str()),
                    filter.after.map(|id| id.to_string()),
                    i64::from(limit) + 1,
                ],
                run,
            )
        })?;
        let next = if runs.len() > limit as usize {
            runs.truncate(limit as usize);
            runs.last().map(|r| r.run_id)
        } else {
            None
        };
        Ok(RunPage { runs, next })
    }

    async fn transition_run(&self, change: Transition) -> Result<Run, StoreError> {
        change.check_legal()?;
        let sql = format!(
            "UPDATE runs SET status = ?1, updated_at = ?2, \
               error = COALESCE(?3, error), result = COALESCE(?4, result) \
             WHERE run_id = ?5 AND status = ?6 RETURNING {RUN_COLUMNS}"
        );
        self.write(move |tx| {
            let updated = one(
                tx,
                &sql,
                params![
                    change.to.as_str(),
                    ts(&now()),
                    change.error.as_deref(),
                    change.result.as_ref().map(json),
                    change.run_id.to_string(),
                    change.from.as_str(),
                ],
                run,
            )?;
            let Some(updated) = updated else {
                let current = fetch_run(tx, change.run_id)?
                    .ok_or_else(|| StoreError::not_found(format!("run {}", change.run_id)))?;
                return Err(StoreError::Conflict {
                    expected: change.from,
                    actual: current.status,
                });
            };
            if let Some(artifact) = change.artifact {
                insert_artifact(tx, artifact)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn set_run_result(&self, run_id: RunId, result: Value) -> Result<Run, StoreError> {
        self.update_run_field(run_id, "result", json(&result)).await
    }

    async fn set_execution_id(&self, run_id: RunId, execution_id: &str) -> Result<Run, StoreError> {
        self.update_run_field(run_id, "execution_id", execution_id.to_owned())
            .await
    }

    async fn append_artifact(&self, artifact: NewArtifact) -> Result<Artifact, StoreError> {
        self.write(move |tx| insert_artifact(tx, artifact)).await
    }

    async fn list_artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                &format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ?1 ORDER BY created_at, id"
                ),
                params![run_id.to_string()],
                artifact,
            )
        })
    }

    async fn list_artifacts_of(
        &self,
        run_id: RunId,
        types: &[&str],
    ) -> Result<Vec<Artifact>, StoreError> {
        let wanted: Vec<String> = (0..types.len()).map(|i| format!("?{}", i + 2)).collect();
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ?1 AND type IN ({}) \
             ORDER BY created_at, id",
            wanted.join(", ")
        );
        let run_id = run_id.to_string();
        let values = std::iter::once(run_id.as_str()).chain(types.iter().copied());
        self.with(|conn| all(conn, &sql, rusqlite::params_from_iter(values), artifact))
    }

    async fn record_webhook_event(&self, new: NewWebhookEvent) -> Result<Recorded, StoreError> {
        let event = WebhookEvent {
            id: Uuid::now_v7(),
            run_id: new.run_id,
            provider: new.provider,
            idempotency_key: new.idempotency_key,
            provider_job_id: new.provider_job_id,
            signature_status: new.signature_status,
            headers: new.headers,
            payload: new.payload,
            status: new.status,
            error: None,
            created_at: now(),
            processed_at: None,
        };
        let insert = format!(
            "INSERT INTO webhook_events ({WEBHOOK_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10, NULL) \
             ON CONFLICT (provider, idempotency_key) DO NOTHING"
        );
        let select = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhook_events WHERE provider = ?1 AND idempotency_key = ?2"
        );
        self.write(move |tx| {
            let inserted = tx
                .prepare_cached(&insert)?
                .execute(params![
                    event.id.to_string(),
                    event.run_id.map(|id| id.to_string()),
                    event.provider.as_str(),
                    event.idempotency_key,
                    event.provider_job_id,
                    event.signature_status.as_str(),
                    json(&event.headers),
                    json(&event.payload),
                    event.status.as_str(),
                    ts(&event.created_at),
                ])
                .map_err(|e| match constraint(&e) {
                    Some(Constraint::ForeignKey) => {
                        StoreError::not_found(format!("run {}", event.run_id.unwrap_or_default()))
                    }
                    _ => e.into(),
                })?;
            if inserted == 1 {
                return Ok(Recorded::Inserted(event.clone()));
            }
            let existing = one(
                tx,
                &select,
                params![event.provider.as_str(), event.idempotency_key],
                webhook_event,
            )?
            .ok_or_else(|| {
                StoreError::not_found(format!("webhook event {}", event.idempotency_key))
            })?;
            Ok(Recorded::Duplicate(existing))
        })
        .await
    }

    async fn get_webhook_event(&self, id: Uuid) -> Result<Option<WebhookEvent>, StoreError> {
        self.with(|conn| {
            one(
                conn,
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_events WHERE id = ?1"),
                params![id.to_string()],
                webhook_event,
            )
        })
    }

    async fn list_webhook_events(&self, run_id: RunId) -> Result<Vec<WebhookEvent>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                &format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhook_events WHERE run_id = ?1 \
                     ORDER BY created_at, id"
                ),
                params![run_id.to_string()],
                webhook_event,
            )
        })
    }

    async fn finish_webhook_event(
        &self,
        id: Uuid,
        status: WebhookEventStatus,
        error: Option<&str>,
        run_id: Option<RunId>,
    ) -> Result<WebhookEvent, StoreError> {
        let sql = format!(
            "UPDATE webhook_events SET status = ?1, error = ?2, processed_at = ?3, \
               run_id = COALESCE(run_id, ?5) \
             WHERE id = ?4 RETURNING {WEBHOOK_COLUMNS}"
        );
        let error = error.map(str::to_owned);
        self.write(move |tx| {
            one(
                tx,
                &sql,
                params![
                    status.as_str(),
                    error,
                    ts(&now()),
                    id.to_string(),
                    run_id.map(|r| r.to_string()),
                ],
                webhook_event,
            )
        })
        .await?
        .ok_or_else(|| StoreError::not_found(format!("webhook event {id}")))
    }

    async fn register_provider_job(&self, job: NewProviderJob) -> Result<ProviderJob, StoreError> {
        let registered = ProviderJob {
            provider: job.provider,
            job_id: job.job_id,
            run_id: job.run_id,
            persona: job.persona,
            task_token: job.task_token,
            status: JobStatus::Pending,
            result: None,
            error: None,
            created_at: now(),
            settled_at: None,
        };
        let sql = format!(
            "INSERT INTO provider_jobs ({JOB_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', NULL, NULL, ?6, NULL)"
        );
        self.write(move |tx| {
            tx.prepare_cached(&sql)?
                .execute(params![
                    registered.provider.as_str(),
                    registered.job_id,
                    registered.run_id.to_string(),
                    registered.persona.as_str(),
                    registered.task_token.as_deref(),
                    ts(&registered.created_at),
                ])
                .map_err(|e| match constraint(&e) {
                    Some(Constraint::Unique) => StoreError::duplicate(format!(
                        "{} job {}",
                        registered.provider, registered.job_id
                    )),
                    Some(Constraint::ForeignKey) => {
                        StoreError::not_found(format!("run {}", registered.run_id))
                    }
                    _ => e.into(),
                })?;
            Ok(registered)
        })
        .await
    }

    async fn find_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Option<ProviderJob>, StoreError> {
        self.with(|conn| fetch_job(conn, provider, job_id))
    }

    async fn settle_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
    ) -> Result<Settled, StoreError> {
        let (status, result, error) = match outcome {
            JobOutcome::Succeeded(result) => (JobStatus::Succeeded, Some(result), None),
            JobOutcome::Failed(error) => (JobStatus::Failed, None, Some(error)),
        };
        let sql = format!(
            "UPDATE provider_jobs SET status = ?1, result = ?2, error = ?3, settled_at = ?4 \
             WHERE provider = ?5 AND job_id = ?6 AND status = 'pending' RETURNING {JOB_COLUMNS}"
        );
        let job_id = job_id.to_owned();
        self.write(move |tx| {
            let settled = one(
                tx,
                &sql,
                params![
                    status.as_str(),
                    result.as_ref().map(json),
                    error,
                    ts(&now()),
                    provider.as_str(),
                    job_id,
                ],
                provider_job,
            )?;
            match settled {
                Some(job) => {
                    if let Some(artifact) = artifact {
                        insert_artifact(tx, artifact)?;
                    }
                    Ok(Settled::Now(job))
                }
                None => fetch_job(tx, provider, &job_id)?
                    .map(Settled::Already)
                    .ok_or_else(|| StoreError::not_found(format!("{provider} job {job_id}"))),
            }
        })
        .await
    }

    async fn list_provider_jobs(&self, run_id: RunId) -> Result<Vec<ProviderJob>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM provider_jobs WHERE run_id = ?1 ORDER BY created_at, job_id"
                ),
                params![run_id.to_string()],
                provider_job,
            )
        })
    }

    async fn record_hitl_request(
        &self,
        request: NewHitlRequest,
    ) -> Result<HitlRequest, StoreError> {
        let sql = format!(
            "INSERT INTO hitl_requests ({HITL_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, NULL, NULL, NULL, NULL) \
             ON CONFLICT (run_id, gate) DO UPDATE SET task_token = excluded.task_token \
               WHERE hitl_requests.decision IS NULL \
             RETURNING {HITL_COLUMNS}"
        );
        let (gate, run) = (request.gate.clone(), request.run_id);
        let recorded = self
            .write(move |tx| {
                one(
                    tx,
                    &sql,
                    params![
                        request.run_id.to_string(),
                        request.gate.as_str(),
                        request.task_token.as_deref(),
                        ts(&now()),
                    ],
                    hitl_request,
                )
                .map_err(|e| match e {
                    StoreError::Sqlite(e) if constraint(&e) == Some(Constraint::ForeignKey) => {
                        StoreError::not_found(format!("run {}", request.run_id))
                    }
                    other => other,
                })
            })
            .await?;
        recorded.ok_or_else(|| {
            StoreError::Refused(format!("gate {} of run {} is already decided", gate, run))
        })
    }

    async fn decide_hitl(
        &self,
        run_id: RunId,
        gate: &Gate,
        decision: Decision,
    ) -> Result<Decided, StoreError> {
        let sql = format!(
            "UPDATE hitl_requests SET decision = ?1, decided_by = ?2, comment = ?3, decided_at = ?4 \
             WHERE run_id = ?5 AND gate = ?6 AND decision IS NULL RETURNING {HITL_COLUMNS}"
        );
        let select =
            format!("SELECT {HITL_COLUMNS} FROM hitl_requests WHERE run_id = ?1 AND gate = ?2");
        let gate = gate.clone();
        self.write(move |tx| {
            let decided = one(
                tx,
                &sql,
                params![
                    decision.decision.as_str(),
                    decision.decided_by,
                    decision.comment.as_deref(),
                    ts(&now()),
                    run_id.to_string(),
                    gate.as_str(),
                ],
                hitl_request,
            )?;
            match decided {
                Some(request) => Ok(Decided::Now(request)),
                None => one(
                    tx,
                    &select,
                    params![run_id.to_string(), gate.as_str()],
                    hitl_request,
                )?
                .map(Decided::Already)
                .ok_or_else(|| {
                    StoreError::not_found(format!("gate {gate} request of run {run_id}"))
                }),
            }
        })
        .await
    }

    async fn list_hitl_requests(&self, run_id: RunId) -> Result<Vec<HitlRequest>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                &format!(
                    "SELECT {HITL_COLUMNS} FROM hitl_requests WHERE run_id = ?1 ORDER BY requested_at, gate"
                ),
                params![run_id.to_string()],
                hitl_request,
            )
        })
    }

    async fn append_conversation(
        &self,
        user_id: &str,
        messages: Vec<(ChatRole, String, Vec<RunId>)>,
    ) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let last: Option<i64> = tx
                .prepare_cached("SELECT MAX(seq) FROM conversation_messages WHERE user_id = ?1")?
                .query_row(params![user_id], |row| row.get(0))?;
            let mut seq = last.unwrap_or(0);
            let mut insert = tx.prepare_cached(
                "INSERT INTO conversation_messages (user_id, seq, role, content, run_ids, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (role, content, run_ids) in messages {
                seq += 1;
                insert.execute(params![
                    user_id,
                    seq,
                    role.as_str(),
                    content,
                    serde_json::to_string(&run_ids)?,
                    ts(&now()),
                ])?;
            }
            Ok(())
        }).await
    }

    async fn conversation(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let mut messages = self.with(|conn| {
            all(
                conn,
                "SELECT role, content, run_ids, created_at FROM conversation_messages \
                 WHERE user_id = ?1 ORDER BY seq DESC LIMIT ?2",
                params![user_id, i64::from(limit)],
                chat_message,
            )
        })?;
        messages.reverse();
        Ok(messages)
    }

    async fn open_span(&self, new: NewSpan) -> Result<Span, StoreError> {
        let mut span = Span::opened(new);
        span.start_time = truncate(span.start_time);
        let sql = format!(
            "INSERT INTO spans ({SPAN_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, ?9, NULL)"
        );
        self.write(move |tx| {
            tx.prepare_cached(&sql)?
                .execute(params![
                    span.trace_id.to_string(),
                    span.span_id.to_string(),
                    span.parent_span_id.map(|id| id.to_string()),
                    span.run_id.map(|id| id.to_string()),
                    span.name,
                    span.status.as_str(),
                    serde_json::to_string(&span.attributes)?,
                    span.input.as_ref().map(json),
                    ts(&span.start_time),
                ])
                .map_err(|e| match constraint(&e) {
                    Some(Constraint::Unique) => StoreError::duplicate(format!(
                        "span {} of trace {}",
                        span.span_id, span.trace_id
                    )),
                    _ => e.into(),
                })?;
            Ok(span)
        })
        .await
    }

    async fn close_span(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
        mut end: SpanEnd,
    ) -> Result<Span, StoreError> {
        end.end_time = truncate(end.end_time);
        // Read, compute the closed span, then write it, all under the write
        // lock: the first close wins, later ones read it back.
        self.write(move |tx| {
            let span = fetch_span(tx, trace_id, span_id)?
                .ok_or_else(|| StoreError::not_found(format!("span {span_id} of trace {trace_id}")))?;
            if !span.is_open() || end.status == SpanStatus::Open {
                return Ok(span);
            }
            let closed = span.closed(end);
            tx.prepare_cached(
                "UPDATE spans SET status = ?1, attributes = ?2, output = ?3, error = ?4, end_time = ?5 \
                 WHERE trace_id = ?6 AND span_id = ?7 AND status = 'open'",
            )?
            .execute(params![
                closed.status.as_str(),
                serde_json::to_string(&closed.attributes)?,
                closed.output.as_ref().map(json),
                closed.error.as_deref(),
                closed.end_time.as_ref().map(ts),
                trace_id.to_string(),
                span_id.to_string(),
            ])?;
            Ok(closed)
        }).await
    }

    async fn list_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                &format!(
                    "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ?1 ORDER BY start_time, span_id"
                ),
                params![trace_id.to_string()],
                span,
            )
        })
    }

    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError> {
        let old_runs = format!(
            "SELECT run_id FROM runs WHERE status IN {TERMINAL_STATUSES} AND updated_at < ?1"
        );
        let cutoff = ts(&cutoff);
        self.write(move |tx| {
            let count = |table: &str| -> Result<i64, StoreError> {
                Ok(tx.query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE run_id IN ({old_runs})"),
                    params![cutoff],
                    |row| row.get(0),
                )?)
            };
            let artifacts = count("artifacts")?;
            let run_events = count("webhook_events")?;
            tx.execute(
                &format!("DELETE FROM spans WHERE run_id IN ({old_runs})"),
                params![cutoff],
            )?;
            tx.execute(
                "DELETE FROM spans WHERE run_id IS NULL AND start_time < ?1",
                params![cutoff],
            )?;
            let runs = tx.execute(
                &format!("DELETE FROM runs WHERE run_id IN ({old_runs})"),
                params![cutoff],
            )?;
            let orphans = tx.execute(
                "DELETE FROM webhook_events WHERE run_id IS NULL AND created_at < ?1",
                params![cutoff],
            )?;
            tx.execute(
                "DELETE FROM conversation_messages WHERE created_at < ?1",
                params![cutoff],
            )?;
            Ok(PruneReport {
                runs: runs as u64,
                artifacts: artifacts as u64,
                webhook_events: run_events as u64 + orphans as u64,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes queued while the writer is busy run together in one
    /// transaction once it is free: each answers for itself, a refused one
    /// undone alone.
    // Holding the writer across the awaits is the point: writes queue.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_run_in_one_batch_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("mw.db")).await.unwrap();
        store.run_migrations().await.unwrap();
        let run = store
            .create_run(NewRun::new(
                "aismr".parse().unwrap(),
                serde_json::json!({}),
                crate::domain::ProvidersMode::Mock,
            ))
            .await
            .unwrap();
        let busy = locked(&store.db.writer);
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..11 {
            let store = store.clone();
            // The sixth names a run that does not exist.
            let run_id = if i == 5 { RunId::new() } else { run.run_id };
            writes.spawn(async move {
                store
                    .append_artifact(NewArtifact::new(
                        run_id,
                        crate::domain::ArtifactType::KIEAI_JOB,
                        serde_json::json!({ "i": i }),
                    ))
                    .await
            });
        }
        while locked(&store.db.pending).len() < 11 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(busy);
        store.run_pending();
        let mut refused = 0;
        while let Some(done) = writes.join_next().await {
            match done.unwrap() {
                Ok(_) => {}
                Err(StoreError::NotFound { .. }) => refused += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(refused, 1);
        assert_eq!(store.list_artifacts(run.run_id).await.unwrap().len(), 10);
    }

    /// The migrations' pages reach the database file without the store's
    /// connection checkpointing (its threshold is far above what they write).
    #[tokio::test]
    async fn the_checkpointer_copies_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mw.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.run_migrations().await.unwrap();
        // Writes through the store's own connection, which never checkpoints
        // at this size.
        for _ in 0..50 {
            store
                .create_run(NewRun::new(
                    "aismr".parse().unwrap(),
                    serde_json::json!({ "message": "x".repeat(2000) }),
                    crate::domain::ProvidersMode::Mock,
                ))
                .await
                .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("mw.db-wal"))
            .unwrap()
            .len();
        assert!(wal > 16 * 4096, "the writes left {wal} bytes of WAL");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let file = std::fs::metadata(&path).unwrap().len();
            if file > 32 * 4096 {
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
