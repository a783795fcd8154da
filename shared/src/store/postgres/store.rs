//! The `Store` port on Postgres (sqlx): the statements shared with SQLite
//! (`sql::store`) and the few only Postgres has, on one pool.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgPool, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::FromRow;
use uuid::Uuid;

use super::rows::{
    all, is_unique_violation, missing_run, one, ArtifactRow, HitlRequestRow, ProviderJobRow,
    RunRow, SpanRow, WebhookEventRow,
};
use super::PostgresStore;
use crate::domain::{
    Artifact, ChatMessage, ChatRole, Gate, HitlRequest, JobCode, NewArtifact, NewHitlRequest,
    NewProviderJob, NewRun, NewWebhookEvent, Persona, Provider, ProviderJob, Run, RunId, RunStatus,
    SettledBy, Span, SpanEnd, SpanId, SpanStatus, TraceId, WebhookEvent, WebhookEventStatus,
};
use crate::store::clock::{now, truncate, truncate_span};
use crate::store::sql::delivered;
use crate::store::sql::store::*;
use crate::store::{
    ArtifactStore, ConversationStore, Decided, Decision, GateStore, JobOutcome, Maintenance,
    ProviderJobStore, PruneReport, Recorded, RunFilter, RunPage, RunStore, Settled,
    SettledForEvent, SpanStore, StoreError, Transition, WebhookEventStore, JOB_CODE_ATTEMPTS,
};

/// The artifacts of run `$1` whose type is one of `$2`, oldest first.
const ARTIFACTS_OF_TYPES: &str = concat!(
    "SELECT ",
    artifact_columns!(),
    " FROM artifacts WHERE run_id = $1 AND type = ANY($2) ORDER BY created_at, id"
);

/// Settlements of one task take turns from here to their commit (see
/// `PostgresStore::settle_job`).
const LOCK_TASK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// Claims up to `$2` jobs due by `$1` until `$3`, earliest due first. Jobs
/// another claim holds locked are skipped, not waited for; one it has just
/// claimed is read again once unlocked, and is no longer due (its lease is
/// in the future).
const CLAIM_DUE_JOBS: &str = concat!(
    "WITH due AS (SELECT provider, job_id, next_check_at FROM provider_jobs \
       WHERE status = 'pending' AND next_check_at <= $1 \
       ORDER BY next_check_at, provider, job_id LIMIT $2 \
       FOR UPDATE SKIP LOCKED), \
     claimed AS (UPDATE provider_jobs SET checks = checks + 1, next_check_at = $3 \
       WHERE (provider, job_id) IN (SELECT provider, job_id FROM due) \
       RETURNING ",
    job_columns!(),
    ") SELECT claimed.* FROM claimed JOIN due USING (provider, job_id) \
     ORDER BY due.next_check_at, provider, job_id"
);

/// The spans `sql` (`TRACE_SPANS` or `TRACE_OPEN_SPANS`) selects of a trace.
async fn trace_spans(
    pool: &PgPool,
    sql: &'static str,
    trace_id: TraceId,
) -> Result<Vec<Span>, StoreError> {
    all(
        sqlx::query_as::<_, SpanRow>(sql).bind(trace_id.to_string()),
        pool,
    )
    .await
}

/// `query` with `artifact`'s columns bound, in `ARTIFACT_COLUMNS` order.
fn bind_artifact<'q>(
    query: Query<'q, Postgres, PgArguments>,
    artifact: &'q Artifact,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(artifact.id.to_string())
        .bind(artifact.run_id.to_string())
        .bind(artifact.artifact_type.as_str())
        .bind(artifact.provider.map(Provider::as_str))
        .bind(artifact.persona.map(|p| p.as_str()))
        .bind(artifact.url.as_deref())
        .bind(artifact.checksum.as_deref())
        .bind(Json(&artifact.metadata))
        .bind(artifact.created_at)
}

/// Stores `new` and reads it back (its metadata is JSONB).
async fn insert_artifact<'c, E>(exec: E, new: NewArtifact) -> Result<Artifact, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let artifact = new.stored_at(now());
    let row = bind_artifact(sqlx::query(INSERT_ARTIFACT_RETURNING), &artifact)
        .fetch_one(exec)
        .await
        .map_err(|e| missing_run(e, artifact.run_id))?;
    ArtifactRow::from_row(&row)?.try_into()
}

/// Moves `change`'s run to `change.to` (with its error and result) if
/// it is still `change.from`; the run as changed, or `None`.
async fn transition<'c, E>(exec: E, change: &Transition) -> Result<Option<RunRow>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    Ok(sqlx::query_as(TRANSITION_RUN.postgres)
        .bind(change.to.as_str())
        .bind(now())
        .bind(change.error.as_deref())
        .bind(change.result.as_ref().map(Json))
        .bind(change.run_id.to_string())
        .bind(change.from.as_str())
        .fetch_optional(exec)
        .await?)
}

impl PostgresStore {
    /// The rows `sql` selects for one run (its `$1`), converted.
    async fn of_run<R, T>(&self, sql: &'static str, run_id: RunId) -> Result<Vec<T>, StoreError>
    where
        R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
        T: TryFrom<R, Error = StoreError>,
    {
        all(
            sqlx::query_as::<_, R>(sql).bind(run_id.to_string()),
            self.reader(),
        )
        .await
    }

    async fn require_run(&self, run_id: RunId) -> Result<Run, StoreError> {
        self.get_run(run_id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("run {run_id}")))
    }

    /// Sets one field of a run with `sql` (`SET_RUN_RESULT`,
    /// `SET_EXECUTION_ID`).
    async fn update_run_field<T>(
        &self,
        run_id: RunId,
        sql: &'static str,
        value: T,
    ) -> Result<Run, StoreError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'static,
    {
        let row: Option<RunRow> = sqlx::query_as(sql)
            .bind(value)
            .bind(now())
            .bind(run_id.to_string())
            .fetch_optional(self.writer())
            .await?;
        row.ok_or_else(|| StoreError::not_found(format!("run {run_id}")))?
            .try_into()
    }

    /// Settles a pending job once, as `by` says, with its result
    /// artifact and, for `event`, finishes that webhook event in the
    /// same transaction when the job's task still has jobs pending
    /// (see `Store::settle_provider_job_for_event`).
    async fn settle_job(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        by: SettledBy,
        event: Option<Uuid>,
    ) -> Result<SettledForEvent, StoreError> {
        let (status, result, error) = outcome.into_parts();
        let mut tx = self.writer().begin().await?;
        let row: Option<ProviderJobRow> = sqlx::query_as(SETTLE_PROVIDER_JOB.postgres)
            .bind(status.as_str())
            .bind(result.map(Json))
            .bind(error)
            .bind(now())
            .bind(by.as_str())
            .bind(provider.as_str())
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            drop(tx);
            let job = self
                .find_provider_job(provider, job_id)
                .await?
                .ok_or_else(|| StoreError::not_found(format!("{provider} job {job_id}")))?;
            return Ok(SettledForEvent {
                settled: Settled::Already(job),
                event_finished: false,
            });
        };
        let job = ProviderJob::try_from(row)?;
        if let Some(artifact) = artifact {
            insert_artifact(&mut *tx, artifact).await?;
        }
        let mut event_finished = false;
        if let (Some(event), Some(token)) = (event, &job.task_token) {
            // Settlements of one task take turns from here to their
            // commit: otherwise the task's last two, side by side,
            // would each see the other still pending (read committed),
            // both finish their events, and neither caller would
            // complete the task. The next statement reads afresh.
            sqlx::query(LOCK_TASK)
                .bind(format!("{}:{token}", job.run_id))
                .execute(&mut *tx)
                .await?;
            let finished = sqlx::query(FINISH_EVENT_IF_JOBS_PENDING)
                .bind(now())
                .bind(job.run_id.to_string())
                .bind(event.to_string())
                .bind(token)
                .execute(&mut *tx)
                .await?;
            event_finished = finished.rows_affected() == 1;
        }
        tx.commit().await?;
        Ok(SettledForEvent {
            settled: Settled::Now(job),
            event_finished,
        })
    }

    async fn fetch_hitl(
        &self,
        run_id: RunId,
        gate: &Gate,
    ) -> Result<Option<HitlRequest>, StoreError> {
        let query = sqlx::query_as::<_, HitlRequestRow>(HITL_REQUEST.postgres)
            .bind(run_id.to_string())
            .bind(gate.as_str());
        one(query, self.reader()).await
    }
}

// The `impl`s below restate the port's signatures (`store::port`), as every
// adapter of a trait must, so they read like SQLite's and DynamoDB's, and a
// one-statement read (`find_provider_job`, `list_task_jobs`) differs from the
// next only in its statement and binds; what the SQL adapters share beyond
// that is written once (`sql::store`).
#[async_trait]
impl Maintenance for PostgresStore {
    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await
    }

    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError> {
        let mut tx = self.writer().begin().await?;
        let artifacts: i64 = sqlx::query_scalar(COUNT_OLD_ARTIFACTS.postgres)
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?;
        let run_events: i64 = sqlx::query_scalar(COUNT_OLD_WEBHOOK_EVENTS.postgres)
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?;
        for sql in [DELETE_OLD_SPANS, DELETE_OLD_LONE_SPANS] {
            sqlx::query(sql.postgres)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        }
        let runs = sqlx::query(DELETE_OLD_RUNS.postgres)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let orphans = sqlx::query(DELETE_OLD_ORPHAN_EVENTS.postgres)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(DELETE_OLD_MESSAGES.postgres)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PruneReport {
            runs,
            artifacts: artifacts as u64,
            webhook_events: run_events as u64 + orphans,
        })
    }
}

#[async_trait]
impl RunStore for PostgresStore {
    async fn create_run(&self, new: NewRun) -> Result<Run, StoreError> {
        for _ in 0..JOB_CODE_ATTEMPTS {
            let inserted = sqlx::query_as::<_, RunRow>(INSERT_RUN_RETURNING)
                .bind(new.run_id.to_string())
                .bind(new.project.as_str())
                .bind(JobCode::generate(&new.project).as_str())
                .bind(new.user_id.as_deref())
                .bind(Json(&new.input))
                .bind(new.providers_mode.as_str())
                .bind(now())
                .fetch_one(self.writer())
                .await;
            match inserted {
                Ok(row) => return row.try_into(),
                Err(e) if is_unique_violation(&e) && e.to_string().contains("job_code") => continue,
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::duplicate(format!("run {}", new.run_id)))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::no_free_job_code(&new.project))
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError> {
        let query = sqlx::query_as::<_, RunRow>(RUN.postgres).bind(run_id.to_string());
        one(query, self.reader()).await
    }

    async fn find_run_by_job_code(&self, code: &JobCode) -> Result<Option<Run>, StoreError> {
        let query = sqlx::query_as::<_, RunRow>(RUN_BY_JOB_CODE.postgres).bind(code.as_str());
        one(query, self.reader()).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, StoreError> {
        let limit = filter.page_size();
        let query = sqlx::query_as::<_, RunRow>(LIST_RUNS.postgres)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.project.as_ref().map(|p| p.as_str()))
            .bind(filter.after.map(|id| id.to_string()))
            .bind(i64::from(limit) + 1);
        let runs = all(query, self.reader()).await?;
        Ok(RunPage::from_overfetched(runs, limit as usize))
    }

    async fn transition_run(&self, change: Transition) -> Result<Run, StoreError> {
        change.check_legal()?;
        let mut tx = self.writer().begin().await?;
        let Some(row) = transition(&mut *tx, &change).await? else {
            drop(tx);
            let current = self.require_run(change.run_id).await?;
            return Err(StoreError::Conflict {
                expected: change.from,
                actual: current.status,
            });
        };
        if let Some(artifact) = change.artifact {
            insert_artifact(&mut *tx, artifact).await?;
        }
        tx.commit().await?;
        row.try_into()
    }

    async fn set_run_result(&self, run_id: RunId, result: Value) -> Result<Run, StoreError> {
        self.update_run_field(run_id, SET_RUN_RESULT.postgres, Json(result))
            .await
    }

    async fn set_execution_id(&self, run_id: RunId, execution_id: &str) -> Result<Run, StoreError> {
        self.update_run_field(run_id, SET_EXECUTION_ID.postgres, execution_id.to_owned())
            .await
    }
}

#[async_trait]
impl ArtifactStore for PostgresStore {
    async fn append_artifact(&self, artifact: NewArtifact) -> Result<Artifact, StoreError> {
        insert_artifact(self.writer(), artifact).await
    }

    async fn append_artifact_once(
        &self,
        new: NewArtifact,
        key: &str,
    ) -> Result<Option<Artifact>, StoreError> {
        let artifact = new.stored_at(now());
        let inserted = bind_artifact(sqlx::query(INSERT_ARTIFACT_ONCE.postgres), &artifact)
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(|e| missing_run(e, artifact.run_id))?
            .rows_affected();
        Ok((inserted == 1).then_some(artifact))
    }

    async fn list_artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, StoreError> {
        self.of_run::<ArtifactRow, _>(RUN_ARTIFACTS.postgres, run_id)
            .await
    }

    async fn list_artifacts_of(
        &self,
        run_id: RunId,
        types: &[&str],
    ) -> Result<Vec<Artifact>, StoreError> {
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        let query = sqlx::query_as::<_, ArtifactRow>(ARTIFACTS_OF_TYPES)
            .bind(run_id.to_string())
            .bind(types);
        all(query, self.reader()).await
    }
}

#[async_trait]
impl WebhookEventStore for PostgresStore {
    async fn record_webhook_event(&self, event: NewWebhookEvent) -> Result<Recorded, StoreError> {
        let inserted: Option<WebhookEventRow> = sqlx::query_as(INSERT_WEBHOOK_EVENT_RETURNING)
            .bind(Uuid::now_v7().to_string())
            .bind(event.run_id.map(|id| id.to_string()))
            .bind(event.provider.as_str())
            .bind(&event.idempotency_key)
            .bind(event.provider_job_id.as_deref())
            .bind(event.signature_status.as_str())
            .bind(Json(&event.headers))
            .bind(Json(&event.payload))
            .bind(event.status.as_str())
            .bind(now())
            .fetch_optional(self.writer())
            .await
            .map_err(|e| missing_run(e, event.run_id.unwrap_or_default()))?;
        if let Some(row) = inserted {
            return Ok(Recorded::Inserted(row.try_into()?));
        }
        let existing: WebhookEventRow = sqlx::query_as(WEBHOOK_EVENT_BY_KEY.postgres)
            .bind(event.provider.as_str())
            .bind(&event.idempotency_key)
            .fetch_one(self.reader())
            .await?;
        Ok(Recorded::Duplicate(existing.try_into()?))
    }

    async fn get_webhook_event(&self, id: Uuid) -> Result<Option<WebhookEvent>, StoreError> {
        let query =
            sqlx::query_as::<_, WebhookEventRow>(WEBHOOK_EVENT.postgres).bind(id.to_string());
        one(query, self.reader()).await
    }

    async fn list_webhook_events(&self, run_id: RunId) -> Result<Vec<WebhookEvent>, StoreError> {
        self.of_run::<WebhookEventRow, _>(RUN_WEBHOOK_EVENTS.postgres, run_id)
            .await
    }

    async fn received_webhook_events(&self) -> Result<Vec<WebhookEvent>, StoreError> {
        let query = sqlx::query_as::<_, WebhookEventRow>(RECEIVED_WEBHOOK_EVENTS.postgres);
        all(query, self.reader()).await
    }

    async fn finish_webhook_event(
        &self,
        id: Uuid,
        status: WebhookEventStatus,
        error: Option<&str>,
        run_id: Option<RunId>,
    ) -> Result<WebhookEvent, StoreError> {
        let row: Option<WebhookEventRow> = sqlx::query_as(FINISH_WEBHOOK_EVENT.postgres)
            .bind(status.as_str())
            .bind(error)
            .bind(now())
            .bind(id.to_string())
            .bind(run_id.map(|r| r.to_string()))
            .fetch_optional(self.writer())
            .await?;
        row.ok_or_else(|| StoreError::not_found(format!("webhook event {id}")))?
            .try_into()
    }

    async fn adopt_orphaned_webhook_events(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        // A concurrent adoption of the same event waits for the row
        // lock, then finds it no longer orphaned and leaves it.
        let query = sqlx::query_as::<_, WebhookEventRow>(ADOPT_ORPHANED_WEBHOOK_EVENTS_IN_ORDER)
            .bind(provider.as_str())
            .bind(job_id);
        all(query, self.writer()).await
    }
}

#[async_trait]
impl ProviderJobStore for PostgresStore {
    async fn register_provider_job(&self, job: NewProviderJob) -> Result<ProviderJob, StoreError> {
        let row: ProviderJobRow = sqlx::query_as(INSERT_PROVIDER_JOB_RETURNING)
            .bind(job.provider.as_str())
            .bind(&job.job_id)
            .bind(job.run_id.to_string())
            .bind(job.persona.as_str())
            .bind(job.task_token.as_deref())
            .bind(now())
            .bind(truncate(job.check_at))
            .fetch_one(self.writer())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::duplicate(format!("{} job {}", job.provider, job.job_id))
                } else {
                    missing_run(e, job.run_id)
                }
            })?;
        row.try_into()
    }

    async fn find_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Option<ProviderJob>, StoreError> {
        let query = sqlx::query_as::<_, ProviderJobRow>(PROVIDER_JOB.postgres)
            .bind(provider.as_str())
            .bind(job_id);
        one(query, self.reader()).await
    }

    async fn settle_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        by: SettledBy,
    ) -> Result<Settled, StoreError> {
        Ok(self
            .settle_job(provider, job_id, outcome, artifact, by, None)
            .await?
            .settled)
    }

    async fn settle_provider_job_for_event(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        event: Uuid,
    ) -> Result<SettledForEvent, StoreError> {
        let by = SettledBy::Callback;
        self.settle_job(provider, job_id, outcome, artifact, by, Some(event))
            .await
    }

    async fn list_provider_jobs(&self, run_id: RunId) -> Result<Vec<ProviderJob>, StoreError> {
        self.of_run::<ProviderJobRow, _>(RUN_PROVIDER_JOBS.postgres, run_id)
            .await
    }

    async fn list_task_jobs(
        &self,
        run_id: RunId,
        task_token: &str,
    ) -> Result<Vec<ProviderJob>, StoreError> {
        let query = sqlx::query_as::<_, ProviderJobRow>(TASK_PROVIDER_JOBS.postgres)
            .bind(run_id.to_string())
            .bind(task_token);
        all(query, self.reader()).await
    }

    async fn rebind_persona_jobs(
        &self,
        run_id: RunId,
        persona: Persona,
        task_token: &str,
    ) -> Result<u32, StoreError> {
        let changed = sqlx::query(REBIND_PERSONA_JOBS.postgres)
            .bind(task_token)
            .bind(run_id.to_string())
            .bind(persona.as_str())
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(changed as u32)
    }

    async fn claim_due_provider_jobs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ProviderJob>, StoreError> {
        // Jobs another claim holds locked are skipped, not waited for;
        // one it has just claimed is read again once unlocked, and is
        // no longer due (its lease is in the future).
        let query = sqlx::query_as::<_, ProviderJobRow>(CLAIM_DUE_JOBS)
            .bind(truncate(now))
            .bind(i64::from(limit))
            .bind(truncate(lease_until));
        all(query, self.writer()).await
    }

    async fn schedule_provider_job_check(
        &self,
        provider: Provider,
        job_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let scheduled = sqlx::query(SCHEDULE_PROVIDER_JOB_CHECK.postgres)
            .bind(truncate(at))
            .bind(provider.as_str())
            .bind(job_id)
            .execute(self.writer())
            .await?
            .rows_affected();
        if scheduled == 1 {
            return Ok(true);
        }
        match self.find_provider_job(provider, job_id).await? {
            Some(_) => Ok(false),
            None => Err(StoreError::not_found(format!("{provider} job {job_id}"))),
        }
    }
}

#[async_trait]
impl GateStore for PostgresStore {
    async fn record_hitl_request(
        &self,
        request: NewHitlRequest,
    ) -> Result<HitlRequest, StoreError> {
        let mut tx = self.writer().begin().await?;
        let row: Option<HitlRequestRow> = sqlx::query_as(RECORD_HITL_REQUEST.postgres)
            .bind(request.run_id.to_string())
            .bind(request.gate.as_str())
            .bind(request.task_token.as_deref())
            .bind(now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| missing_run(e, request.run_id))?;
        let Some(row) = row else {
            return Err(StoreError::Refused(format!(
                "gate {} of run {} is already decided",
                request.gate, request.run_id
            )));
        };
        // A run not `running` (ended meanwhile) keeps its status.
        transition(
            &mut *tx,
            &Transition::new(
                request.run_id,
                RunStatus::Running,
                RunStatus::AwaitingApproval,
            ),
        )
        .await?;
        if let Some(artifact) = request.artifact {
            insert_artifact(&mut *tx, artifact).await?;
        }
        tx.commit().await?;
        row.try_into()
    }

    async fn decide_hitl(
        &self,
        run_id: RunId,
        gate: &Gate,
        decision: Decision,
    ) -> Result<Decided, StoreError> {
        let row: Option<HitlRequestRow> = sqlx::query_as(DECIDE_HITL.postgres)
            .bind(decision.decision.as_str())
            .bind(&decision.decided_by)
            .bind(decision.comment.as_deref())
            .bind(now())
            .bind(run_id.to_string())
            .bind(gate.as_str())
            .fetch_optional(self.writer())
            .await?;
        match row {
            Some(row) => Ok(Decided::Now(row.try_into()?)),
            None => self
                .fetch_hitl(run_id, gate)
                .await?
                .map(Decided::Already)
                .ok_or_else(|| {
                    StoreError::not_found(format!("gate {gate} request of run {run_id}"))
                }),
        }
    }

    async fn list_hitl_requests(&self, run_id: RunId) -> Result<Vec<HitlRequest>, StoreError> {
        self.of_run::<HitlRequestRow, _>(RUN_HITL_REQUESTS.postgres, run_id)
            .await
    }

    async fn mark_hitl_delivered(&self, run_id: RunId, gate: &Gate) -> Result<(), StoreError> {
        let decided: Option<(Option<String>,)> = sqlx::query_as(MARK_HITL_DELIVERED.postgres)
            .bind(now())
            .bind(run_id.to_string())
            .bind(gate.as_str())
            .fetch_optional(self.writer())
            .await?;
        delivered(decided.map(|(d,)| d), run_id, gate)
    }

    async fn undelivered_hitl_decisions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HitlRequest>, StoreError> {
        let query = sqlx::query_as::<_, HitlRequestRow>(UNDELIVERED_HITL_DECISIONS.postgres)
            .bind(before)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        all(query, self.reader()).await
    }
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn append_conversation(
        &self,
        user_id: &str,
        messages: Vec<(ChatRole, String, Vec<RunId>)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        let last: Option<i64> = sqlx::query_scalar(LAST_MESSAGE_SEQ.postgres)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let mut seq = last.unwrap_or(0);
        for (role, content, run_ids) in messages {
            seq += 1;
            sqlx::query(INSERT_MESSAGE.postgres)
                .bind(user_id)
                .bind(seq)
                .bind(role.as_str())
                .bind(content)
                .bind(Json(run_ids))
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn conversation(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows: Vec<(String, String, Json<Vec<RunId>>, DateTime<Utc>)> =
            sqlx::query_as(LAST_MESSAGES.postgres)
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
        rows.into_iter()
            .map(|(role, content, run_ids, created_at)| {
                Ok(ChatMessage {
                    role: role.parse()?,
                    content,
                    run_ids: run_ids.0,
                    created_at,
                })
            })
            .collect()
    }
}

#[async_trait]
impl SpanStore for PostgresStore {
    async fn record_span(&self, span: Span) -> Result<Span, StoreError> {
        let span = truncate_span(span);
        sqlx::query(INSERT_SPAN.postgres)
            .bind(span.trace_id.to_string())
            .bind(span.span_id.to_string())
            .bind(span.parent_span_id.map(|id| id.to_string()))
            .bind(span.run_id.map(|id| id.to_string()))
            .bind(&span.name)
            .bind(span.status.as_str())
            .bind(Json(&span.attributes))
            .bind(span.input.as_ref().map(Json))
            .bind(span.output.as_ref().map(Json))
            .bind(span.error.as_deref())
            .bind(span.start_time)
            .bind(span.end_time)
            .execute(self.writer())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::duplicate(format!(
                        "span {} of trace {}",
                        span.span_id, span.trace_id
                    ))
                } else {
                    e.into()
                }
            })?;
        Ok(span)
    }

    async fn close_span(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
        mut end: SpanEnd,
    ) -> Result<Span, StoreError> {
        end.end_time = truncate(end.end_time);
        // Read, compute the closed span, then write it on condition it
        // is still open: the first close wins, later ones read it back.
        let mut tx = self.writer().begin().await?;
        let row: Option<SpanRow> = sqlx::query_as(SPAN.postgres)
            .bind(trace_id.to_string())
            .bind(span_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let span: Span = row
            .ok_or_else(|| StoreError::not_found(format!("span {span_id} of trace {trace_id}")))?
            .try_into()?;
        if !span.is_open() || end.status == SpanStatus::Open {
            return Ok(span);
        }
        let closed = span.closed(end);
        let updated = sqlx::query(CLOSE_SPAN.postgres)
            .bind(closed.status.as_str())
            .bind(Json(&closed.attributes))
            .bind(closed.output.as_ref().map(Json))
            .bind(closed.error.as_deref())
            .bind(closed.end_time)
            .bind(trace_id.to_string())
            .bind(span_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if updated == 1 {
            return Ok(closed);
        }
        // Closed by someone else between the read and the write.
        let row: SpanRow = sqlx::query_as(SPAN.postgres)
            .bind(trace_id.to_string())
            .bind(span_id.to_string())
            .fetch_one(self.reader())
            .await?;
        row.try_into()
    }

    async fn list_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        trace_spans(self.reader(), TRACE_SPANS.postgres, trace_id).await
    }

    async fn list_open_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        trace_spans(self.reader(), TRACE_OPEN_SPANS.postgres, trace_id).await
    }
}
