//! The `Store` implementation on sqlx, instantiated for Postgres by
//! `sql_store!` (the adapter supplies its pools, `writer()` and `reader()`,
//! and its migrations). SQLite, which once shared it, has its own adapter on
//! rusqlite (`sqlite.rs`) with the same statements and the column lists
//! below.

pub(crate) const RUN_COLUMNS: &str = "run_id, project, status, job_code, user_id, input, result, \
     execution_id, providers_mode, error, created_at, updated_at";
pub(crate) const ARTIFACT_COLUMNS: &str =
    "id, run_id, type, provider, persona, url, checksum, metadata, created_at";
pub(crate) const WEBHOOK_COLUMNS: &str = "id, run_id, provider, idempotency_key, provider_job_id, \
     signature_status, headers, payload, status, error, created_at, processed_at";
pub(crate) const JOB_COLUMNS: &str = "provider, job_id, run_id, persona, task_token, status, \
     result, error, created_at, settled_at, next_check_at, checks, settled_by";
pub(crate) const HITL_COLUMNS: &str =
    "run_id, gate, task_token, requested_at, decision, decided_by, comment, decided_at, delivered_at";

pub(crate) const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, run_id, name, status, \
     attributes, input, output, error, start_time, end_time";

/// The condition `trace_spans` narrows a trace's spans to the open ones with.
pub(crate) const OPEN_SPANS: &str = "AND status = 'open'";

/// The webhook events the callbacks consumer still owes a handling, oldest first (no parameters,
/// so one text serves both SQL adapters; the partial index `webhook_events_received` answers it).
pub(crate) fn received_webhook_events_query() -> String {
    format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhook_events WHERE status = 'received' \
         ORDER BY created_at, id"
    )
}

/// Statuses `prune` may delete: the terminal ones.
pub(crate) const TERMINAL_STATUSES: &str =
    "('published', 'failed', 'rejected', 'cancelled', 'timed_out')";

macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use serde_json::Value;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::domain::{
            Artifact, ChatMessage, ChatRole, Gate, HitlRequest, JobCode, NewArtifact, NewHitlRequest,
            NewProviderJob, NewRun, NewWebhookEvent, Persona, Provider, ProviderJob, Run, RunId, RunStatus,
            SettledBy, Span, SpanEnd, SpanId, SpanStatus, TraceId, WebhookEvent,
            WebhookEventStatus,
        };
        use crate::store::error::{is_foreign_key_violation, is_unique_violation};
        use crate::store::rows::{
            convert, delivered, now, truncate, ArtifactRow, HitlRequestRow, ProviderJobRow, RunRow, SpanRow,
            WebhookEventRow,
        };
        use crate::store::sql::*;
        use crate::store::{
            Decided, Decision, JobOutcome, PruneReport, Recorded, RunFilter, RunPage, Settled,
            SettledForEvent, Store, StoreError, Transition, JOB_CODE_ATTEMPTS,
        };

        /// A trace's spans by start time; `only` narrows them (`AND …` on
        /// their columns, or empty).
        async fn trace_spans<'c, E>(
            exec: E,
            trace_id: TraceId,
            only: &str,
        ) -> Result<Vec<Span>, StoreError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            let sql = format!(
                "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = $1 {only} \
                 ORDER BY start_time, span_id"
            );
            let rows: Vec<SpanRow> = sqlx::query_as(&sql)
                .bind(trace_id.to_string())
                .fetch_all(exec)
                .await?;
            convert(rows)
        }

        async fn insert_artifact<'c, E>(exec: E, new: NewArtifact) -> Result<Artifact, StoreError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            let sql = format!(
                "INSERT INTO artifacts ({ARTIFACT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {ARTIFACT_COLUMNS}"
            );
            let row: ArtifactRow = sqlx::query_as(&sql)
                .bind(Uuid::now_v7().to_string())
                .bind(new.run_id.to_string())
                .bind(new.artifact_type.as_str())
                .bind(new.provider.map(Provider::as_str))
                .bind(new.persona.map(|p| p.as_str()))
                .bind(new.url)
                .bind(new.checksum)
                .bind(Json(new.metadata))
                .bind(now())
                .fetch_one(exec)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::not_found(format!("run {}", new.run_id))
                    } else {
                        e.into()
                    }
                })?;
            row.try_into()
        }

        /// Moves `change`'s run to `change.to` (with its error and result) if
        /// it is still `change.from`; the run as changed, or `None`.
        async fn transition<'c, E>(exec: E, change: &Transition) -> Result<Option<RunRow>, StoreError>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            let sql = format!(
                "UPDATE runs SET status = $1, updated_at = $2, \
                   error = COALESCE($3, error), result = COALESCE($4, result) \
                 WHERE run_id = $5 AND status = $6 RETURNING {RUN_COLUMNS}"
            );
            Ok(sqlx::query_as(&sql)
                .bind(change.to.as_str())
                .bind(now())
                .bind(change.error.as_deref())
                .bind(change.result.as_ref().map(Json))
                .bind(change.run_id.to_string())
                .bind(change.from.as_str())
                .fetch_optional(exec)
                .await?)
        }

        impl $store {
            async fn fetch_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError> {
                let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1");
                let row: Option<RunRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(Run::try_from).transpose()
            }

            async fn require_run(&self, run_id: RunId) -> Result<Run, StoreError> {
                self.fetch_run(run_id)
                    .await?
                    .ok_or_else(|| StoreError::not_found(format!("run {run_id}")))
            }

            async fn update_run_field<T>(
                &self,
                run_id: RunId,
                column: &str,
                value: T,
            ) -> Result<Run, StoreError>
            where
                T: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Send + 'static,
            {
                let sql = format!(
                    "UPDATE runs SET {column} = $1, updated_at = $2 WHERE run_id = $3 \
                     RETURNING {RUN_COLUMNS}"
                );
                let row: Option<RunRow> = sqlx::query_as(&sql)
                    .bind(value)
                    .bind(now())
                    .bind(run_id.to_string())
                    .fetch_optional(self.writer())
                    .await?;
                row.ok_or_else(|| StoreError::not_found(format!("run {run_id}")))?
                    .try_into()
            }

            async fn fetch_job(
                &self,
                provider: Provider,
                job_id: &str,
            ) -> Result<Option<ProviderJob>, StoreError> {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM provider_jobs WHERE provider = $1 AND job_id = $2"
                );
                let row: Option<ProviderJobRow> = sqlx::query_as(&sql)
                    .bind(provider.as_str())
                    .bind(job_id)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(ProviderJob::try_from).transpose()
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
                let sql = format!(
                    "UPDATE provider_jobs SET status = $1, result = $2, error = $3, settled_at = $4, \
                       settled_by = $5, next_check_at = NULL \
                     WHERE provider = $6 AND job_id = $7 AND status = 'pending' \
                     RETURNING {JOB_COLUMNS}"
                );
                let mut tx = self.writer().begin().await?;
                let row: Option<ProviderJobRow> = sqlx::query_as(&sql)
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
                        .fetch_job(provider, job_id)
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
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(format!("{}:{token}", job.run_id))
                        .execute(&mut *tx)
                        .await?;
                    let finished = sqlx::query(
                        "UPDATE webhook_events SET status = 'processed', error = NULL, \
                           processed_at = $1, run_id = COALESCE(run_id, $2) \
                         WHERE id = $3 AND status = 'received' AND EXISTS (SELECT 1 \
                           FROM provider_jobs WHERE run_id = $2 AND task_token = $4 \
                           AND status = 'pending')",
                    )
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
                let sql = format!(
                    "SELECT {HITL_COLUMNS} FROM hitl_requests WHERE run_id = $1 AND gate = $2"
                );
                let row: Option<HitlRequestRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .bind(gate.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(HitlRequest::try_from).transpose()
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                self.run_migrations().await
            }

            async fn create_run(&self, new: NewRun) -> Result<Run, StoreError> {
                let sql = format!(
                    "INSERT INTO runs ({RUN_COLUMNS}) \
                     VALUES ($1, $2, 'pending', $3, $4, $5, NULL, NULL, $6, NULL, $7, $7) \
                     RETURNING {RUN_COLUMNS}"
                );
                for _ in 0..JOB_CODE_ATTEMPTS {
                    let inserted = sqlx::query_as::<_, RunRow>(&sql)
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
                        Err(e) if is_unique_violation(&e) && e.to_string().contains("job_code") => {
                            continue
                        }
                        Err(e) if is_unique_violation(&e) => {
                            return Err(StoreError::duplicate(format!("run {}", new.run_id)))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(StoreError::no_free_job_code(&new.project))
            }

            async fn get_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError> {
                self.fetch_run(run_id).await
            }

            async fn find_run_by_job_code(&self, code: &JobCode) -> Result<Option<Run>, StoreError> {
                let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE job_code = $1");
                let row: Option<RunRow> = sqlx::query_as(&sql)
                    .bind(code.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(Run::try_from).transpose()
            }

            async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, StoreError> {
                let limit = filter.page_size();
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR project = $2) \
                       AND ($3 IS NULL OR (created_at, run_id) < \
                            (SELECT c.created_at, c.run_id FROM runs c WHERE c.run_id = $3)) \
                     ORDER BY created_at DESC, run_id DESC LIMIT $4"
                );
                let rows: Vec<RunRow> = sqlx::query_as(&sql)
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(filter.project.as_ref().map(|p| p.as_str()))
                    .bind(filter.after.map(|id| id.to_string()))
                    .bind(i64::from(limit) + 1)
                    .fetch_all(self.reader())
                    .await?;
                Ok(RunPage::from_overfetched(convert(rows)?, limit as usize))
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
                self.update_run_field(run_id, "result", Json(result)).await
            }

            async fn set_execution_id(
                &self,
                run_id: RunId,
                execution_id: &str,
            ) -> Result<Run, StoreError> {
                self.update_run_field(run_id, "execution_id", execution_id.to_owned())
                    .await
            }

            async fn append_artifact(&self, artifact: NewArtifact) -> Result<Artifact, StoreError> {
                insert_artifact(self.writer(), artifact).await
            }

            async fn append_artifact_once(
                &self,
                new: NewArtifact,
                key: &str,
            ) -> Result<Option<Artifact>, StoreError> {
                let artifact = new.stored_at(now());
                let sql = format!(
                    "INSERT INTO artifacts ({ARTIFACT_COLUMNS}, once_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (run_id, once_key) WHERE once_key IS NOT NULL DO NOTHING"
                );
                let inserted = sqlx::query(&sql)
                    .bind(artifact.id.to_string())
                    .bind(artifact.run_id.to_string())
                    .bind(artifact.artifact_type.as_str())
                    .bind(artifact.provider.map(Provider::as_str))
                    .bind(artifact.persona.map(|p| p.as_str()))
                    .bind(artifact.url.clone())
                    .bind(artifact.checksum.clone())
                    .bind(Json(artifact.metadata.clone()))
                    .bind(artifact.created_at)
                    .bind(key)
                    .execute(self.writer())
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::not_found(format!("run {}", artifact.run_id))
                        } else {
                            e.into()
                        }
                    })?
                    .rows_affected();
                Ok((inserted == 1).then_some(artifact))
            }

            async fn list_artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, StoreError> {
                let sql = format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1 \
                     ORDER BY created_at, id"
                );
                let rows: Vec<ArtifactRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn list_artifacts_of(
                &self,
                run_id: RunId,
                types: &[&str],
            ) -> Result<Vec<Artifact>, StoreError> {
                let sql = format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = $1 AND type = ANY($2) \
                     ORDER BY created_at, id"
                );
                let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
                let rows: Vec<ArtifactRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .bind(types)
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn record_webhook_event(
                &self,
                event: NewWebhookEvent,
            ) -> Result<Recorded, StoreError> {
                let sql = format!(
                    "INSERT INTO webhook_events ({WEBHOOK_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, NULL) \
                     ON CONFLICT (provider, idempotency_key) DO NOTHING \
                     RETURNING {WEBHOOK_COLUMNS}"
                );
                let inserted: Option<WebhookEventRow> = sqlx::query_as(&sql)
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
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::not_found(format!("run {}", event.run_id.unwrap_or_default()))
                        } else {
                            e.into()
                        }
                    })?;
                if let Some(row) = inserted {
                    return Ok(Recorded::Inserted(row.try_into()?));
                }
                let sql = format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhook_events \
                     WHERE provider = $1 AND idempotency_key = $2"
                );
                let existing: WebhookEventRow = sqlx::query_as(&sql)
                    .bind(event.provider.as_str())
                    .bind(&event.idempotency_key)
                    .fetch_one(self.reader())
                    .await?;
                Ok(Recorded::Duplicate(existing.try_into()?))
            }

            async fn get_webhook_event(&self, id: Uuid) -> Result<Option<WebhookEvent>, StoreError> {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_events WHERE id = $1");
                let row: Option<WebhookEventRow> = sqlx::query_as(&sql)
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(WebhookEvent::try_from).transpose()
            }

            async fn list_webhook_events(
                &self,
                run_id: RunId,
            ) -> Result<Vec<WebhookEvent>, StoreError> {
                let sql = format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhook_events WHERE run_id = $1 \
                     ORDER BY created_at, id"
                );
                let rows: Vec<WebhookEventRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn received_webhook_events(&self) -> Result<Vec<WebhookEvent>, StoreError> {
                let sql = received_webhook_events_query();
                let rows: Vec<WebhookEventRow> =
                    sqlx::query_as(&sql).fetch_all(self.reader()).await?;
                convert(rows)
            }

            async fn finish_webhook_event(
                &self,
                id: Uuid,
                status: WebhookEventStatus,
                error: Option<&str>,
                run_id: Option<RunId>,
            ) -> Result<WebhookEvent, StoreError> {
                let sql = format!(
                    "UPDATE webhook_events SET status = $1, error = $2, processed_at = $3, \
                       run_id = COALESCE(run_id, $5) \
                     WHERE id = $4 RETURNING {WEBHOOK_COLUMNS}"
                );
                let row: Option<WebhookEventRow> = sqlx::query_as(&sql)
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
                let sql = format!(
                    "WITH adopted AS (UPDATE webhook_events \
                       SET status = 'received', processed_at = NULL, error = NULL \
                       WHERE provider = $1 AND provider_job_id = $2 AND status = 'orphaned' \
                       RETURNING {WEBHOOK_COLUMNS}) \
                     SELECT {WEBHOOK_COLUMNS} FROM adopted ORDER BY created_at, id"
                );
                let rows: Vec<WebhookEventRow> = sqlx::query_as(&sql)
                    .bind(provider.as_str())
                    .bind(job_id)
                    .fetch_all(self.writer())
                    .await?;
                convert(rows)
            }

            async fn register_provider_job(
                &self,
                job: NewProviderJob,
            ) -> Result<ProviderJob, StoreError> {
                let sql = format!(
                    "INSERT INTO provider_jobs ({JOB_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', NULL, NULL, $6, NULL, $7, 0, NULL) \
                     RETURNING {JOB_COLUMNS}"
                );
                let row: ProviderJobRow = sqlx::query_as(&sql)
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
                        } else if is_foreign_key_violation(&e) {
                            StoreError::not_found(format!("run {}", job.run_id))
                        } else {
                            e.into()
                        }
                    })?;
                row.try_into()
            }

            async fn find_provider_job(
                &self,
                provider: Provider,
                job_id: &str,
            ) -> Result<Option<ProviderJob>, StoreError> {
                self.fetch_job(provider, job_id).await
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
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM provider_jobs WHERE run_id = $1 \
                     ORDER BY created_at, job_id"
                );
                let rows: Vec<ProviderJobRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn list_task_jobs(
                &self,
                run_id: RunId,
                task_token: &str,
            ) -> Result<Vec<ProviderJob>, StoreError> {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM provider_jobs WHERE run_id = $1 AND task_token = $2 \
                     ORDER BY created_at, job_id"
                );
                let rows: Vec<ProviderJobRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .bind(task_token)
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn rebind_persona_jobs(
                &self,
                run_id: RunId,
                persona: Persona,
                task_token: &str,
            ) -> Result<u32, StoreError> {
                let changed = sqlx::query(
                    "UPDATE provider_jobs SET task_token = $1 \
                     WHERE run_id = $2 AND persona = $3 \
                       AND task_token IS DISTINCT FROM $1",
                )
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
                let sql = format!(
                    "WITH due AS (SELECT provider, job_id, next_check_at FROM provider_jobs \
                       WHERE status = 'pending' AND next_check_at <= $1 \
                       ORDER BY next_check_at, provider, job_id LIMIT $2 \
                       FOR UPDATE SKIP LOCKED), \
                     claimed AS (UPDATE provider_jobs SET checks = checks + 1, next_check_at = $3 \
                       WHERE (provider, job_id) IN (SELECT provider, job_id FROM due) \
                       RETURNING {JOB_COLUMNS}) \
                     SELECT claimed.* FROM claimed JOIN due USING (provider, job_id) \
                     ORDER BY due.next_check_at, provider, job_id"
                );
                let rows: Vec<ProviderJobRow> = sqlx::query_as(&sql)
                    .bind(truncate(now))
                    .bind(i64::from(limit))
                    .bind(truncate(lease_until))
                    .fetch_all(self.writer())
                    .await?;
                convert(rows)
            }

            async fn schedule_provider_job_check(
                &self,
                provider: Provider,
                job_id: &str,
                at: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let scheduled = sqlx::query(
                    "UPDATE provider_jobs SET next_check_at = $1 \
                     WHERE provider = $2 AND job_id = $3 AND status = 'pending'",
                )
                .bind(truncate(at))
                .bind(provider.as_str())
                .bind(job_id)
                .execute(self.writer())
                .await?
                .rows_affected();
                if scheduled == 1 {
                    return Ok(true);
                }
                match self.fetch_job(provider, job_id).await? {
                    Some(_) => Ok(false),
                    None => Err(StoreError::not_found(format!("{provider} job {job_id}"))),
                }
            }

            async fn record_hitl_request(
                &self,
                request: NewHitlRequest,
            ) -> Result<HitlRequest, StoreError> {
                let sql = format!(
                    "INSERT INTO hitl_requests ({HITL_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, NULL, NULL, NULL, NULL, NULL) \
                     ON CONFLICT (run_id, gate) DO UPDATE SET task_token = excluded.task_token \
                       WHERE hitl_requests.decision IS NULL \
                     RETURNING {HITL_COLUMNS}"
                );
                let mut tx = self.writer().begin().await?;
                let row: Option<HitlRequestRow> = sqlx::query_as(&sql)
                    .bind(request.run_id.to_string())
                    .bind(request.gate.as_str())
                    .bind(request.task_token.as_deref())
                    .bind(now())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::not_found(format!("run {}", request.run_id))
                        } else {
                            e.into()
                        }
                    })?;
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
                let sql = format!(
                    "UPDATE hitl_requests SET decision = $1, decided_by = $2, comment = $3, \
                       decided_at = $4 \
                     WHERE run_id = $5 AND gate = $6 AND decision IS NULL \
                     RETURNING {HITL_COLUMNS}"
                );
                let row: Option<HitlRequestRow> = sqlx::query_as(&sql)
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
                let sql = format!(
                    "SELECT {HITL_COLUMNS} FROM hitl_requests WHERE run_id = $1 \
                     ORDER BY requested_at, gate"
                );
                let rows: Vec<HitlRequestRow> = sqlx::query_as(&sql)
                    .bind(run_id.to_string())
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn mark_hitl_delivered(&self, run_id: RunId, gate: &Gate) -> Result<(), StoreError> {
                let decided: Option<(Option<String>,)> = sqlx::query_as(
                    "UPDATE hitl_requests SET delivered_at = CASE WHEN decision IS NULL THEN NULL \
                       ELSE COALESCE(delivered_at, $1) END \
                     WHERE run_id = $2 AND gate = $3 RETURNING decision",
                )
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
                let sql = format!(
                    "SELECT {HITL_COLUMNS} FROM hitl_requests \
                     WHERE decision IS NOT NULL AND delivered_at IS NULL AND decided_at < $1 \
                     ORDER BY decided_at LIMIT $2"
                );
                let rows: Vec<HitlRequestRow> = sqlx::query_as(&sql)
                    .bind(before)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(self.reader())
                    .await?;
                convert(rows)
            }

            async fn append_conversation(
                &self,
                user_id: &str,
                messages: Vec<(ChatRole, String, Vec<RunId>)>,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer().begin().await?;
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(seq) FROM conversation_messages WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let mut seq = last.unwrap_or(0);
                for (role, content, run_ids) in messages {
                    seq += 1;
                    sqlx::query(
                        "INSERT INTO conversation_messages (user_id, seq, role, content, run_ids, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
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

            async fn conversation(&self, user_id: &str, limit: u32) -> Result<Vec<ChatMessage>, StoreError> {
                let rows: Vec<(String, String, Json<Vec<RunId>>, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT role, content, run_ids, created_at FROM conversation_messages \
                     WHERE user_id = $1 ORDER BY seq DESC LIMIT $2",
                )
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                let mut messages = rows
                    .into_iter()
                    .map(|(role, content, run_ids, created_at)| {
                        Ok(ChatMessage { role: role.parse()?, content, run_ids: run_ids.0, created_at })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                messages.reverse();
                Ok(messages)
            }

            async fn record_span(&self, mut span: Span) -> Result<Span, StoreError> {
                span.start_time = truncate(span.start_time);
                span.end_time = span.end_time.map(truncate);
                let sql = format!(
                    "INSERT INTO spans ({SPAN_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                );
                sqlx::query(&sql)
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
                            StoreError::duplicate(format!("span {} of trace {}", span.span_id, span.trace_id))
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
                let select = format!(
                    "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = $1 AND span_id = $2"
                );
                // Read, compute the closed span, then write it on condition it
                // is still open: the first close wins, later ones read it back.
                let mut tx = self.writer().begin().await?;
                let row: Option<SpanRow> = sqlx::query_as(&select)
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
                let updated = sqlx::query(
                    "UPDATE spans SET status = $1, attributes = $2, output = $3, error = $4, \
                       end_time = $5 \
                     WHERE trace_id = $6 AND span_id = $7 AND status = 'open'",
                )
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
                let row: SpanRow = sqlx::query_as(&select)
                    .bind(trace_id.to_string())
                    .bind(span_id.to_string())
                    .fetch_one(self.reader())
                    .await?;
                row.try_into()
            }

            async fn list_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
                trace_spans(self.reader(), trace_id, "").await
            }

            async fn list_open_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
                trace_spans(self.reader(), trace_id, OPEN_SPANS).await
            }

            async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError> {
                let old_runs = format!(
                    "SELECT run_id FROM runs WHERE status IN {TERMINAL_STATUSES} AND updated_at < $1"
                );
                let mut tx = self.writer().begin().await?;
                let count = |table: &str| {
                    format!("SELECT COUNT(*) FROM {table} WHERE run_id IN ({old_runs})")
                };
                let artifacts: i64 = sqlx::query_scalar(&count("artifacts"))
                    .bind(cutoff)
                    .fetch_one(&mut *tx)
                    .await?;
                let run_events: i64 = sqlx::query_scalar(&count("webhook_events"))
                    .bind(cutoff)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(&format!("DELETE FROM spans WHERE run_id IN ({old_runs})"))
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM spans WHERE run_id IS NULL AND start_time < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?;
                let runs = sqlx::query(&format!("DELETE FROM runs WHERE run_id IN ({old_runs})"))
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let orphans =
                    sqlx::query("DELETE FROM webhook_events WHERE run_id IS NULL AND created_at < $1")
                        .bind(cutoff)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                sqlx::query("DELETE FROM conversation_messages WHERE created_at < $1")
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
    };
}
pub(crate) use sql_store;
