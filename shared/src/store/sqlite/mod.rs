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
//!   write in one transaction, and hands each caller its result once the
//!   commit is done; should one write fail, the batch runs again with each
//!   write in a savepoint of its own, so that one is undone alone. A caller
//!   that finds the writer busy waits without holding its thread. One writer
//!   is SQLite's own model: writes queue instead of failing with
//!   `SQLITE_BUSY`.
//! - Under load commits are deferred (`COMMIT_SPACING`, `DEFERRED_TURNS`):
//!   right after a commit, the next waits until the tasks ready on the
//!   runtime have had their turn, so that it carries the writes they make.
//!   Every commit writes each page it changed to the WAL whole, and the
//!   pages a run's writes change are mostly the same few (the last leaf of
//!   each table and index): fewer, larger commits write each of them once
//!   instead of once per write. A write that finds the store idle (the last
//!   commit was long ago) commits at once, and one deferred while nothing
//!   else is ready waits only for its own two turns.
//! - Reads use the writer connection when no batch is running (its page
//!   cache is never stale: no other connection writes), else one of two
//!   reader connections (WAL: a reader sees every commit made before it
//!   began; SQLite drops its page cache after another connection's commit).
//! - The WAL is checkpointed by a connection of its own, on a thread beside
//!   them.
//!
//! The store (`store.rs`), the engine's tables (`engine.rs`) and the rows
//! (`rows.rs`) use the statements shared with Postgres (`sql`) where they
//! are the same.
//!
//! Migrations run through sqlx's migrator (the `_sqlx_migrations` table) and
//! times are stored as the RFC 3339 text sqlx wrote, so files written by
//! earlier versions open unchanged.
mod engine;
mod rows;
mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::store::StoreError;

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
    /// When the last commit ended and how many writes it carried.
    pace: Mutex<Pace>,
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

/// The last commit, for pacing the next (see `SqliteStore::flush`).
#[derive(Debug)]
struct Pace {
    ended: Instant,
    /// A flush is scheduled for later.
    scheduled: bool,
    /// How many writes the last commit carried, for the tests.
    #[cfg(test)]
    writes: usize,
}

/// What counts as under load: a write that finds the last commit ended
/// less than this ago is deferred (`DEFERRED_TURNS`); otherwise it commits
/// at once. Whatever that commit carried: producers busy on the CPU (an
/// engine starting executions one after another) send their writes one at a
/// time, and each would otherwise commit alone.
const COMMIT_SPACING: Duration = Duration::from_micros(500);

/// How many times a deferred commit goes to the back of the runtime's queue
/// before it runs: the tasks ready when it was deferred run first, then the
/// tasks they woke, and the writes they queue meanwhile join it. On the
/// pipeline bench, against a fixed wait of half a millisecond (a whole one
/// with tokio's timer): the same runs per second and CPU per run, and a
/// third of the idle p99, since a write no longer waits when nothing else
/// is ready.
const DEFERRED_TURNS: usize = 2;

/// Connections for reads: one per core on the machines this runs on.
const READERS: usize = 2;

/// The writer's page cache (8 MiB), kept across transactions since no other
/// connection writes. Not larger: SQLite walks the whole cache at the end of
/// almost every commit under load, and at 64 MiB that was about a twentieth
/// of the CPU. (A b-tree split that renumbers its new pages parks one under
/// the number of the lock page, 262,145 with 4 KiB pages, for a moment; the
/// cache remembers that number as its largest, and the commit's truncation
/// to the file's size then scans every slot: 2.5% of the samples at 8 MiB.)
const WRITER_CACHE_KIB: i64 = 8_192;

/// A reader's page cache: SQLite drops it whenever another connection has
/// committed since the reader's last read, so a large one buys nothing.
const READER_CACHE_KIB: i64 = 2_048;

/// How often the checkpointer copies committed WAL frames into the database
/// file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The WAL size (pages, 256 MiB) at which the writer checkpoints by itself.
/// The checkpointer's passive checkpoints cannot start the WAL over while
/// writes keep coming, so under sustained load this is what bounds the WAL;
/// it costs the pipeline bench about 7% of its runs per second (docs/performance.md).
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
            crate::private_files::create_dir(dir)
                .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        // It holds approval links and task tokens: its owner's alone (SQLite
        // gives its WAL and shared-memory files the same permissions).
        crate::private_files::touch(path)
            .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", path.display())))?;
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
                pace: Mutex::new(Pace {
                    ended: Instant::now(),
                    scheduled: false,
                    #[cfg(test)]
                    writes: 0,
                }),
                _checkpointer: stop,
            }),
        })
    }

    /// Runs the read `f`: on the writer connection when no batch holds it
    /// (then flushes what queued meanwhile), else on a free reader connection,
    /// else on the next reader in turn.
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
            self.flush();
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
    /// write in one transaction, commits once, and hands each caller its
    /// result. A caller that finds the writer busy waits without holding its
    /// thread; under load one commit, and one write of the pages the writes
    /// share, serves many writes. `f` may run twice: should a write of the
    /// batch fail, the batch is rolled back and run again, each write in a
    /// savepoint of its own, so the one that fails leaves the others
    /// (`run_batch`).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        locked(&self.db.pending).push(Box::new(Queued {
            f,
            outcome: None,
            done,
        }));
        self.flush();
        result.await.unwrap_or_else(|_| {
            Err(StoreError::NotCommitted(
                "the write was dropped before it ran".into(),
            ))
        })
    }

    /// Runs the queued writes now, or, under load (the last commit ended
    /// less than `COMMIT_SPACING` ago), once the runtime's ready tasks have
    /// had `DEFERRED_TURNS` turns: a task of its own then runs them, and the
    /// writes queued meanwhile join the same commit. Outside a tokio runtime
    /// they run now.
    fn flush(&self) {
        let runtime = {
            let mut pace = locked(&self.db.pace);
            if pace.scheduled {
                return;
            }
            let since = pace.ended.elapsed();
            if since >= COMMIT_SPACING {
                None
            } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                pace.scheduled = true;
                Some(runtime)
            } else {
                None
            }
        };
        let Some(runtime) = runtime else {
            return self.run_pending();
        };
        let flush = ScheduledFlush(self.clone());
        runtime.spawn(async move {
            for _ in 0..DEFERRED_TURNS {
                tokio::task::yield_now().await;
            }
            drop(flush);
        });
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
            #[cfg(test)]
            let writes = batch.len();
            run_batch(&mut connection, batch);
            {
                let mut pace = locked(&self.db.pace);
                pace.ended = Instant::now();
                #[cfg(test)]
                {
                    pace.writes = writes;
                }
            }
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
        let migrated = MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::migrate(Self::BACKEND, e));
        pool.close().await;
        migrated
    }
}

/// A flush scheduled by `SqliteStore::flush`: runs the queued writes when
/// dropped, after its turns or when its runtime shuts down first (a
/// dropped task must not leave writes waiting for it).
struct ScheduledFlush(SqliteStore);

impl Drop for ScheduledFlush {
    fn drop(&mut self) {
        locked(&self.0.db.pace).scheduled = false;
        self.0.run_pending();
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

/// A queued write (see `SqliteStore::write`).
type PendingWrite = Box<dyn Write>;

/// A write waiting in the queue, type-erased.
trait Write: Send {
    /// Runs the write on the writer connection (again, when its batch is
    /// replayed), in a savepoint when `alone`, and keeps its outcome; whether
    /// it succeeded.
    fn run(&mut self, connection: &Connection, alone: bool) -> bool;
    /// Hands the caller the outcome of the last run, once whether its
    /// batch committed is known.
    fn deliver(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct Queued<T, F> {
    f: F,
    outcome: Option<Result<T, StoreError>>,
    done: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Queued<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection, alone: bool) -> bool {
        let outcome = if alone {
            in_savepoint(connection, &self.f)
        } else {
            (self.f)(connection)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn deliver(self: Box<Self>, committed: Result<(), &StoreError>) {
        let not_committed = |e: &StoreError| StoreError::NotCommitted(e.to_string());
        let _ = self.done.send(match (self.outcome, committed) {
            (Some(outcome), Ok(())) => outcome,
            (Some(outcome), Err(e)) => outcome.and(Err(not_committed(e))),
            (None, Err(e)) => Err(not_committed(e)),
            (None, Ok(())) => Err(StoreError::NotCommitted("the write did not run".into())),
        });
    }
}

/// Runs `batch` in one transaction and tells each write how it ended.
///
/// The writes run one after the other with nothing between them: a
/// savepoint around each would copy every page a write changes into the
/// statement journal first, most of it for nothing, since writes rarely
/// fail. Should one fail, the whole transaction is rolled back and the batch
/// runs again, each write in a savepoint of its own: the failing write is
/// undone alone and the others commit.
fn run_batch(connection: &mut Connection, mut batch: Vec<PendingWrite>) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    let committed = begin(connection).and_then(|()| {
        if !batch.iter_mut().all(|write| write.run(connection, false)) {
            let _ = connection.execute_batch("ROLLBACK");
            begin(connection)?;
            for write in &mut batch {
                write.run(connection, true);
            }
        }
        connection.execute_batch("COMMIT").map_err(|e| {
            let _ = connection.execute_batch("ROLLBACK");
            StoreError::from(e)
        })
    });
    for write in batch {
        write.deliver(committed.as_ref().map(|_| ()));
    }
}

fn begin(connection: &Connection) -> Result<(), StoreError> {
    Ok(connection.execute_batch("BEGIN IMMEDIATE")?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Artifact, ArtifactType, NewArtifact, NewRun, ProvidersMode, RunId};
    use crate::store::prelude::*;

    /// The workspace's `.cargo/config.toml` builds the bundled SQLite
    /// without its process-wide page-cache group and memory statistics.
    #[test]
    fn the_bundled_sqlite_is_built_without_its_global_locks() {
        let connection = Connection::open_in_memory().unwrap();
        let options: Vec<String> = connection
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    /// The outcomes of `count` writes, `write(0)` … `write(count - 1)`,
    /// queued while the writer is busy and then run as one batch.
    // Holding the writer across the awaits is the point: writes queue.
    #[allow(clippy::await_holding_lock)]
    async fn in_one_batch<T, F>(
        store: &SqliteStore,
        count: usize,
        write: impl Fn(usize) -> F,
    ) -> Vec<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + Send + 'static,
    {
        let busy = locked(&store.db.writer);
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..count {
            writes.spawn(write(i));
        }
        while locked(&store.db.pending).len() < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(busy);
        store.run_pending();
        let mut outcomes = Vec::new();
        while let Some(done) = writes.join_next().await {
            outcomes.push(done.unwrap());
        }
        outcomes
    }

    /// Writes queued while the writer is busy run together in one
    /// transaction once it is free: each answers for itself, a refused one
    /// undone alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_run_in_one_batch_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = store_with_run(dir.path()).await;
        let outcomes = in_one_batch(&store, 11, |i| {
            let store = store.clone();
            // The sixth names a run that does not exist.
            let run_id = if i == 5 { RunId::new() } else { run };
            async move { store.append_artifact(artifact(run_id, i)).await }
        })
        .await;
        let mut refused = 0;
        for outcome in outcomes {
            match outcome {
                Ok(_) => {}
                Err(StoreError::NotFound { .. }) => refused += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(refused, 1);
        assert_eq!(store.list_artifacts(run).await.unwrap().len(), 10);
    }

    /// A write that fails after changing something leaves no trace, while
    /// the writes of its batch commit, each with the outcome of its run in
    /// the transaction that committed (the batch ran again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_failing_halfway_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = store_with_run(dir.path()).await;
        let outcomes = in_one_batch(&store, 3, |i| {
            let store = store.clone();
            async move {
                if i != 1 {
                    return store.append_artifact(artifact(run, i)).await.map(Some);
                }
                store
                    .write(move |tx| {
                        tx.execute(
                            "UPDATE runs SET status = 'failed' WHERE run_id = ?1",
                            [run.to_string()],
                        )?;
                        Err::<Option<Artifact>, _>(StoreError::Refused("changed my mind".into()))
                    })
                    .await
            }
        })
        .await;
        let mut written = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(artifact) => written.push(artifact.unwrap().id),
                Err(StoreError::Refused(why)) => assert_eq!(why, "changed my mind"),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        let mut stored: Vec<_> = store
            .list_artifacts(run)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        written.sort();
        stored.sort();
        assert_eq!(written.len(), 2);
        assert_eq!(
            written, stored,
            "each caller holds the artifact that was committed"
        );
        let status = store.get_run(run).await.unwrap().unwrap().status;
        assert_eq!(
            status.as_str(),
            "pending",
            "the failed write's change was undone"
        );
    }

    /// A new store in `dir` holding one run.
    async fn store_with_run(dir: &Path) -> (SqliteStore, RunId) {
        let store = SqliteStore::open(&dir.join("mw.db")).await.unwrap();
        store.run_migrations().await.unwrap();
        let run = store
            .create_run(NewRun::new(
                "aismr".parse().unwrap(),
                serde_json::json!({}),
                ProvidersMode::Mock,
            ))
            .await
            .unwrap();
        (store, run.run_id)
    }

    /// A store whose last commit has just ended.
    async fn busy_store(dir: &Path) -> (SqliteStore, RunId) {
        let (store, run_id) = store_with_run(dir).await;
        // Ended "later" than now: the next writes certainly find it recent.
        locked(&store.db.pace).ended = Instant::now() + Duration::from_secs(60);
        (store, run_id)
    }

    fn artifact(run_id: RunId, i: usize) -> NewArtifact {
        NewArtifact::new(
            run_id,
            ArtifactType::KIEAI_JOB,
            serde_json::json!({ "i": i }),
        )
    }

    /// Right after a commit, the next writes wait for the ready tasks'
    /// turns and commit together.
    #[tokio::test(flavor = "current_thread")]
    async fn writes_after_a_busy_commit_wait_and_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run_id) = busy_store(dir.path()).await;
        let writes = (0..5).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append_artifact(artifact(run_id, i)).await })
        });
        for write in writes.collect::<Vec<_>>() {
            write.await.unwrap().unwrap();
        }
        assert_eq!(
            locked(&store.db.pace).writes,
            5,
            "the five writes committed in one batch"
        );
        assert_eq!(store.list_artifacts(run_id).await.unwrap().len(), 5);
    }

    /// A scheduled flush whose runtime shuts down before its turn comes
    /// still runs the writes it was waiting for.
    #[test]
    fn a_flush_cut_short_by_its_runtime_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (store, run_id) = main.block_on(busy_store(dir.path()));
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let writer = store.clone();
        other.spawn(async move { writer.append_artifact(artifact(run_id, 0)).await });
        other.block_on(async {
            while !locked(&store.db.pace).scheduled {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(locked(&store.db.pending).len(), 1, "the write waits");
        drop(other);
        assert!(locked(&store.db.pending).is_empty());
        let artifacts = main.block_on(store.list_artifacts(run_id)).unwrap();
        assert_eq!(artifacts.len(), 1);
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
                    ProvidersMode::Mock,
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
