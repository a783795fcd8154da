//! The `Store` port on SQLite: the statements shared with Postgres
//! (`sql::store`) and the few only SQLite has, run on the calling thread; writes go through
//! `SqliteStore::write` (group commit), reads through `SqliteStore::with`.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row, ToSql};
use serde_json::Value;
use uuid::Uuid;

use super::rows::*;
use super::SqliteStore;
use crate::domain::{
    Artifact, ArtifactType, ChatMessage, ChatRole, Gate, HitlRequest, JobCode, NewArtifact,
    NewHitlRequest, NewProviderJob, NewRun, NewWebhookEvent, Persona, Provider, ProviderJob, Run,
    RunId, RunLabels, RunStatus, SettledBy, Span, SpanEnd, SpanId, SpanStatus, TraceId,
    WebhookEvent, WebhookEventStatus,
};
use crate::store::clock::{now, truncate, truncate_span};
use crate::store::sql::delivered;
use crate::store::sql::store::*;
use crate::store::sql::Statement;
use crate::store::{
    ArtifactStore, ConversationStore, Decided, Decision, GateStore, JobOutcome, Maintenance,
    ProviderJobStore, PruneReport, Recorded, RunFilter, RunPage, RunStore, Settled,
    SettledForEvent, SpanStore, StoreError, Transition, WebhookEventStore, JOB_CODE_ATTEMPTS,
};

/// The keys of up to `?2` pending jobs due by `?1`, earliest first (the
/// partial index `provider_jobs_due` holds just the pending jobs).
const DUE_JOBS: &str = "SELECT provider, job_id FROM provider_jobs \
     WHERE status = 'pending' AND next_check_at <= ?1 \
     ORDER BY next_check_at, provider, job_id LIMIT ?2";

/// Claims the due job `?3` of provider `?2` until `?1` (see `DUE_JOBS`).
const CLAIM_DUE_JOB: &str = concat!(
    "UPDATE provider_jobs SET checks = checks + 1, next_check_at = ?1 \
     WHERE provider = ?2 AND job_id = ?3 AND status = 'pending' RETURNING ",
    job_columns!()
);

/// A run's labels: `run_id, project, providers_mode, status`.
const RUN_LABELS: &str =
    "SELECT run_id, project, providers_mode, status FROM runs WHERE run_id = ?1";

/// A webhook event's `status, created_at`.
const WEBHOOK_EVENT_STATUS: &str = "SELECT status, created_at FROM webhook_events WHERE id = ?1";

fn insert_artifact(conn: &Connection, new: &NewArtifact) -> Result<Artifact, StoreError> {
    let artifact = new.clone().stored_at(now());
    write_artifact(conn, &artifact, None)?;
    Ok(artifact)
}

/// Inserts `artifact` (`INSERT_ARTIFACT`), or with `once_key` unless its run
/// has an artifact under that key (`INSERT_ARTIFACT_ONCE`); answers how many
/// rows it inserted.
fn write_artifact(
    conn: &Connection,
    artifact: &Artifact,
    once_key: Option<&str>,
) -> Result<usize, StoreError> {
    let values: [&dyn ToSql; 10] = [
        &artifact.id.to_string(),
        &artifact.run_id.to_string(),
        &artifact.artifact_type.as_str(),
        &artifact.provider.map(Provider::as_str),
        &artifact.persona.map(|p| p.as_str()),
        &artifact.url,
        &artifact.checksum,
        &json_text(&artifact.metadata),
        &ts(&artifact.created_at),
        &once_key,
    ];
    let (sql, values) = match once_key {
        None => (INSERT_ARTIFACT.sqlite, &values[..9]),
        Some(_) => (INSERT_ARTIFACT_ONCE.sqlite, &values[..]),
    };
    conn.prepare_cached(sql)?
        .execute(values)
        .map_err(|e| missing_run(e, artifact.run_id))
}

fn fetch_run(conn: &Connection, run_id: RunId) -> Result<Option<Run>, StoreError> {
    one(conn, RUN.sqlite, params![run_id.to_string()], run)
}

fn fetch_job(
    conn: &Connection,
    provider: Provider,
    job_id: &str,
) -> Result<Option<ProviderJob>, StoreError> {
    one(
        conn,
        PROVIDER_JOB.sqlite,
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
        SPAN.sqlite,
        params![trace_id.to_string(), span_id.to_string()],
        span,
    )
}

impl SqliteStore {
    /// Sets one field of a run with `sql` (`SET_RUN_RESULT`,
    /// `SET_EXECUTION_ID`).
    async fn update_run_field(
        &self,
        run_id: RunId,
        sql: &'static str,
        value: String,
    ) -> Result<Run, StoreError> {
        self.write(move |tx| one(tx, sql, params![value, ts(&now()), run_id.to_string()], run))
            .await?
            .ok_or_else(|| StoreError::not_found(format!("run {run_id}")))
    }

    /// Writes `value` with `f` and answers it: `value` is shared with the
    /// write, which may run twice (`SqliteStore::write`), rather than cloned
    /// into it.
    async fn write_shared<T>(
        &self,
        value: T,
        f: fn(&Connection, &T) -> Result<(), StoreError>,
    ) -> Result<T, StoreError>
    where
        T: Clone + Send + Sync + 'static,
    {
        let value = Arc::new(value);
        let written = Arc::clone(&value);
        self.write(move |tx| f(tx, &written)).await?;
        Ok(Arc::unwrap_or_clone(value))
    }

    /// The rows `sql` selects for one run (its `?1`), each read by `read`.
    fn of_run<T>(
        &self,
        sql: &str,
        run_id: RunId,
        read: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.with(|conn| all(conn, sql, params![run_id.to_string()], read))
    }
}

// The `impl`s below restate the port's signatures (`store::port`), as every
// adapter of a trait must, so they read like Postgres's and DynamoDB's; what
// the SQL adapters share beyond that is written once (`sql::store`).
#[async_trait]
impl Maintenance for SqliteStore {
    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await
    }

    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError> {
        let cutoff = ts(&cutoff);
        self.write(move |tx| {
            let count = |sql: Statement| -> Result<i64, StoreError> {
                Ok(tx.query_row(sql.sqlite, params![cutoff], |row| row.get(0))?)
            };
            let delete = |sql: Statement| tx.execute(sql.sqlite, params![cutoff]);
            let artifacts = count(COUNT_OLD_ARTIFACTS)?;
            let run_events = count(COUNT_OLD_WEBHOOK_EVENTS)?;
            delete(DELETE_OLD_SPANS)?;
            delete(DELETE_OLD_LONE_SPANS)?;
            let runs = delete(DELETE_OLD_RUNS)?;
            let orphans = delete(DELETE_OLD_ORPHAN_EVENTS)?;
            delete(DELETE_OLD_MESSAGES)?;
            Ok(PruneReport {
                runs: runs as u64,
                artifacts: artifacts as u64,
                webhook_events: run_events as u64 + orphans as u64,
            })
        })
        .await
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, new: NewRun) -> Result<Run, StoreError> {
        let input = json_text(&new.input);
        for _ in 0..JOB_CODE_ATTEMPTS {
            let job_code = JobCode::generate(&new.project);
            let created_at = now();
            let row = (
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
                    let (run_id, project, code, user, input, mode, at) = &row;
                    Ok(tx
                        .prepare_cached(INSERT_RUN.sqlite)?
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
        Err(StoreError::no_free_job_code(&new.project))
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError> {
        self.with(|conn| fetch_run(conn, run_id))
    }

    async fn get_run_labels(&self, run_id: RunId) -> Result<Option<RunLabels>, StoreError> {
        self.with(|conn| one(conn, RUN_LABELS, params![run_id.to_string()], run_labels))
    }

    async fn find_run_by_job_code(&self, code: &JobCode) -> Result<Option<Run>, StoreError> {
        self.with(|conn| one(conn, RUN_BY_JOB_CODE.sqlite, params![code.as_str()], run))
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, StoreError> {
        let limit = filter.page_size();
        let runs = self.with(|conn| {
            all(
                conn,
                LIST_RUNS.sqlite,
                params![
                    filter.status.map(|s| s.as_str()),
                    filter.project.as_ref().map(|p| p.as_str()),
                    filter.after.map(|id| id.to_string()),
                    i64::from(limit) + 1,
                ],
                run,
            )
        })?;
        Ok(RunPage::from_overfetched(runs, limit as usize))
    }

    async fn transition_run(&self, change: Transition) -> Result<Run, StoreError> {
        change.check_legal()?;
        self.write(move |tx| {
            let Some(updated) = transition(tx, &change)? else {
                let current = fetch_run(tx, change.run_id)?
                    .ok_or_else(|| StoreError::not_found(format!("run {}", change.run_id)))?;
                return Err(StoreError::Conflict {
                    expected: change.from,
                    actual: current.status,
                });
            };
            if let Some(artifact) = &change.artifact {
                insert_artifact(tx, artifact)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn set_run_result(&self, run_id: RunId, result: Value) -> Result<Run, StoreError> {
        self.update_run_field(run_id, SET_RUN_RESULT.sqlite, json_text(&result))
            .await
    }

    async fn set_execution_id(&self, run_id: RunId, execution_id: &str) -> Result<Run, StoreError> {
        self.update_run_field(run_id, SET_EXECUTION_ID.sqlite, execution_id.to_owned())
            .await
    }
}

#[async_trait]
impl ArtifactStore for SqliteStore {
    async fn append_artifact(&self, artifact: NewArtifact) -> Result<Artifact, StoreError> {
        self.write(move |tx| insert_artifact(tx, &artifact)).await
    }

    async fn append_artifact_once(
        &self,
        new: NewArtifact,
        key: &str,
    ) -> Result<Option<Artifact>, StoreError> {
        let key = key.to_owned();
        self.write(move |tx| {
            let artifact = new.clone().stored_at(now());
            let inserted = write_artifact(tx, &artifact, Some(&key))?;
            Ok((inserted == 1).then_some(artifact))
        })
        .await
    }

    async fn list_artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, StoreError> {
        self.of_run(RUN_ARTIFACTS.sqlite, run_id, artifact)
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
}

#[async_trait]
impl WebhookEventStore for SqliteStore {
    async fn record_webhook_event(&self, new: NewWebhookEvent) -> Result<Recorded, StoreError> {
        let event = new.stored_at(now());
        let select = WEBHOOK_EVENT_BY_KEY.sqlite;
        self.write(move |tx| {
            let inserted = tx
                .prepare_cached(INSERT_WEBHOOK_EVENT.sqlite)?
                .execute(params![
                    event.id.to_string(),
                    event.run_id.map(|id| id.to_string()),
                    event.provider.as_str(),
                    event.idempotency_key,
                    event.provider_job_id,
                    event.signature_status.as_str(),
                    json_text(&event.headers),
                    json_text(&event.payload),
                    event.status.as_str(),
                    ts(&event.created_at),
                ])
                .map_err(|e| missing_run(e, event.run_id.unwrap_or_default()))?;
            if inserted == 1 {
                return Ok(Recorded::Inserted(event.clone()));
            }
            let existing = one(
                tx,
                select,
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
                WEBHOOK_EVENT.sqlite,
                params![id.to_string()],
                webhook_event,
            )
        })
    }

    async fn get_webhook_event_status(
        &self,
        id: Uuid,
    ) -> Result<Option<(WebhookEventStatus, DateTime<Utc>)>, StoreError> {
        self.with(|conn| {
            one(conn, WEBHOOK_EVENT_STATUS, params![id.to_string()], |row| {
                Ok((parsed(row, 0)?, time(row, 1)?))
            })
        })
    }

    async fn list_webhook_events(&self, run_id: RunId) -> Result<Vec<WebhookEvent>, StoreError> {
        self.of_run(RUN_WEBHOOK_EVENTS.sqlite, run_id, webhook_event)
    }

    async fn received_webhook_events(&self) -> Result<Vec<WebhookEvent>, StoreError> {
        self.with(|conn| all(conn, RECEIVED_WEBHOOK_EVENTS.sqlite, [], webhook_event))
    }

    async fn finish_webhook_event(
        &self,
        id: Uuid,
        status: WebhookEventStatus,
        error: Option<&str>,
        run_id: Option<RunId>,
    ) -> Result<WebhookEvent, StoreError> {
        let error = error.map(str::to_owned);
        self.write(move |tx| {
            one(
                tx,
                FINISH_WEBHOOK_EVENT.sqlite,
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

    async fn adopt_orphaned_webhook_events(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        let job_id = job_id.to_owned();
        let mut adopted = self
            .write(move |tx| {
                all(
                    tx,
                    ADOPT_ORPHANED_WEBHOOK_EVENTS.sqlite,
                    params![provider.as_str(), job_id],
                    webhook_event,
                )
            })
            .await?;
        adopted.sort_by_key(|e| (e.created_at, e.id));
        Ok(adopted)
    }
}

#[async_trait]
impl ProviderJobStore for SqliteStore {
    async fn register_provider_job(
        &self,
        mut job: NewProviderJob,
    ) -> Result<ProviderJob, StoreError> {
        job.check_at = truncate(job.check_at);
        self.write_shared(job.registered_at(now()), |tx, registered| {
            tx.prepare_cached(INSERT_PROVIDER_JOB.sqlite)?
                .execute(params![
                    registered.provider.as_str(),
                    registered.job_id,
                    registered.run_id.to_string(),
                    registered.persona.as_str(),
                    registered.task_token.as_deref(),
                    ts(&registered.created_at),
                    registered.next_check_at.as_ref().map(ts),
                ])
                .map_err(|e| match constraint(&e) {
                    Some(Constraint::Unique) => StoreError::duplicate(format!(
                        "{} job {}",
                        registered.provider, registered.job_id
                    )),
                    _ => missing_run(e, registered.run_id),
                })?;
            Ok(())
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
        by: SettledBy,
    ) -> Result<Settled, StoreError> {
        let job_id = job_id.to_owned();
        self.write(move |tx| settle_job(tx, provider, &job_id, &outcome, artifact.as_ref(), by))
            .await
    }

    async fn settle_provider_job_for_event(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        event: Uuid,
    ) -> Result<SettledForEvent, StoreError> {
        let job_id = job_id.to_owned();
        self.write(move |tx| {
            let settled = settle_job(
                tx,
                provider,
                &job_id,
                &outcome,
                artifact.as_ref(),
                SettledBy::Callback,
            )?;
            let event_finished = match &settled {
                Settled::Now(ProviderJob {
                    run_id,
                    persona,
                    task_token: Some(token),
                    ..
                }) => finish_event_if_task_waits(tx, *run_id, *persona, token, event)?,
                _ => false,
            };
            Ok(SettledForEvent {
                settled,
                event_finished,
            })
        })
        .await
    }

    async fn list_provider_jobs(&self, run_id: RunId) -> Result<Vec<ProviderJob>, StoreError> {
        self.of_run(RUN_PROVIDER_JOBS.sqlite, run_id, provider_job)
    }

    async fn list_task_jobs(
        &self,
        run_id: RunId,
        task_token: &str,
    ) -> Result<Vec<ProviderJob>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                TASK_PROVIDER_JOBS.sqlite,
                params![run_id.to_string(), task_token],
                provider_job,
            )
        })
    }

    async fn rebind_persona_jobs(
        &self,
        run_id: RunId,
        persona: Persona,
        task_token: &str,
    ) -> Result<u32, StoreError> {
        let token = task_token.to_owned();
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(REBIND_PERSONA_JOBS.sqlite)?
                .execute(params![token, run_id.to_string(), persona.as_str()])?;
            Ok(changed as u32)
        })
        .await
    }

    async fn claim_due_provider_jobs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ProviderJob>, StoreError> {
        let (now, lease_until) = (ts(&truncate(now)), ts(&truncate(lease_until)));
        // Writes are serialized: no other CLAIM_DUE_JOB runs between the read of the
        // due jobs and their claims, and the next one finds them leased.
        self.write(move |tx| {
            let due: Vec<(String, String)> =
                all(tx, DUE_JOBS, params![now, i64::from(limit)], |row| {
                    Ok((text(row, 0)?.to_owned(), text(row, 1)?.to_owned()))
                })?;
            let mut claimed = Vec::with_capacity(due.len());
            for (provider, job_id) in due {
                claimed.extend(one(
                    tx,
                    CLAIM_DUE_JOB,
                    params![lease_until, provider, job_id],
                    provider_job,
                )?);
            }
            Ok(claimed)
        })
        .await
    }

    async fn schedule_provider_job_check(
        &self,
        provider: Provider,
        job_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let job_id = job_id.to_owned();
        let at = ts(&truncate(at));
        self.write(move |tx| {
            let scheduled = tx
                .prepare_cached(SCHEDULE_PROVIDER_JOB_CHECK.sqlite)?
                .execute(params![at, provider.as_str(), job_id])?;
            if scheduled == 1 {
                return Ok(true);
            }
            match fetch_job(tx, provider, &job_id)? {
                Some(_) => Ok(false),
                None => Err(StoreError::not_found(format!("{provider} job {job_id}"))),
            }
        })
        .await
    }
}

#[async_trait]
impl GateStore for SqliteStore {
    async fn record_hitl_request(
        &self,
        request: NewHitlRequest,
    ) -> Result<HitlRequest, StoreError> {
        let (gate, run) = (request.gate.clone(), request.run_id);
        let recorded = self
            .write(move |tx| {
                let recorded = one(
                    tx,
                    RECORD_HITL_REQUEST.sqlite,
                    params![
                        request.run_id.to_string(),
                        request.gate.as_str(),
                        request.task_token.as_deref(),
                        ts(&now()),
                    ],
                    hitl_request,
                )
                .map_err(|e| match broken_constraint(&e) {
                    Some(Constraint::ForeignKey) => {
                        StoreError::not_found(format!("run {}", request.run_id))
                    }
                    _ => e,
                })?;
                if recorded.is_some() {
                    // A run not `running` (ended meanwhile) keeps its status.
                    transition(
                        tx,
                        &Transition::new(
                            request.run_id,
                            RunStatus::Running,
                            RunStatus::AwaitingApproval,
                        ),
                    )?;
                    if let Some(artifact) = &request.artifact {
                        insert_artifact(tx, artifact)?;
                    }
                }
                Ok(recorded)
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
        let select = HITL_REQUEST.sqlite;
        let gate = gate.clone();
        self.write(move |tx| {
            let decided = one(
                tx,
                DECIDE_HITL.sqlite,
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
                    select,
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
        self.of_run(RUN_HITL_REQUESTS.sqlite, run_id, hitl_request)
    }

    async fn mark_hitl_delivered(&self, run_id: RunId, gate: &Gate) -> Result<(), StoreError> {
        let name = gate.as_str().to_owned();
        let decided = self
            .write(move |tx| {
                one(
                    tx,
                    MARK_HITL_DELIVERED.sqlite,
                    params![ts(&now()), run_id.to_string(), name],
                    |row| owned(row, 0),
                )
            })
            .await?;
        delivered(decided, run_id, gate)
    }

    async fn undelivered_hitl_decisions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HitlRequest>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                UNDELIVERED_HITL_DECISIONS.sqlite,
                params![ts(&before), i64::try_from(limit).unwrap_or(i64::MAX)],
                hitl_request,
            )
        })
    }
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn append_conversation(
        &self,
        user_id: &str,
        messages: Vec<(ChatRole, String, Vec<RunId>)>,
    ) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let last: Option<i64> = tx
                .prepare_cached(LAST_MESSAGE_SEQ.sqlite)?
                .query_row(params![user_id], |row| row.get(0))?;
            let mut seq = last.unwrap_or(0);
            let mut insert = tx.prepare_cached(INSERT_MESSAGE.sqlite)?;
            for (role, content, run_ids) in &messages {
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
        })
        .await
    }

    async fn conversation(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                LAST_MESSAGES.sqlite,
                params![user_id, i64::from(limit)],
                chat_message,
            )
        })
    }
}

#[async_trait]
impl SpanStore for SqliteStore {
    async fn record_span(&self, span: Span) -> Result<Span, StoreError> {
        self.write_shared(truncate_span(span), |tx, span| {
            tx.prepare_cached(INSERT_SPAN.sqlite)?
                .execute(params![
                    span.trace_id.to_string(),
                    span.span_id.to_string(),
                    span.parent_span_id.map(|id| id.to_string()),
                    span.run_id.map(|id| id.to_string()),
                    span.name,
                    span.status.as_str(),
                    serde_json::to_string(&span.attributes)?,
                    span.input.as_ref().map(json_text),
                    span.output.as_ref().map(json_text),
                    span.error.as_deref(),
                    ts(&span.start_time),
                    span.end_time.as_ref().map(ts),
                ])
                .map_err(|e| match constraint(&e) {
                    Some(Constraint::Unique) => StoreError::duplicate(format!(
                        "span {} of trace {}",
                        span.span_id, span.trace_id
                    )),
                    _ => e.into(),
                })?;
            Ok(())
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
            let span = fetch_span(tx, trace_id, span_id)?.ok_or_else(|| {
                StoreError::not_found(format!("span {span_id} of trace {trace_id}"))
            })?;
            if !span.is_open() || end.status == SpanStatus::Open {
                return Ok(span);
            }
            let closed = span.closed(end.clone());
            tx.prepare_cached(CLOSE_SPAN.sqlite)?.execute(params![
                closed.status.as_str(),
                serde_json::to_string(&closed.attributes)?,
                closed.output.as_ref().map(json_text),
                closed.error.as_deref(),
                closed.end_time.as_ref().map(ts),
                trace_id.to_string(),
                span_id.to_string(),
            ])?;
            Ok(closed)
        })
        .await
    }

    async fn list_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                TRACE_SPANS.sqlite,
                params![trace_id.to_string()],
                span,
            )
        })
    }

    async fn list_open_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                TRACE_OPEN_SPANS.sqlite,
                params![trace_id.to_string()],
                span,
            )
        })
    }
}

/// Settles a pending job once, as `by` says, writing `artifact` with it
/// (see `Store::settle_provider_job`).
fn settle_job(
    tx: &Connection,
    provider: Provider,
    job_id: &str,
    outcome: &JobOutcome,
    artifact: Option<&NewArtifact>,
    by: SettledBy,
) -> Result<Settled, StoreError> {
    let (status, result, error) = outcome.clone().into_parts();
    let settled = one(
        tx,
        SETTLE_PROVIDER_JOB.sqlite,
        params![
            status.as_str(),
            result.as_ref().map(json_text),
            error,
            ts(&now()),
            by.as_str(),
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
        None => fetch_job(tx, provider, job_id)?
            .map(Settled::Already)
            .ok_or_else(|| StoreError::not_found(format!("{provider} job {job_id}"))),
    }
}

/// Finishes the still-received webhook `event` as processed when the task
/// `token` of `run_id` still waits for something else: another of its jobs,
/// or its agent (no `persona.completed` of `persona` yet: the worker, whose
/// record of it commits after this write, completes the task then); answers
/// whether it did.
fn finish_event_if_task_waits(
    tx: &Connection,
    run_id: RunId,
    persona: Persona,
    token: &str,
    event: Uuid,
) -> Result<bool, StoreError> {
    let finished = tx
        .prepare_cached(FINISH_EVENT_IF_TASK_WAITS.sqlite)?
        .execute(params![
            ts(&now()),
            run_id.to_string(),
            event.to_string(),
            token,
            ArtifactType::PERSONA_COMPLETED.as_str(),
            persona.as_str(),
        ])?;
    Ok(finished == 1)
}

/// Moves `change`'s run to `change.to` (with its error and result) if it is
/// still `change.from`; the run as changed, or `None` when it was not.
fn transition(tx: &Connection, change: &Transition) -> Result<Option<Run>, StoreError> {
    one(
        tx,
        TRANSITION_RUN.sqlite,
        params![
            change.to.as_str(),
            ts(&now()),
            change.error.as_deref(),
            change.result.as_ref().map(json_text),
            change.run_id.to_string(),
            change.from.as_str(),
        ],
        run,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database migrated up to (not including) `before`, by the files
    /// themselves.
    fn migrated_before(before: &str) -> (Connection, Vec<(String, String)>) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        let (done, rest): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(name, _)| name.as_str() < before);
        let conn = Connection::open_in_memory().unwrap();
        for (_, migration) in &done {
            conn.execute_batch(migration).unwrap();
        }
        (conn, rest)
    }

    /// Jobs pending when `0008` runs are due at once; those settled before
    /// it were settled by their callbacks (nothing else settled jobs then).
    #[test]
    fn the_checks_migration_makes_pending_jobs_due_and_settled_ones_callbacks() {
        let (conn, rest) = migrated_before("0008");
        let run = RunId::new();
        conn.execute(
            "INSERT INTO runs (run_id, project, status, job_code, input, providers_mode, \
               created_at, updated_at) \
             VALUES (?1, 'aismr', 'running', 'AIS-ABC123', '{}', 'mock', ?2, ?2)",
            params![run.to_string(), ts(&now())],
        )
        .unwrap();
        let registered = truncate(now() - chrono::TimeDelta::hours(1));
        for (job_id, status, settled_at) in [
            ("waiting", "pending", None),
            ("done", "succeeded", Some(ts(&now()))),
        ] {
            conn.execute(
                "INSERT INTO provider_jobs (provider, job_id, run_id, persona, task_token, \
                   status, created_at, settled_at) \
                 VALUES ('kieai', ?1, ?2, 'riley', 'token', ?3, ?4, ?5)",
                params![job_id, run.to_string(), status, ts(&registered), settled_at],
            )
            .unwrap();
        }
        conn.execute_batch(&rest[0].1).unwrap();

        let waiting = fetch_job(&conn, Provider::KieAi, "waiting")
            .unwrap()
            .unwrap();
        assert_eq!(
            (waiting.next_check_at, waiting.checks, waiting.settled_by),
            (Some(registered), 0, None)
        );
        let done = fetch_job(&conn, Provider::KieAi, "done").unwrap().unwrap();
        assert_eq!(
            (done.next_check_at, done.checks, done.settled_by),
            (None, 0, Some(SettledBy::Callback))
        );
    }

    /// The due jobs are read from the partial index of pending jobs, not
    /// from every job ever registered.
    #[test]
    fn due_jobs_are_read_from_their_index() {
        let (conn, _) = migrated_before("9999");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {DUE_JOBS}"))
            .unwrap()
            .query_map(params![ts(&now()), 10], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("provider_jobs_due")),
            "{plan:?}"
        );
    }
}
