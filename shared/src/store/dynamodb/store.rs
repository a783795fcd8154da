//! The `Store` port on the DynamoDB table: each method as reads by key or
//! query and one all-or-nothing group of conditional writes (`tx`), on the
//! items of `items`.
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::items::{self, *};
use super::table;
use super::tx::{aws_error, failed, Cond, Write, TRANSACTION_MAX};
use super::DynamoDbStore;
use crate::domain::{
    Artifact, ChatMessage, ChatRole, Gate, HitlRequest, JobCode, JobStatus, NewArtifact,
    NewHitlRequest, NewProviderJob, NewRun, NewWebhookEvent, Persona, Provider, ProviderJob, Run,
    RunId, RunStatus, SettledBy, Span, SpanEnd, SpanId, SpanStatus, TraceId, WebhookEvent,
    WebhookEventStatus,
};
use crate::store::clock::{now, truncate, truncate_span};
use crate::store::{
    ArtifactStore, ConversationStore, Decided, Decision, GateStore, JobOutcome, Maintenance,
    ProviderJobStore, PruneReport, Recorded, RunFilter, RunPage, RunStore, Settled, SpanStore,
    StoreError, Transition, WebhookEventStore, JOB_CODE_ATTEMPTS,
};

/// How many times a compare-and-set re-reads after losing a race.
const CAS_ATTEMPTS: usize = 16;

impl DynamoDbStore {
    async fn fetch_run(&self, run_id: RunId) -> Result<Option<Versioned<Run>>, StoreError> {
        self.get((run_pk(run_id), RUN_SK.into()))
            .await?
            .map(|item| run_from(&item))
            .transpose()
    }

    async fn require_run(&self, run_id: RunId) -> Result<Versioned<Run>, StoreError> {
        self.fetch_run(run_id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("run {run_id}")))
    }

    /// Changes a run with `change`, compare-and-set on its version, together
    /// with `companion` writes (`companion(run)`); `Ok(Err(codes))` when a
    /// companion's condition failed (the codes of the companion writes).
    async fn update_run<F, C>(
        &self,
        run_id: RunId,
        mut change: F,
        companion: C,
    ) -> Result<Result<Run, Vec<String>>, StoreError>
    where
        F: FnMut(&Run) -> Result<Run, StoreError>,
        C: Fn(&Run) -> Vec<Write>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.require_run(run_id).await?;
            let mut run = change(&current.value)?;
            run.updated_at = now();
            let mut writes = vec![Write::Put(
                run_item(&run, current.version + 1),
                Cond::version(current.version),
            )];
            writes.extend(companion(&run));
            match self.commit(writes).await? {
                Ok(()) => return Ok(Ok(run)),
                Err(codes) if failed(&codes, 0) => continue,
                Err(codes) => return Ok(Err(codes[1..].to_vec())),
            }
        }
        Err(StoreError::Refused(format!(
            "run {run_id} changed {CAS_ATTEMPTS} times while this change was attempted"
        )))
    }

    /// Sets one field of a run (`set`), compare-and-set on its version.
    async fn set_run_field(
        &self,
        run_id: RunId,
        set: impl Fn(&mut Run) + Send + Sync,
    ) -> Result<Run, StoreError> {
        self.update_run(
            run_id,
            |current| {
                let mut run = current.clone();
                set(&mut run);
                Ok(run)
            },
            |_| Vec::new(),
        )
        .await?
        .map_err(|_| StoreError::not_found(format!("run {run_id}")))
    }

    /// The items of run `run_id`'s partition under `prefix`, read by `from`,
    /// in the order of their sort keys.
    async fn run_items<T>(
        &self,
        run_id: RunId,
        prefix: &str,
        from: impl Fn(&Item) -> Result<T, StoreError> + Send,
    ) -> Result<Vec<T>, StoreError> {
        self.query(Self::partition(run_pk(run_id), prefix), None)
            .await?
            .iter()
            .map(from)
            .collect()
    }

    /// The artifact `new` becomes, and the writes that store it: its item and,
    /// unless its run is already guarded by the same group (`guarded`), a
    /// check that the run exists.
    fn artifact_writes(new: NewArtifact, guarded: Option<RunId>) -> (Artifact, Vec<Write>) {
        let artifact = new.stored_at(now());
        let mut writes = vec![Write::Put(artifact_item(&artifact), Cond::absent())];
        if guarded != Some(artifact.run_id) {
            writes.push(Write::Check(
                items::key((run_pk(artifact.run_id), RUN_SK.into())),
                Cond::exists(),
            ));
        }
        (artifact, writes)
    }

    async fn fetch_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Option<Versioned<ProviderJob>>, StoreError> {
        let Some(lookup) = self.get(job_lookup_key(provider, job_id)).await? else {
            return Ok(None);
        };
        let run_id: RunId = Fields(&lookup).parse("run_id")?;
        self.get(job_key(run_id, provider, job_id))
            .await?
            .map(|item| job_from(&item))
            .transpose()
    }

    async fn require_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Versioned<ProviderJob>, StoreError> {
        self.fetch_job(provider, job_id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("{provider} job {job_id}")))
    }

    /// The writes that change a job read at version `read_at` into `job`:
    /// the job, compare-and-set on that version (so the change holds only
    /// while the job is exactly as read), and its lookup item, which carries
    /// the same reconciliation fields and, while pending, the due-jobs index
    /// keys. Every change of a job writes both, in one transaction.
    fn job_writes(job: &ProviderJob, read_at: i64) -> Vec<Write> {
        vec![
            Write::Put(job_item(job, read_at + 1), Cond::version(read_at)),
            Write::Put(job_lookup_item(job), Cond::exists()),
        ]
    }

    async fn fetch_gate(
        &self,
        run_id: RunId,
        gate: &Gate,
    ) -> Result<Option<Versioned<HitlRequest>>, StoreError> {
        self.get(gate_key(run_id, gate))
            .await?
            .map(|item| gate_from(&item))
            .transpose()
    }

    async fn require_gate(
        &self,
        run_id: RunId,
        gate: &Gate,
    ) -> Result<Versioned<HitlRequest>, StoreError> {
        self.fetch_gate(run_id, gate)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("gate {gate} request of run {run_id}")))
    }

    /// Writes `request` over the gate read at version `read_at`, on
    /// condition it is still at that version; answers whether it was.
    async fn put_gate(&self, request: &HitlRequest, read_at: i64) -> Result<bool, StoreError> {
        let write = Write::Put(gate_item(request, read_at + 1), Cond::version(read_at));
        Ok(self.commit(vec![write]).await?.is_ok())
    }

    async fn stored_event(
        &self,
        provider: Provider,
        key: &str,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        let Some(guard) = self.get(idempotency_key(provider, key)).await? else {
            return Ok(None);
        };
        let id = Fields(&guard).uuid("event_id")?;
        self.get_webhook_event(id).await
    }

    /// Deletes one finished run and everything recorded for it; `None` when
    /// it changed meanwhile (then nothing of it is deleted but what no longer
    /// belonged to a live run).
    async fn prune_run(&self, run: &Versioned<Run>) -> Result<Option<PruneReport>, StoreError> {
        let id = run.value.run_id;
        let mut report = PruneReport::default();
        let events = self
            .query(Self::index(GSI1, events_of(Some(id)), None), None)
            .await?;
        let mut keys = Vec::new();
        for item in &events {
            let event = event_from(item)?;
            keys.push(items::key(event_key(event.id)));
            keys.push(items::key(idempotency_key(
                event.provider,
                &event.idempotency_key,
            )));
        }
        report.webhook_events = events.len() as u64;
        self.delete_all(keys).await?;
        let deleted = self
            .commit(vec![
                Write::Delete(
                    items::key((run_pk(id), RUN_SK.into())),
                    Cond::version(run.version),
                ),
                Write::Delete(
                    items::key(job_code_key(&run.value.job_code)),
                    Cond::exists(),
                ),
            ])
            .await?;
        if deleted.is_err() {
            return Ok(None);
        }
        report.runs = 1;
        // The partition after the run is gone: nothing can be added to it now.
        let rest = self.query(Self::partition(run_pk(id), ""), None).await?;
        let mut keys = Vec::new();
        for item in &rest {
            let sk = Fields(item).str(SK)?;
            if sk.starts_with(ARTIFACT_PREFIX) {
                report.artifacts += 1;
            } else if sk.starts_with(JOB_PREFIX) {
                let job = job_from(item)?.value;
                keys.push(items::key(job_lookup_key(job.provider, &job.job_id)));
            }
            keys.push(items::key((run_pk(id), sk.to_owned())));
        }
        self.delete_all(keys).await?;
        Ok(Some(report))
    }
}

// The `impl`s below restate the port's signatures (`store::port`), as every
// adapter of a trait must, so they read like the SQL adapters'; the bodies
// are DynamoDB's own.
#[async_trait]
impl Maintenance for DynamoDbStore {
    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        table::ensure(&self.client, &self.table).await
    }

    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError> {
        let cutoff_text = time(cutoff);
        let mut report = PruneReport::default();
        let finished = RunStatus::ALL.iter().filter(|s| s.is_terminal());
        for pk in finished.flat_map(|status| run_status_partitions(*status)) {
            // Created before the cutoff (the index's order), updated before it
            // (a filter): a run is updated no earlier than it is created.
            let mut q = Self::index(GSI2, pk, Some(cutoff_text.clone()));
            q.filter = Some("#updated_at < :cutoff".into());
            q.names.insert("#updated_at".into(), "updated_at".into());
            q.values.insert(":cutoff".into(), s(cutoff_text.clone()));
            for item in self.query(q, None).await? {
                if let Some(pruned) = self.prune_run(&run_from(&item)?).await? {
                    report.runs += pruned.runs;
                    report.artifacts += pruned.artifacts;
                    report.webhook_events += pruned.webhook_events;
                }
            }
        }
        let orphans = Self::index(GSI1, ORPHAN_EVENTS.into(), Some(cutoff_text.clone()));
        for item in self.query(orphans, None).await? {
            let event = event_from(&item)?;
            let unclaimed = Cond::named(
                "attribute_exists(#pk) AND attribute_not_exists(#run_id)",
                &[("#pk", PK), ("#run_id", "run_id")],
            );
            let deleted = self
                .commit(vec![
                    Write::Delete(items::key(event_key(event.id)), unclaimed),
                    Write::Delete(
                        items::key(idempotency_key(event.provider, &event.idempotency_key)),
                        Cond::exists(),
                    ),
                ])
                .await?;
            if deleted.is_ok() {
                report.webhook_events += 1;
            }
        }
        let messages = Self::index(GSI2, ALL_MESSAGES.into(), Some(cutoff_text));
        let keys = self
            .query(messages, None)
            .await?
            .iter()
            .map(|item| {
                let f = Fields(item);
                Ok(items::key((f.str(PK)?.to_owned(), f.str(SK)?.to_owned())))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.delete_all(keys).await?;
        Ok(report)
    }
}

#[async_trait]
impl RunStore for DynamoDbStore {
    async fn create_run(&self, new: NewRun) -> Result<Run, StoreError> {
        for _ in 0..JOB_CODE_ATTEMPTS {
            let created = now();
            let run = Run {
                run_id: new.run_id,
                project: new.project.clone(),
                status: RunStatus::Pending,
                job_code: JobCode::generate(&new.project),
                user_id: new.user_id.clone(),
                input: new.input.clone(),
                result: None,
                execution_id: None,
                providers_mode: new.providers_mode,
                error: None,
                created_at: created,
                updated_at: created,
            };
            let code = ItemBuilder::new(job_code_key(&run.job_code), "job_code")
                .s("run_id", run.run_id.to_string())
                .build();
            let writes = vec![
                Write::Put(run_item(&run, 1), Cond::absent()),
                Write::Put(code, Cond::absent()),
            ];
            match self.commit(writes).await? {
                Ok(()) => return Ok(run),
                Err(codes) if failed(&codes, 0) => {
                    return Err(StoreError::duplicate(format!("run {}", new.run_id)))
                }
                Err(_) => continue, // the job code is taken: draw another
            }
        }
        Err(StoreError::no_free_job_code(&new.project))
    }

    async fn get_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError> {
        Ok(self.fetch_run(run_id).await?.map(|r| r.value))
    }

    async fn find_run_by_job_code(&self, code: &JobCode) -> Result<Option<Run>, StoreError> {
        let Some(item) = self.get(job_code_key(code)).await? else {
            return Ok(None);
        };
        self.get_run(Fields(&item).parse("run_id")?).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, StoreError> {
        let limit = filter.page_size() as usize;
        let below = match filter.after {
            Some(after) => match self.fetch_run(after).await? {
                Some(cursor) => Some(run_order(cursor.value.created_at, after)),
                // Like the SQL adapters: a cursor that names no run ends the listing.
                None => {
                    return Ok(RunPage {
                        runs: Vec::new(),
                        next: None,
                    })
                }
            },
            None => None,
        };
        // The index is sharded: each partition's newest runs below the
        // cursor, then all of them newest first (the sort key orders runs
        // the same way in every partition).
        let (index, partitions) = match filter.status {
            Some(status) => (GSI2, run_status_partitions(status)),
            None => (GSI1, all_runs_partitions()),
        };
        let queries = partitions.into_iter().map(|pk| {
            let mut q = Self::index(index, pk, below.clone());
            q.forward = false;
            match &filter.project {
                Some(project) => {
                    q.filter = Some("#project = :project".into());
                    q.names.insert("#project".into(), "project".into());
                    q.values.insert(":project".into(), s(project.as_str()));
                }
                None => q.page_limit = Some(limit as i32 + 1),
            }
            self.query(q, Some(limit + 1))
        });
        let mut runs = Vec::new();
        for item in futures::future::try_join_all(queries)
            .await?
            .iter()
            .flatten()
        {
            runs.push((Fields(item).str(GSI1SK)?.to_owned(), run_from(item)?.value));
        }
        runs.sort_by(|a, b| b.0.cmp(&a.0));
        runs.truncate(limit + 1);
        let runs = runs.into_iter().map(|(_, run)| run).collect();
        Ok(RunPage::from_overfetched(runs, limit))
    }

    async fn transition_run(&self, change: Transition) -> Result<Run, StoreError> {
        change.check_legal()?;
        let Transition {
            run_id,
            from,
            to,
            error,
            result,
            artifact,
            ..
        } = change;
        let artifact_run = artifact.as_ref().map(|a| a.run_id);
        let outcome = self
            .update_run(
                run_id,
                |current| {
                    if current.status != from {
                        return Err(StoreError::Conflict {
                            expected: from,
                            actual: current.status,
                        });
                    }
                    let mut run = current.clone();
                    run.status = to;
                    run.error = error.clone().or(run.error);
                    run.result = result.clone().or(run.result);
                    Ok(run)
                },
                |run| match &artifact {
                    Some(a) => Self::artifact_writes(a.clone(), Some(run.run_id)).1,
                    None => Vec::new(),
                },
            )
            .await?;
        outcome
            .map_err(|_| StoreError::not_found(format!("run {}", artifact_run.unwrap_or(run_id))))
    }

    async fn set_run_result(&self, run_id: RunId, result: Value) -> Result<Run, StoreError> {
        self.set_run_field(run_id, |run| run.result = Some(result.clone()))
            .await
    }

    async fn set_execution_id(&self, run_id: RunId, execution_id: &str) -> Result<Run, StoreError> {
        self.set_run_field(run_id, |run| {
            run.execution_id = Some(execution_id.to_owned())
        })
        .await
    }
}

#[async_trait]
impl ArtifactStore for DynamoDbStore {
    async fn append_artifact(&self, new: NewArtifact) -> Result<Artifact, StoreError> {
        let run_id = new.run_id;
        let (artifact, writes) = Self::artifact_writes(new, None);
        match self.commit(writes).await? {
            Ok(()) => Ok(artifact),
            Err(codes) if failed(&codes, 1) => Err(StoreError::not_found(format!("run {run_id}"))),
            Err(_) => Err(StoreError::duplicate(format!("artifact {}", artifact.id))),
        }
    }

    async fn append_artifact_once(
        &self,
        new: NewArtifact,
        key: &str,
    ) -> Result<Option<Artifact>, StoreError> {
        let run_id = new.run_id;
        // The key's guard item sits in the run's partition, so pruning the
        // run removes it with the run.
        let guard =
            ItemBuilder::new((run_pk(run_id), format!("ARTKEY#{key}")), "artifact_key").build();
        let (artifact, mut writes) = Self::artifact_writes(new, None);
        writes.insert(0, Write::Put(guard, Cond::absent()));
        match self.commit(writes).await? {
            Ok(()) => Ok(Some(artifact)),
            Err(codes) if failed(&codes, 0) => Ok(None),
            Err(codes) if failed(&codes, 2) => Err(StoreError::not_found(format!("run {run_id}"))),
            Err(_) => Err(StoreError::duplicate(format!("artifact {}", artifact.id))),
        }
    }

    async fn list_artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, StoreError> {
        self.run_items(run_id, ARTIFACT_PREFIX, artifact_from).await
    }
}

#[async_trait]
impl WebhookEventStore for DynamoDbStore {
    async fn record_webhook_event(&self, new: NewWebhookEvent) -> Result<Recorded, StoreError> {
        // Providers retry: most duplicates are answered by one read.
        if let Some(existing) = self
            .stored_event(new.provider, &new.idempotency_key)
            .await?
        {
            return Ok(Recorded::Duplicate(existing));
        }
        let event = new.stored_at(now());
        let guard = ItemBuilder::new(
            idempotency_key(event.provider, &event.idempotency_key),
            "idempotency_key",
        )
        .s("event_id", event.id.to_string())
        .build();
        let mut writes = vec![
            Write::Put(guard, Cond::absent()),
            Write::Put(event_item(&event), Cond::absent()),
        ];
        if let Some(run_id) = event.run_id {
            writes.push(Write::Check(
                items::key((run_pk(run_id), RUN_SK.into())),
                Cond::exists(),
            ));
        }
        match self.commit(writes).await? {
            Ok(()) => Ok(Recorded::Inserted(event)),
            Err(codes) if failed(&codes, 0) => self
                .stored_event(event.provider, &event.idempotency_key)
                .await?
                .map(Recorded::Duplicate)
                .ok_or_else(|| {
                    StoreError::Refused(format!(
                        "{} event {} was recorded and deleted meanwhile",
                        event.provider, event.idempotency_key
                    ))
                }),
            Err(_) => Err(StoreError::not_found(format!(
                "run {}",
                event.run_id.unwrap_or_default()
            ))),
        }
    }

    async fn get_webhook_event(&self, id: Uuid) -> Result<Option<WebhookEvent>, StoreError> {
        self.get(event_key(id))
            .await?
            .map(|item| event_from(&item))
            .transpose()
    }

    async fn list_webhook_events(&self, run_id: RunId) -> Result<Vec<WebhookEvent>, StoreError> {
        self.query(Self::index(GSI1, events_of(Some(run_id)), None), None)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn finish_webhook_event(
        &self,
        id: Uuid,
        status: WebhookEventStatus,
        error: Option<&str>,
        run_id: Option<RunId>,
    ) -> Result<WebhookEvent, StoreError> {
        // First as the claim of an orphan by its run, then as a plain finish.
        let attempts: &[bool] = if run_id.is_some() {
            &[true, false]
        } else {
            &[false]
        };
        for &claim in attempts {
            let mut set = vec!["#status = :status", "#processed_at = :processed_at"];
            let mut names = HashMap::from([
                ("#pk".to_owned(), PK.to_owned()),
                ("#status".to_owned(), "status".to_owned()),
                ("#processed_at".to_owned(), "processed_at".to_owned()),
                ("#error".to_owned(), "error".to_owned()),
            ]);
            let mut values = HashMap::from([
                (":status".to_owned(), s(status.as_str())),
                (":processed_at".to_owned(), s(time(now()))),
            ]);
            let mut condition = "attribute_exists(#pk)".to_owned();
            if let Some(error) = error {
                set.push("#error = :error");
                values.insert(":error".into(), s(error));
            }
            if let (true, Some(run_id)) = (claim, run_id) {
                set.push("#run_id = :run_id");
                set.push("#gsi1pk = :gsi1pk");
                names.insert("#run_id".into(), "run_id".into());
                names.insert("#gsi1pk".into(), GSI1PK.into());
                values.insert(":run_id".into(), s(run_id.to_string()));
                values.insert(":gsi1pk".into(), s(events_of(Some(run_id))));
                condition.push_str(" AND attribute_not_exists(#run_id)");
            }
            let mut update = format!("SET {}", set.join(", "));
            if error.is_none() {
                update.push_str(" REMOVE #error");
            }
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(event_key(id))))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => return event_from(&out.attributes.unwrap_or_default()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(aws_error("UpdateItem", e)),
            }
        }
        Err(StoreError::not_found(format!("webhook event {id}")))
    }

    async fn adopt_orphaned_webhook_events(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        // The job's events, as the index has them (in order of arrival).
        // Its copy of their status may lag, so each is moved on condition
        // that the event item itself is still orphaned: one of concurrent
        // adoptions moves it, the others skip it.
        let candidates = self
            .query(
                Self::index(GSI2, job_events_pk(provider, job_id), None),
                None,
            )
            .await?;
        let mut adopted = Vec::new();
        for candidate in &candidates {
            let id = Fields(candidate).uuid("id")?;
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(event_key(id))))
                .update_expression("SET #status = :received REMOVE #processed_at, #error")
                .condition_expression("#status = :orphaned")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#processed_at", "processed_at")
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":received", s(WebhookEventStatus::Received.as_str()))
                .expression_attribute_values(":orphaned", s(WebhookEventStatus::Orphaned.as_str()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => adopted.push(event_from(&out.attributes.unwrap_or_default())?),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(aws_error("UpdateItem", e)),
            }
        }
        Ok(adopted)
    }
}

#[async_trait]
impl ProviderJobStore for DynamoDbStore {
    async fn register_provider_job(
        &self,
        mut new: NewProviderJob,
    ) -> Result<ProviderJob, StoreError> {
        new.check_at = truncate(new.check_at);
        let job = new.registered_at(now());
        let writes = vec![
            Write::Put(job_lookup_item(&job), Cond::absent()),
            Write::Put(job_item(&job, 1), Cond::absent()),
            Write::Check(
                items::key((run_pk(job.run_id), RUN_SK.into())),
                Cond::exists(),
            ),
        ];
        match self.commit(writes).await? {
            Ok(()) => Ok(job),
            Err(codes) if failed(&codes, 0) || failed(&codes, 1) => Err(StoreError::duplicate(
                format!("{} job {}", job.provider, job.job_id),
            )),
            Err(_) => Err(StoreError::not_found(format!("run {}", job.run_id))),
        }
    }

    async fn find_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Option<ProviderJob>, StoreError> {
        Ok(self.fetch_job(provider, job_id).await?.map(|j| j.value))
    }

    async fn settle_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        by: SettledBy,
    ) -> Result<Settled, StoreError> {
        let (status, result, error) = outcome.into_parts();
        for _ in 0..CAS_ATTEMPTS {
            let current = self.require_job(provider, job_id).await?;
            if current.value.status != JobStatus::Pending {
                return Ok(Settled::Already(current.value));
            }
            let job = ProviderJob {
                status,
                result: result.clone(),
                error: error.clone(),
                settled_at: Some(now()),
                settled_by: Some(by),
                next_check_at: None,
                ..current.value
            };
            let mut writes = Self::job_writes(&job, current.version);
            if let Some(a) = &artifact {
                writes.extend(Self::artifact_writes(a.clone(), Some(job.run_id)).1);
            }
            match self.commit(writes).await? {
                Ok(()) => return Ok(Settled::Now(job)),
                Err(codes) if failed(&codes, 0) => continue,
                Err(_) => {
                    let run = artifact.as_ref().map_or(job.run_id, |a| a.run_id);
                    return Err(StoreError::not_found(format!("run {run}")));
                }
            }
        }
        Err(StoreError::Refused(format!(
            "{provider} job {job_id} changed {CAS_ATTEMPTS} times while it was settled"
        )))
    }

    async fn list_provider_jobs(&self, run_id: RunId) -> Result<Vec<ProviderJob>, StoreError> {
        let mut jobs = self
            .run_items(run_id, JOB_PREFIX, |item| job_from(item).map(|j| j.value))
            .await?;
        jobs.sort_by(|a, b| (a.created_at, &a.job_id).cmp(&(b.created_at, &b.job_id)));
        Ok(jobs)
    }

    async fn rebind_persona_jobs(
        &self,
        run_id: RunId,
        persona: Persona,
        task_token: &str,
    ) -> Result<u32, StoreError> {
        let mut changed = 0;
        for job in self.list_provider_jobs(run_id).await? {
            if job.persona != persona
                || job.status == JobStatus::Failed
                || job.task_token.as_deref() == Some(task_token)
            {
                continue;
            }
            for _ in 0..CAS_ATTEMPTS {
                let Some(current) = self.fetch_job(job.provider, &job.job_id).await? else {
                    break; // pruned meanwhile
                };
                let rebound = ProviderJob {
                    task_token: Some(task_token.to_owned()),
                    ..current.value
                };
                match self
                    .commit(Self::job_writes(&rebound, current.version))
                    .await?
                {
                    Ok(()) => {
                        changed += 1;
                        break;
                    }
                    Err(codes) if failed(&codes, 0) => continue,
                    Err(_) => break,
                }
            }
        }
        Ok(changed)
    }

    async fn claim_due_provider_jobs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ProviderJob>, StoreError> {
        let (now, lease_until) = (truncate(now), truncate(lease_until));
        let limit = limit as usize;
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Each shard's jobs due by `now` (sort keys below the next
        // microsecond's), earliest first; then all of them in that order.
        let after_now = time(now + chrono::TimeDelta::microseconds(1));
        let shards = (0..DUE_SHARDS).map(|shard| {
            let mut q = Self::index(GSI2, due_shard_pk(shard), Some(after_now.clone()));
            q.page_limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
            self.query(q, Some(limit))
        });
        let mut due = Vec::new();
        for item in futures::future::try_join_all(shards)
            .await?
            .iter()
            .flatten()
        {
            due.push((Fields(item).str(GSI2SK)?.to_owned(), due_job_key(item)?));
        }
        due.sort();
        let mut claimed = Vec::new();
        for (_, key) in due {
            if claimed.len() == limit {
                break;
            }
            // The index may lag: the job is read again by key, and claimed
            // only if it is still pending and due, on condition that it has
            // not changed since (its version).
            let Some(current) = self.get(key).await?.map(|i| job_from(&i)).transpose()? else {
                continue;
            };
            let still_due = current.value.status == JobStatus::Pending
                && current.value.next_check_at.is_some_and(|at| at <= now);
            if !still_due {
                continue;
            }
            let job = ProviderJob {
                checks: current.value.checks.saturating_add(1),
                next_check_at: Some(lease_until),
                ..current.value
            };
            // A lost race (another claim, a settlement) skips the job.
            if self
                .commit(Self::job_writes(&job, current.version))
                .await?
                .is_ok()
            {
                claimed.push(job);
            }
        }
        Ok(claimed)
    }

    async fn schedule_provider_job_check(
        &self,
        provider: Provider,
        job_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = truncate(at);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.require_job(provider, job_id).await?;
            if current.value.status != JobStatus::Pending {
                return Ok(false);
            }
            let job = ProviderJob {
                next_check_at: Some(at),
                ..current.value
            };
            match self.commit(Self::job_writes(&job, current.version)).await? {
                Ok(()) => return Ok(true),
                Err(codes) if failed(&codes, 0) => continue,
                // The lookup item is gone: the job was pruned meanwhile.
                Err(_) => break,
            }
        }
        if self.fetch_job(provider, job_id).await?.is_none() {
            return Err(StoreError::not_found(format!("{provider} job {job_id}")));
        }
        Err(StoreError::Refused(format!(
            "{provider} job {job_id} changed {CAS_ATTEMPTS} times while its check was scheduled"
        )))
    }
}

#[async_trait]
impl GateStore for DynamoDbStore {
    async fn record_hitl_request(&self, new: NewHitlRequest) -> Result<HitlRequest, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (request, version, cond) = match self.fetch_gate(new.run_id, &new.gate).await? {
                Some(current) if current.value.decision.is_some() => {
                    return Err(StoreError::Refused(format!(
                        "gate {} of run {} is already decided",
                        new.gate, new.run_id
                    )))
                }
                Some(current) => (
                    HitlRequest {
                        task_token: new.task_token.clone(),
                        ..current.value
                    },
                    current.version + 1,
                    Cond::version(current.version),
                ),
                None => (
                    HitlRequest {
                        run_id: new.run_id,
                        gate: new.gate.clone(),
                        task_token: new.task_token.clone(),
                        requested_at: now(),
                        decision: None,
                        decided_by: None,
                        comment: None,
                        decided_at: None,
                        delivered_at: None,
                    },
                    1,
                    Cond::absent(),
                ),
            };
            // The run is read after the gate: whatever it is, the write
            // below holds only while both are still as read.
            let run = self.require_run(new.run_id).await?;
            let mut writes = vec![Write::Put(gate_item(&request, version), cond)];
            if run.value.status == RunStatus::Running {
                let waiting = Run {
                    status: RunStatus::AwaitingApproval,
                    updated_at: now(),
                    ..run.value.clone()
                };
                writes.push(Write::Put(
                    run_item(&waiting, run.version + 1),
                    Cond::version(run.version),
                ));
            } else {
                writes.push(Write::Check(
                    items::key((run_pk(new.run_id), RUN_SK.into())),
                    Cond::version(run.version),
                ));
            }
            if let Some(artifact) = &new.artifact {
                writes.extend(Self::artifact_writes(artifact.clone(), Some(new.run_id)).1);
            }
            if self.commit(writes).await?.is_ok() {
                return Ok(request);
            }
        }
        Err(StoreError::Refused(format!(
            "gate {} of run {} changed {CAS_ATTEMPTS} times while it was recorded",
            new.gate, new.run_id
        )))
    }

    async fn decide_hitl(
        &self,
        run_id: RunId,
        gate: &Gate,
        decision: Decision,
    ) -> Result<Decided, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.require_gate(run_id, gate).await?;
            if current.value.decision.is_some() {
                return Ok(Decided::Already(current.value));
            }
            let decided = HitlRequest {
                decision: Some(decision.decision),
                decided_by: Some(decision.decided_by.clone()),
                comment: decision.comment.clone(),
                decided_at: Some(now()),
                ..current.value
            };
            if self.put_gate(&decided, current.version).await? {
                return Ok(Decided::Now(decided));
            }
        }
        Err(StoreError::Refused(format!(
            "gate {gate} of run {run_id} changed {CAS_ATTEMPTS} times while it was decided"
        )))
    }

    async fn list_hitl_requests(&self, run_id: RunId) -> Result<Vec<HitlRequest>, StoreError> {
        let mut requests = self
            .run_items(run_id, GATE_PREFIX, |item| gate_from(item).map(|g| g.value))
            .await?;
        requests.sort_by(|a, b| {
            (a.requested_at, a.gate.as_str()).cmp(&(b.requested_at, b.gate.as_str()))
        });
        Ok(requests)
    }

    async fn mark_hitl_delivered(&self, run_id: RunId, gate: &Gate) -> Result<(), StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.require_gate(run_id, gate).await?;
            if current.value.decision.is_none() {
                return Err(StoreError::Refused(format!(
                    "gate {gate} of run {run_id} is not decided"
                )));
            }
            if current.value.delivered_at.is_some() {
                return Ok(());
            }
            let delivered = HitlRequest {
                delivered_at: Some(now()),
                ..current.value
            };
            if self.put_gate(&delivered, current.version).await? {
                return Ok(());
            }
        }
        Err(StoreError::Refused(format!(
            "gate {gate} of run {run_id} changed {CAS_ATTEMPTS} times while its delivery was noted"
        )))
    }

    async fn undelivered_hitl_decisions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HitlRequest>, StoreError> {
        let q = Self::index(GSI1, UNDELIVERED_DECISIONS.into(), Some(time(before)));
        let mut found = Vec::new();
        for item in self.query(q, Some(limit)).await? {
            // The index may lag: read the gate itself, and keep it only if
            // it is still undelivered.
            let f = Fields(&item);
            let (run_id, gate): (RunId, Gate) = (f.parse("run_id")?, f.parse("gate")?);
            if let Some(current) = self.fetch_gate(run_id, &gate).await? {
                if current.value.decision.is_some() && current.value.delivered_at.is_none() {
                    found.push(current.value);
                }
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl ConversationStore for DynamoDbStore {
    async fn append_conversation(
        &self,
        user_id: &str,
        messages: Vec<(ChatRole, String, Vec<RunId>)>,
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let count = messages.len() as i64;
        let reserved = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key((conversation_pk(user_id), SEQ_SK.into()))))
            .update_expression("ADD #last :count SET #entity = :entity")
            .expression_attribute_names("#last", "last")
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":entity", s("conversation_counter"))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| aws_error("UpdateItem", e))?;
        let last = Fields(&reserved.attributes.unwrap_or_default()).int("last")?;
        let writes: Vec<Write> = messages
            .into_iter()
            .zip(last - count + 1..)
            .map(|((role, content, run_ids), seq)| {
                let message = ChatMessage {
                    role,
                    content,
                    run_ids,
                    created_at: now(),
                };
                Write::Put(message_item(user_id, seq, &message), Cond::absent())
            })
            .collect();
        for chunk in writes.chunks(TRANSACTION_MAX) {
            if self.commit(chunk.to_vec()).await?.is_err() {
                return Err(StoreError::duplicate(format!(
                    "a message of {user_id}'s conversation at a reserved position"
                )));
            }
        }
        Ok(())
    }

    async fn conversation(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = Self::partition(conversation_pk(user_id), MESSAGE_PREFIX);
        q.forward = false;
        q.page_limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let mut messages = self
            .query(q, Some(limit as usize))
            .await?
            .iter()
            .map(message_from)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }
}

#[async_trait]
impl SpanStore for DynamoDbStore {
    async fn record_span(&self, span: Span) -> Result<Span, StoreError> {
        let span = truncate_span(span);
        match self
            .commit(vec![Write::Put(span_item(&span), Cond::absent())])
            .await?
        {
            Ok(()) => Ok(span),
            Err(_) => Err(StoreError::duplicate(format!(
                "span {} of trace {}",
                span.span_id, span.trace_id
            ))),
        }
    }

    async fn close_span(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
        mut end: SpanEnd,
    ) -> Result<Span, StoreError> {
        end.end_time = truncate(end.end_time);
        let read = || async {
            self.get(span_key(trace_id, span_id))
                .await?
                .map(|item| span_from(&item))
                .transpose()?
                .ok_or_else(|| StoreError::not_found(format!("span {span_id} of trace {trace_id}")))
        };
        let span = read().await?;
        if !span.is_open() || end.status == SpanStatus::Open {
            return Ok(span);
        }
        let closed = span.closed(end);
        // Put on condition it is still open: the first close wins, a later
        // one reads back what the first wrote.
        let mut still_open = Cond::named("#status = :open", &[("#status", "status")]);
        still_open.values = Some(HashMap::from([(
            ":open".into(),
            s(SpanStatus::Open.as_str()),
        )]));
        match self
            .commit(vec![Write::Put(span_item(&closed), still_open)])
            .await?
        {
            Ok(()) => Ok(closed),
            Err(_) => read().await,
        }
    }

    async fn list_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        let (pk, _) = span_key(trace_id, SpanId::derived(""));
        let mut spans = self
            .query(Self::partition(pk, SPAN_PREFIX), None)
            .await?
            .iter()
            .map(span_from)
            .collect::<Result<Vec<_>, _>>()?;
        spans.sort_by(|a, b| {
            (a.start_time, a.span_id.to_string()).cmp(&(b.start_time, b.span_id.to_string()))
        });
        Ok(spans)
    }
}
