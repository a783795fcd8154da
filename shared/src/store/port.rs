//! The `Store` port, one trait per aggregate so a reader sees its shape:
//! runs, artifacts, webhook events, provider jobs, gates, conversations and
//! spans, and `Maintenance` for the record as a whole. `Store` is all of
//! them, and `Arc<dyn Store>` the handle the rest of the crate holds (a
//! trait object answers its supertraits' methods; code that holds an adapter
//! itself imports `store::prelude`). Times are assigned by the store; ids by
//! the caller.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Decided, Decision, JobOutcome, PruneReport, Recorded, RunFilter, RunPage, Settled,
    SettledForEvent, StoreError, Transition,
};
use crate::domain::{
    Artifact, ChatMessage, ChatRole, Gate, HitlRequest, JobCode, NewArtifact, NewHitlRequest,
    NewProviderJob, NewRun, NewSpan, NewWebhookEvent, Persona, Provider, ProviderJob, Run, RunId,
    RunLabels, SettledBy, Span, SpanEnd, SpanId, TraceId, WebhookEvent, WebhookEventStatus,
};

// Each adapter's `impl` restates these signatures, as a trait's
// implementations must; declarations of like shape (a key in, a record out)
// are each their own aggregate's operation.

/// What concerns the record as a whole: which backend holds it, its schema,
/// and pruning what is old.
#[async_trait]
pub trait Maintenance: Send + Sync + std::fmt::Debug {
    /// `sqlite`, `postgres` or `dynamodb`: for messages and `mw doctor`.
    fn backend(&self) -> &'static str;
    /// Applies the embedded migrations that are not applied yet (DynamoDB:
    /// creates the table if it is absent and waits until it is ACTIVE).
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Deletes finished runs last updated before `cutoff` (with everything
    /// recorded for them) and orphan webhook events received before it.
    /// Runs that are still live are never pruned.
    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, StoreError>;
}

/// Runs: created `pending` with a unique job code, read, listed, and moved
/// through their statuses by compare-and-set.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a `pending` run with a fresh unique job code.
    async fn create_run(&self, run: NewRun) -> Result<Run, StoreError>;
    async fn get_run(&self, run_id: RunId) -> Result<Option<Run>, StoreError>;
    /// The run's labels, for the span its work is logged in: all a
    /// callback's path needs of its run. SQLite reads them without the
    /// run's input and result; the others read the whole run.
    async fn get_run_labels(&self, run_id: RunId) -> Result<Option<RunLabels>, StoreError> {
        Ok(self.get_run(run_id).await?.as_ref().map(Run::labels))
    }
    async fn find_run_by_job_code(&self, code: &JobCode) -> Result<Option<Run>, StoreError>;
    async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, StoreError>;
    /// Compare-and-set: succeeds only if the run is still in `from`.
    async fn transition_run(&self, change: Transition) -> Result<Run, StoreError>;
    async fn set_run_result(&self, run_id: RunId, result: Value) -> Result<Run, StoreError>;
    async fn set_execution_id(&self, run_id: RunId, execution_id: &str) -> Result<Run, StoreError>;
}

/// Artifacts: the facts a run leaves, appended, never changed.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    async fn append_artifact(&self, artifact: NewArtifact) -> Result<Artifact, StoreError>;
    /// Appends `artifact` unless the run already has one recorded under
    /// `key`: a fact that several paths may report, each more than once (a
    /// platform's publishing result, from its webhook and from the
    /// reconciler's poll), is recorded once. Answers the artifact, or `None`
    /// when one was recorded under the key before.
    async fn append_artifact_once(
        &self,
        artifact: NewArtifact,
        key: &str,
    ) -> Result<Option<Artifact>, StoreError>;
    /// Oldest first.
    async fn list_artifacts(&self, run_id: RunId) -> Result<Vec<Artifact>, StoreError>;
    /// The run's artifacts of the given types, oldest first: what a step
    /// looks up without reading the whole record (a run holds dozens).
    async fn list_artifacts_of(
        &self,
        run_id: RunId,
        types: &[&str],
    ) -> Result<Vec<Artifact>, StoreError> {
        Ok(self
            .list_artifacts(run_id)
            .await?
            .into_iter()
            .filter(|a| types.contains(&a.artifact_type.as_str()))
            .collect())
    }
}

/// Webhook events: provider callbacks, recorded once per provider and
/// idempotency key, and what handling them came to.
#[async_trait]
pub trait WebhookEventStore: Maintenance {
    /// Idempotent on `(provider, idempotency_key)`.
    async fn record_webhook_event(&self, event: NewWebhookEvent) -> Result<Recorded, StoreError>;
    async fn get_webhook_event(&self, id: Uuid) -> Result<Option<WebhookEvent>, StoreError>;
    /// A webhook event's status and arrival: whether its callback is still
    /// owed handling. SQLite reads them without the event's headers and
    /// payload; the others read the whole event.
    async fn get_webhook_event_status(
        &self,
        id: Uuid,
    ) -> Result<Option<(WebhookEventStatus, DateTime<Utc>)>, StoreError> {
        Ok(self
            .get_webhook_event(id)
            .await?
            .map(|event| (event.status, event.created_at)))
    }
    /// Oldest first.
    async fn list_webhook_events(&self, run_id: RunId) -> Result<Vec<WebhookEvent>, StoreError>;
    /// Every event still `received` (stored, not yet processed), oldest
    /// first: what a restarted local stack owes the callbacks consumer. Only
    /// the SQL stores, the ones the local engine runs on, list them.
    async fn received_webhook_events(&self) -> Result<Vec<WebhookEvent>, StoreError> {
        Err(StoreError::Unsupported(format!(
            "the {} store does not list webhook events by status",
            self.backend()
        )))
    }
    /// Records how processing ended; `run_id` fills in the event's run when
    /// it was not known on arrival (a callback faster than its job's
    /// registration).
    async fn finish_webhook_event(
        &self,
        id: Uuid,
        status: WebhookEventStatus,
        error: Option<&str>,
        run_id: Option<RunId>,
    ) -> Result<WebhookEvent, StoreError>;
    /// The `orphaned` webhook events of `provider` whose `provider_job_id`
    /// is `job_id` (callbacks that came before their job was registered),
    /// moved back to `received` (`processed_at` and `error` cleared) so that
    /// they are handled now that the job exists; oldest first. Each moves
    /// once, compare-and-set on its status: of concurrent calls, one returns
    /// it. Events of other jobs, or in another status, are left alone.
    async fn adopt_orphaned_webhook_events(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Vec<WebhookEvent>, StoreError>;
}

/// Provider jobs: work submitted to a provider, registered with the task it
/// completes, settled once, and checked on by the reconciler.
#[async_trait]
pub trait ProviderJobStore: Send + Sync {
    /// Fails with `Duplicate` if the provider already has a job with that id.
    async fn register_provider_job(&self, job: NewProviderJob) -> Result<ProviderJob, StoreError>;
    async fn find_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Option<ProviderJob>, StoreError>;
    /// Settles a pending job once, writing `artifact` (its result) in the
    /// same transaction, recording `by` (`settled_by`) and clearing
    /// `next_check_at` in the same write; later calls answer `Already` and
    /// write nothing.
    async fn settle_provider_job(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        by: SettledBy,
    ) -> Result<Settled, StoreError>;
    /// Settles a job for the callback whose webhook event is `event`, as
    /// `settle_provider_job` does (`SettledBy::Callback`). When the job settles now and its task
    /// still has other jobs pending, nothing more is owed for the callback:
    /// the event is finished too (`processed`, with the job's run) in the
    /// same write, and `event_finished` says so. SQLite, whose writes are
    /// serialized, also finishes it while the persona's agent has not ended
    /// (no `persona.completed` of the job's persona): the worker records
    /// that after this write and completes the task itself. Otherwise (the
    /// task's last job, a job of no task, one settled before) the event is
    /// left `received` for the caller, who finishes it once the task is
    /// completed, so that a process stopping in between leaves the callback
    /// owed. By default (DynamoDB) the event is always left to the caller.
    async fn settle_provider_job_for_event(
        &self,
        provider: Provider,
        job_id: &str,
        outcome: JobOutcome,
        artifact: Option<NewArtifact>,
        _event: Uuid,
    ) -> Result<SettledForEvent, StoreError> {
        let settled = self
            .settle_provider_job(provider, job_id, outcome, artifact, SettledBy::Callback)
            .await?;
        Ok(SettledForEvent {
            settled,
            event_finished: false,
        })
    }
    async fn list_provider_jobs(&self, run_id: RunId) -> Result<Vec<ProviderJob>, StoreError>;
    /// The jobs the task `task_token` submitted, in the order
    /// `list_provider_jobs` gives: whether a persona is done, and what its
    /// output is made of. The SQL stores read them alone (the
    /// `provider_jobs_by_task` index); DynamoDB reads every job of the run.
    async fn list_task_jobs(
        &self,
        run_id: RunId,
        task_token: &str,
    ) -> Result<Vec<ProviderJob>, StoreError> {
        let mut jobs = self.list_provider_jobs(run_id).await?;
        jobs.retain(|j| j.task_token.as_deref() == Some(task_token));
        Ok(jobs)
    }
    /// Binds every job of `persona` in the run to `task_token`, pending or
    /// succeeded: a persona step the state machine tries again (or a
    /// redrive continues) runs under a new token, and the jobs an earlier
    /// attempt submitted (which the retry does not submit again) are then
    /// what completes it. Failed jobs stay where they are: the step submits
    /// their work again rather than fail on them once more. Answers how many
    /// jobs changed.
    async fn rebind_persona_jobs(
        &self,
        run_id: RunId,
        persona: Persona,
        task_token: &str,
    ) -> Result<u32, StoreError>;
    /// Claims up to `limit` pending jobs due by `now` (`next_check_at <=
    /// now`), earliest due first, for a reconciler to ask their providers
    /// about: each claimed job's `checks` goes up by one and its
    /// `next_check_at` becomes `lease_until`, compare-and-set per job, so no
    /// concurrent reconciler claims it again before the lease ends (and one
    /// that crashes leaves it due again then). Returns the claimed jobs as
    /// written, task token included. Settled jobs are never due.
    async fn claim_due_provider_jobs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ProviderJob>, StoreError>;
    /// Sets when a pending job is next due (`next_check_at`): after a
    /// reconciler's check, or to ask sooner. Answers whether it did: a
    /// settled job is left alone (false). An unknown job is `NotFound`.
    async fn schedule_provider_job_check(
        &self,
        provider: Provider,
        job_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Gates: a run's HITL requests, decided once, and the delivery of each
/// decision to the engine.
#[async_trait]
pub trait GateStore: Send + Sync {
    /// Records that the run waits at `gate`, in one write: the request, its
    /// artifact, and a `running` run's move to `awaiting_approval` — so a
    /// decision made the moment the request can be seen finds the run
    /// waiting. Asking again while undecided refreshes the task token (and
    /// stores the artifact again); asking after a decision is `Refused` and
    /// changes nothing.
    async fn record_hitl_request(&self, request: NewHitlRequest)
        -> Result<HitlRequest, StoreError>;
    /// Decides an undecided gate once; later calls answer `Already`.
    async fn decide_hitl(
        &self,
        run_id: RunId,
        gate: &Gate,
        decision: Decision,
    ) -> Result<Decided, StoreError>;
    async fn list_hitl_requests(&self, run_id: RunId) -> Result<Vec<HitlRequest>, StoreError>;
    /// Notes that the engine took the decision of `gate` (its task
    /// completed, or had completed before). Idempotent; a gate not decided
    /// is `Refused`.
    async fn mark_hitl_delivered(&self, run_id: RunId, gate: &Gate) -> Result<(), StoreError>;
    /// Decisions made before `before` whose delivery to the engine is not
    /// confirmed, oldest first, at most `limit`: a process stopped, or the
    /// engine call failed, between storing the decision and completing the
    /// task. They are sent again until the engine confirms them.
    async fn undelivered_hitl_decisions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HitlRequest>, StoreError>;
}

/// Brendan's conversations, one per user.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Appends messages to `user_id`'s conversation, in order.
    async fn append_conversation(
        &self,
        user_id: &str,
        messages: Vec<(ChatRole, String, Vec<RunId>)>,
    ) -> Result<(), StoreError>;
    /// The last `limit` messages of `user_id`'s conversation, oldest first.
    async fn conversation(&self, user_id: &str, limit: u32)
        -> Result<Vec<ChatMessage>, StoreError>;
}

/// Spans: the run trees, written as they open and again as they close.
#[async_trait]
pub trait SpanStore: Send + Sync {
    /// Records a span whole, open or already closed (a call that ended
    /// before its span was written goes in one write, not two), and returns
    /// it as stored (times kept to whole microseconds); a span already
    /// recorded under the same trace and span id is a `Duplicate`.
    async fn record_span(&self, span: Span) -> Result<Span, StoreError>;
    /// Records a span as it opens (`record_span` of it, open).
    async fn open_span(&self, new: NewSpan) -> Result<Span, StoreError> {
        self.record_span(Span::opened(new)).await
    }
    /// Closes an open span once and returns it; closing it again changes
    /// nothing and returns the span as first closed. An unknown span is
    /// `NotFound`.
    async fn close_span(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
        end: SpanEnd,
    ) -> Result<Span, StoreError>;
    /// The spans of a trace (a run's: `TraceId::of_run`), by start time.
    async fn list_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError>;
    /// The spans of a trace still open, by start time: what closing a run's
    /// tree needs, without reading every finished span's input and output.
    async fn list_open_spans(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        let mut spans = self.list_spans(trace_id).await?;
        spans.retain(Span::is_open);
        Ok(spans)
    }
}

/// The whole store port: every aggregate's trait. Each adapter implements
/// them all and is a `Store` by the blanket implementation below.
pub trait Store:
    Maintenance
    + RunStore
    + ArtifactStore
    + WebhookEventStore
    + ProviderJobStore
    + GateStore
    + ConversationStore
    + SpanStore
{
}

impl<T> Store for T where
    T: Maintenance
        + RunStore
        + ArtifactStore
        + WebhookEventStore
        + ProviderJobStore
        + GateStore
        + ConversationStore
        + SpanStore
{
}
