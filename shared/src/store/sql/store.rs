//! The `Store` port's statements that SQLite and Postgres share, by
//! aggregate, and the column lists both adapters read rows in (the rows'
//! readers take the columns in this order).
//!
//! The column lists are macros as well as constants so that `statement!`
//! and `concat!` can build whole statements from them at compile time.
use super::{statement, Statement};

macro_rules! run_columns {
    () => {
        "run_id, project, status, job_code, user_id, input, result, execution_id, \
         providers_mode, error, created_at, updated_at"
    };
}
macro_rules! artifact_columns {
    () => {
        "id, run_id, type, provider, persona, url, checksum, metadata, created_at"
    };
}
macro_rules! webhook_columns {
    () => {
        "id, run_id, provider, idempotency_key, provider_job_id, signature_status, headers, \
         payload, status, error, created_at, processed_at"
    };
}
macro_rules! job_columns {
    () => {
        "provider, job_id, run_id, persona, task_token, status, result, error, created_at, \
         settled_at, next_check_at, checks, settled_by"
    };
}
macro_rules! hitl_columns {
    () => {
        "run_id, gate, task_token, requested_at, decision, decided_by, comment, decided_at, \
         delivered_at"
    };
}
macro_rules! span_columns {
    () => {
        "trace_id, span_id, parent_span_id, run_id, name, status, attributes, input, output, \
         error, start_time, end_time"
    };
}
pub(crate) use {artifact_columns, job_columns};

pub(crate) const ARTIFACT_COLUMNS: &str = artifact_columns!();

// Runs.

macro_rules! insert_run {
    () => {
        concat!(
            "INSERT INTO runs (",
            run_columns!(),
            ") VALUES ($1, $2, 'pending', $3, $4, $5, NULL, NULL, $6, NULL, $7, $7)"
        )
    };
}
/// A new `pending` run; its job code (`$3`) is unique.
pub(crate) const INSERT_RUN: Statement = statement!(insert_run!());
/// The same, reading the run back: Postgres keeps its input as JSONB, which
/// may not give back the text it was given.
pub(crate) const INSERT_RUN_RETURNING: &str = concat!(insert_run!(), " RETURNING ", run_columns!());
pub(crate) const RUN: Statement =
    statement!("SELECT ", run_columns!(), " FROM runs WHERE run_id = $1");
pub(crate) const RUN_BY_JOB_CODE: Statement =
    statement!("SELECT ", run_columns!(), " FROM runs WHERE job_code = $1");
/// A page of runs, newest first: `$1` status and `$2` project (or NULL for
/// any), after the run `$3` (or from the newest), at most `$4`.
pub(crate) const LIST_RUNS: Statement = statement!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR project = $2) \
       AND ($3 IS NULL OR (created_at, run_id) < \
            (SELECT c.created_at, c.run_id FROM runs c WHERE c.run_id = $3)) \
     ORDER BY created_at DESC, run_id DESC LIMIT $4"
);
/// Compare-and-set: moves run `$5` from status `$6` to `$1`.
pub(crate) const TRANSITION_RUN: Statement = statement!(
    "UPDATE runs SET status = $1, updated_at = $2, \
       error = COALESCE($3, error), result = COALESCE($4, result) \
     WHERE run_id = $5 AND status = $6 RETURNING ",
    run_columns!()
);
pub(crate) const SET_RUN_RESULT: Statement = statement!(
    "UPDATE runs SET result = $1, updated_at = $2 WHERE run_id = $3 RETURNING ",
    run_columns!()
);
pub(crate) const SET_EXECUTION_ID: Statement = statement!(
    "UPDATE runs SET execution_id = $1, updated_at = $2 WHERE run_id = $3 RETURNING ",
    run_columns!()
);

// Artifacts.

macro_rules! insert_artifact {
    () => {
        concat!(
            "INSERT INTO artifacts (",
            artifact_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
    };
}
pub(crate) const INSERT_ARTIFACT: Statement = statement!(insert_artifact!());
/// The same, reading the artifact back (its metadata is JSONB).
pub(crate) const INSERT_ARTIFACT_RETURNING: &str =
    concat!(insert_artifact!(), " RETURNING ", artifact_columns!());
/// An artifact unless the run has one under the key `$10`.
pub(crate) const INSERT_ARTIFACT_ONCE: Statement = statement!(
    "INSERT INTO artifacts (",
    artifact_columns!(),
    ", once_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (run_id, once_key) WHERE once_key IS NOT NULL DO NOTHING"
);
pub(crate) const RUN_ARTIFACTS: Statement = statement!(
    "SELECT ",
    artifact_columns!(),
    " FROM artifacts WHERE run_id = $1 ORDER BY created_at, id"
);

// Webhook events.

macro_rules! insert_webhook_event {
    () => {
        concat!(
            "INSERT INTO webhook_events (",
            webhook_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, NULL) \
             ON CONFLICT (provider, idempotency_key) DO NOTHING"
        )
    };
}
/// An event, unless one is recorded under its provider and key.
pub(crate) const INSERT_WEBHOOK_EVENT: Statement = statement!(insert_webhook_event!());
pub(crate) const INSERT_WEBHOOK_EVENT_RETURNING: &str =
    concat!(insert_webhook_event!(), " RETURNING ", webhook_columns!());
pub(crate) const WEBHOOK_EVENT_BY_KEY: Statement = statement!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhook_events WHERE provider = $1 AND idempotency_key = $2"
);
pub(crate) const WEBHOOK_EVENT: Statement = statement!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhook_events WHERE id = $1"
);
pub(crate) const RUN_WEBHOOK_EVENTS: Statement = statement!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhook_events WHERE run_id = $1 ORDER BY created_at, id"
);
/// The events the callbacks consumer still owes a handling, oldest first
/// (the partial index `webhook_events_received` answers it).
pub(crate) const RECEIVED_WEBHOOK_EVENTS: Statement = statement!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhook_events WHERE status = 'received' ORDER BY created_at, id"
);
pub(crate) const FINISH_WEBHOOK_EVENT: Statement = statement!(
    "UPDATE webhook_events SET status = $1, error = $2, processed_at = $3, \
       run_id = COALESCE(run_id, $5) \
     WHERE id = $4 RETURNING ",
    webhook_columns!()
);
macro_rules! adopt_orphaned_webhook_events {
    () => {
        concat!(
            "UPDATE webhook_events SET status = 'received', processed_at = NULL, error = NULL \
             WHERE provider = $1 AND provider_job_id = $2 AND status = 'orphaned' RETURNING ",
            webhook_columns!()
        )
    };
}
/// The orphaned events of job `$2` of provider `$1`, moved back to
/// `received`, in no order.
pub(crate) const ADOPT_ORPHANED_WEBHOOK_EVENTS: Statement =
    statement!(adopt_orphaned_webhook_events!());
/// The same, oldest first (Postgres sorts them in the statement).
pub(crate) const ADOPT_ORPHANED_WEBHOOK_EVENTS_IN_ORDER: &str = concat!(
    "WITH adopted AS (",
    adopt_orphaned_webhook_events!(),
    ") SELECT ",
    webhook_columns!(),
    " FROM adopted ORDER BY created_at, id"
);
macro_rules! finish_event_if {
    () => {
        "UPDATE webhook_events SET status = 'processed', error = NULL, processed_at = $1, \
           run_id = COALESCE(run_id, $2) \
         WHERE id = $3 AND status = 'received' AND "
    };
}
macro_rules! task_jobs_pending {
    () => {
        "EXISTS (SELECT 1 FROM provider_jobs \
           WHERE run_id = $2 AND task_token = $4 AND status = 'pending')"
    };
}
/// Finishes the callback's event `$3` (of run `$2`) when the task `$4`
/// still has jobs pending: Postgres's rule.
pub(crate) const FINISH_EVENT_IF_JOBS_PENDING: &str =
    concat!(finish_event_if!(), task_jobs_pending!());
/// The same, or when the agent of persona `$6` has not ended yet (no
/// artifact of type `$5`, `persona.completed`): SQLite's rule, whose writes
/// are serialized, so the worker's record of the agent's end comes after.
pub(crate) const FINISH_EVENT_IF_TASK_WAITS: Statement = statement!(
    finish_event_if!(),
    "(",
    task_jobs_pending!(),
    " OR NOT EXISTS (SELECT 1 FROM artifacts \
       WHERE run_id = $2 AND type = $5 AND persona = $6))"
);

// Provider jobs.

macro_rules! insert_provider_job {
    () => {
        concat!(
            "INSERT INTO provider_jobs (",
            job_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, 'pending', NULL, NULL, $6, NULL, $7, 0, NULL)"
        )
    };
}
pub(crate) const INSERT_PROVIDER_JOB: Statement = statement!(insert_provider_job!());
pub(crate) const INSERT_PROVIDER_JOB_RETURNING: &str =
    concat!(insert_provider_job!(), " RETURNING ", job_columns!());
pub(crate) const PROVIDER_JOB: Statement = statement!(
    "SELECT ",
    job_columns!(),
    " FROM provider_jobs WHERE provider = $1 AND job_id = $2"
);
/// Settles job `$7` of provider `$6` if it is still pending.
pub(crate) const SETTLE_PROVIDER_JOB: Statement = statement!(
    "UPDATE provider_jobs SET status = $1, result = $2, error = $3, settled_at = $4, \
       settled_by = $5, next_check_at = NULL \
     WHERE provider = $6 AND job_id = $7 AND status = 'pending' RETURNING ",
    job_columns!()
);
pub(crate) const RUN_PROVIDER_JOBS: Statement = statement!(
    "SELECT ",
    job_columns!(),
    " FROM provider_jobs WHERE run_id = $1 ORDER BY created_at, job_id"
);
pub(crate) const TASK_PROVIDER_JOBS: Statement = statement!(
    "SELECT ",
    job_columns!(),
    " FROM provider_jobs WHERE run_id = $1 AND task_token = $2 ORDER BY created_at, job_id"
);
pub(crate) const REBIND_PERSONA_JOBS: Statement = statement!(
    "UPDATE provider_jobs SET task_token = $1 \
     WHERE run_id = $2 AND persona = $3 AND status <> 'failed' \
       AND (task_token IS NULL OR task_token <> $1)"
);
pub(crate) const SCHEDULE_PROVIDER_JOB_CHECK: Statement = statement!(
    "UPDATE provider_jobs SET next_check_at = $1 \
     WHERE provider = $2 AND job_id = $3 AND status = 'pending'"
);

// Gates.

/// A gate's request, or a new task token for an undecided one; nothing
/// (no row) when it is decided.
pub(crate) const RECORD_HITL_REQUEST: Statement = statement!(
    "INSERT INTO hitl_requests (",
    hitl_columns!(),
    ") VALUES ($1, $2, $3, $4, NULL, NULL, NULL, NULL, NULL) \
     ON CONFLICT (run_id, gate) DO UPDATE SET task_token = excluded.task_token \
       WHERE hitl_requests.decision IS NULL \
     RETURNING ",
    hitl_columns!()
);
pub(crate) const DECIDE_HITL: Statement = statement!(
    "UPDATE hitl_requests SET decision = $1, decided_by = $2, comment = $3, decided_at = $4 \
     WHERE run_id = $5 AND gate = $6 AND decision IS NULL RETURNING ",
    hitl_columns!()
);
pub(crate) const HITL_REQUEST: Statement = statement!(
    "SELECT ",
    hitl_columns!(),
    " FROM hitl_requests WHERE run_id = $1 AND gate = $2"
);
pub(crate) const RUN_HITL_REQUESTS: Statement = statement!(
    "SELECT ",
    hitl_columns!(),
    " FROM hitl_requests WHERE run_id = $1 ORDER BY requested_at, gate"
);
/// Notes a decided gate's delivery once; answers the gate's decision.
pub(crate) const MARK_HITL_DELIVERED: Statement = statement!(
    "UPDATE hitl_requests SET delivered_at = CASE WHEN decision IS NULL THEN NULL \
       ELSE COALESCE(delivered_at, $1) END \
     WHERE run_id = $2 AND gate = $3 RETURNING decision"
);
pub(crate) const UNDELIVERED_HITL_DECISIONS: Statement = statement!(
    "SELECT ",
    hitl_columns!(),
    " FROM hitl_requests \
     WHERE decision IS NOT NULL AND delivered_at IS NULL AND decided_at < $1 \
     ORDER BY decided_at LIMIT $2"
);

// Conversations.

pub(crate) const LAST_MESSAGE_SEQ: Statement =
    statement!("SELECT MAX(seq) FROM conversation_messages WHERE user_id = $1");
pub(crate) const INSERT_MESSAGE: Statement = statement!(
    "INSERT INTO conversation_messages (user_id, seq, role, content, run_ids, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)"
);
/// The last `$2` messages of user `$1`, oldest first.
pub(crate) const LAST_MESSAGES: Statement = statement!(
    "SELECT role, content, run_ids, created_at FROM \
       (SELECT seq, role, content, run_ids, created_at FROM conversation_messages \
        WHERE user_id = $1 ORDER BY seq DESC LIMIT $2) AS last \
     ORDER BY seq"
);

// Spans.

pub(crate) const INSERT_SPAN: Statement = statement!(
    "INSERT INTO spans (",
    span_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);
pub(crate) const SPAN: Statement = statement!(
    "SELECT ",
    span_columns!(),
    " FROM spans WHERE trace_id = $1 AND span_id = $2"
);
/// Closes span `$7` of trace `$6` if it is still open.
pub(crate) const CLOSE_SPAN: Statement = statement!(
    "UPDATE spans SET status = $1, attributes = $2, output = $3, error = $4, end_time = $5 \
     WHERE trace_id = $6 AND span_id = $7 AND status = 'open'"
);
pub(crate) const TRACE_SPANS: Statement = statement!(
    "SELECT ",
    span_columns!(),
    " FROM spans WHERE trace_id = $1 ORDER BY start_time, span_id"
);
/// What closing a run's tree reads, without the finished spans.
pub(crate) const TRACE_OPEN_SPANS: Statement = statement!(
    "SELECT ",
    span_columns!(),
    " FROM spans WHERE trace_id = $1 AND status = 'open' ORDER BY start_time, span_id"
);

// Pruning: every statement takes the cutoff as `$1`.

/// The finished runs last updated before the cutoff.
macro_rules! old_runs {
    () => {
        "(SELECT run_id FROM runs \
           WHERE status IN ('published', 'failed', 'rejected', 'cancelled', 'timed_out') \
           AND updated_at < $1)"
    };
}
pub(crate) const COUNT_OLD_ARTIFACTS: Statement = statement!(
    "SELECT COUNT(*) FROM artifacts WHERE run_id IN ",
    old_runs!()
);
pub(crate) const COUNT_OLD_WEBHOOK_EVENTS: Statement = statement!(
    "SELECT COUNT(*) FROM webhook_events WHERE run_id IN ",
    old_runs!()
);
pub(crate) const DELETE_OLD_SPANS: Statement =
    statement!("DELETE FROM spans WHERE run_id IN ", old_runs!());
/// Spans of no run (chat turns) that started before the cutoff.
pub(crate) const DELETE_OLD_LONE_SPANS: Statement =
    statement!("DELETE FROM spans WHERE run_id IS NULL AND start_time < $1");
/// The runs, and with them (`ON DELETE CASCADE`) their artifacts, jobs,
/// gates and webhook events.
pub(crate) const DELETE_OLD_RUNS: Statement =
    statement!("DELETE FROM runs WHERE run_id IN ", old_runs!());
pub(crate) const DELETE_OLD_ORPHAN_EVENTS: Statement =
    statement!("DELETE FROM webhook_events WHERE run_id IS NULL AND created_at < $1");
pub(crate) const DELETE_OLD_MESSAGES: Statement =
    statement!("DELETE FROM conversation_messages WHERE created_at < $1");
