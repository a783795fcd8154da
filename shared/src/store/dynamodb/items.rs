//! The single-table item layout: the key of every kind of item, and the
//! conversion of domain values to and from items. The layout itself is
//! documented in the module doc of `store::dynamodb`.
//!
//! Values are stored as strings: JSON documents as their text (so numbers and
//! key order come back exactly as written), times as RFC 3339 with
//! microseconds and `Z` (fixed width, so they sort as text). An attribute that
//! is `None` is absent from the item.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{
    Artifact, ChatMessage, Gate, HitlRequest, JobCode, JobStatus, ParseError, Provider,
    ProviderJob, Run, RunId, RunStatus, Span, SpanId, TraceId, WebhookEvent,
};
use crate::store::check_count;
use crate::store::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
pub(super) const GSI1: &str = "gsi1";
pub(super) const GSI1PK: &str = "gsi1pk";
pub(super) const GSI1SK: &str = "gsi1sk";
pub(super) const GSI2: &str = "gsi2";
pub(super) const GSI2PK: &str = "gsi2pk";
pub(super) const GSI2SK: &str = "gsi2sk";
/// The optimistic-concurrency counter of items that change in place.
pub(super) const VERSION: &str = "version";

/// How many index partitions the runs are spread over in each run index
/// (`all_runs_pk`, `run_status_pk`): every change of a run rewrites its
/// index entries, and in one partition all runs' writes would meet (with
/// ever-increasing sort keys). Reads query every shard and merge.
pub(super) const RUN_SHARDS: u8 = 8;
/// `gsi1pk` of every run before the run indexes were sharded; `RUNS#<status>`
/// was its `gsi2pk`. The runs that have not changed since are still there,
/// so reads query these partitions too.
const UNSHARDED_RUNS: &str = "RUNS";
/// `gsi1pk` of the webhook events no run claims yet.
pub(super) const ORPHAN_EVENTS: &str = "EVENTS#ORPHAN";
/// `gsi2pk` of every conversation message: what `prune` ages out.
pub(super) const ALL_MESSAGES: &str = "MESSAGES";
/// How many index partitions the due provider jobs are spread over
/// (`due_jobs_pk`), so that no one partition takes every job's writes.
pub(super) const DUE_SHARDS: u8 = 8;

pub(super) const RUN_SK: &str = "RUN";
pub(super) const ARTIFACT_PREFIX: &str = "ART#";
pub(super) const JOB_PREFIX: &str = "JOB#";
pub(super) const GATE_PREFIX: &str = "GATE#";
pub(super) const MESSAGE_PREFIX: &str = "MSG#";
pub(super) const SEQ_SK: &str = "SEQ";
pub(super) const SPAN_PREFIX: &str = "SPAN#";
/// How long the spans of a chat turn that started no run are kept (the
/// table's TTL removes them; a run's spans go when the run is pruned).
pub(super) const LONE_SPAN_DAYS: i64 = 30;

/// A time as the store keeps it: sortable text, microseconds.
pub(super) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn run_pk(id: RunId) -> String {
    format!("RUN#{id}")
}

/// The shard of a run in the run indexes: a hash of its id, the same every
/// time, so a run's index entries stay in one partition as it changes.
pub(super) fn run_shard(id: RunId) -> u8 {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.to_string().as_bytes())[0] % RUN_SHARDS
}

/// `gsi1pk` of the runs of shard `shard`: the newest-first listing of all
/// runs is these partitions merged.
pub(super) fn all_runs_pk(shard: u8) -> String {
    format!("ALLRUNS#{shard}")
}

/// `gsi2pk` of the runs in `status` of shard `shard`.
pub(super) fn run_status_pk(status: RunStatus, shard: u8) -> String {
    format!("RUNS#{status}#{shard}")
}

/// The `gsi1pk` partitions holding all runs: every shard's, and the one
/// runs were written to before sharding.
pub(super) fn all_runs_partitions() -> Vec<String> {
    (0..RUN_SHARDS)
        .map(all_runs_pk)
        .chain([UNSHARDED_RUNS.to_owned()])
        .collect()
}

/// The `gsi2pk` partitions holding the runs in `status`: every shard's,
/// and the one runs were written to before sharding.
pub(super) fn run_status_partitions(status: RunStatus) -> Vec<String> {
    (0..RUN_SHARDS)
        .map(|shard| run_status_pk(status, shard))
        .chain([format!("{UNSHARDED_RUNS}#{status}")])
        .collect()
}

/// The sort key of a run in both run indexes: newest first when read
/// backwards, ties broken by id as the SQL adapters do.
pub(super) fn run_order(created_at: DateTime<Utc>, id: RunId) -> String {
    format!("{}#{id}", time(created_at))
}

pub(super) fn job_code_key(code: &JobCode) -> (String, String) {
    (format!("JOBCODE#{code}"), "JOBCODE".into())
}

pub(super) fn artifact_sk(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{ARTIFACT_PREFIX}{}#{id}", time(created_at))
}

pub(super) fn event_key(id: Uuid) -> (String, String) {
    (format!("EVENT#{id}"), "EVENT".into())
}

pub(super) fn events_of(run_id: Option<RunId>) -> String {
    match run_id {
        Some(id) => format!("EVENTS#{id}"),
        None => ORPHAN_EVENTS.into(),
    }
}

pub(super) fn idempotency_key(provider: Provider, key: &str) -> (String, String) {
    (format!("WHKEY#{provider}#{key}"), "WHKEY".into())
}

/// The lookup item that makes `(provider, job_id)` unique and names the run.
pub(super) fn job_lookup_key(provider: Provider, job_id: &str) -> (String, String) {
    (format!("JOB#{provider}#{job_id}"), "JOB".into())
}

/// `gsi2pk` of the lookup item of a pending job: one of `DUE_SHARDS`
/// partitions, the same for the job every time (a hash of its provider and
/// id, stable across processes and versions).
pub(super) fn due_jobs_pk(provider: Provider, job_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{provider}#{job_id}").as_bytes());
    due_shard_pk(digest[0] % DUE_SHARDS)
}

/// `gsi2pk` of the due jobs of shard `shard` (`0..DUE_SHARDS`).
pub(super) fn due_shard_pk(shard: u8) -> String {
    format!("DUEJOBS#{shard}")
}

/// `gsi2sk` of a pending job's lookup item: due time first, so a shard's
/// jobs due by a time are one key range, earliest first.
pub(super) fn due_order(at: DateTime<Utc>, provider: Provider, job_id: &str) -> String {
    format!("{}#{provider}#{job_id}", time(at))
}

/// `gsi2pk` of the webhook events that name a provider job: the callbacks
/// of that job.
pub(super) fn job_events_pk(provider: Provider, job_id: &str) -> String {
    format!("JOBEVENTS#{provider}#{job_id}")
}

/// The job itself, in its run's partition.
pub(super) fn job_key(run_id: RunId, provider: Provider, job_id: &str) -> (String, String) {
    (run_pk(run_id), format!("{JOB_PREFIX}{provider}#{job_id}"))
}

pub(super) fn gate_key(run_id: RunId, gate: &Gate) -> (String, String) {
    (run_pk(run_id), format!("{GATE_PREFIX}{gate}"))
}

/// A span, in its trace's partition: a run's trace id is its run id, so a
/// run's spans sit in the run's partition and go when the run is pruned.
pub(super) fn span_key(trace_id: TraceId, span_id: SpanId) -> (String, String) {
    (
        format!("RUN#{}", trace_id.as_uuid().hyphenated()),
        format!("{SPAN_PREFIX}{span_id}"),
    )
}

pub(super) fn conversation_pk(user_id: &str) -> String {
    format!("CONV#{user_id}")
}

pub(super) fn message_sk(seq: i64) -> String {
    format!("{MESSAGE_PREFIX}{seq:020}")
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn key((pk, sk): (String, String)) -> Item {
    HashMap::from([(PK.into(), s(pk)), (SK.into(), s(sk))])
}

/// Builds an item attribute by attribute; `None` leaves the attribute out.
#[derive(Debug, Default)]
pub(super) struct ItemBuilder(Item);

impl ItemBuilder {
    pub(super) fn new((pk, sk): (String, String), entity: &str) -> Self {
        Self(Item::new()).s(PK, pk).s(SK, sk).s("entity", entity)
    }

    pub(super) fn s(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), s(value));
        self
    }

    pub(super) fn opt_s(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.s(name, v),
            None => self,
        }
    }

    pub(super) fn n(mut self, name: &str, value: i64) -> Self {
        self.0.insert(name.into(), n(value));
        self
    }

    pub(super) fn json(self, name: &str, value: &Value) -> Self {
        self.s(name, value.to_string())
    }

    pub(super) fn opt_json(self, name: &str, value: Option<&Value>) -> Self {
        self.opt_s(name, value.map(Value::to_string))
    }

    pub(super) fn time(self, name: &str, value: DateTime<Utc>) -> Self {
        self.s(name, time(value))
    }

    pub(super) fn opt_time(self, name: &str, value: Option<DateTime<Utc>>) -> Self {
        self.opt_s(name, value.map(time))
    }

    pub(super) fn build(self) -> Item {
        self.0
    }
}

/// Reads attributes of a stored item; a missing or mistyped one is corrupt
/// data, reported as such.
pub(super) struct Fields<'a>(pub(super) &'a Item);

impl<'a> Fields<'a> {
    fn corrupt(name: &str, reason: &'static str) -> StoreError {
        ParseError::new("DynamoDB attribute", name, reason).into()
    }

    pub(super) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v)),
            Some(_) => Err(Self::corrupt(name, "expected a string")),
        }
    }

    pub(super) fn str(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_str(name)?
            .ok_or_else(|| Self::corrupt(name, "missing attribute"))
    }

    pub(super) fn opt_string(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_str(name)?.map(str::to_owned))
    }

    pub(super) fn parse<T: std::str::FromStr<Err = ParseError>>(
        &self,
        name: &str,
    ) -> Result<T, StoreError> {
        Ok(self.str(name)?.parse()?)
    }

    pub(super) fn opt_parse<T: std::str::FromStr<Err = ParseError>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.opt_str(name)?.map(str::parse).transpose()?)
    }

    pub(super) fn uuid(&self, name: &str) -> Result<Uuid, StoreError> {
        Uuid::parse_str(self.str(name)?).map_err(|_| Self::corrupt(name, "expected a UUID"))
    }

    pub(super) fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_int(name)?
            .ok_or_else(|| Self::corrupt(name, "expected a number"))
    }

    pub(super) fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| Self::corrupt(name, "expected an integer")),
            Some(_) => Err(Self::corrupt(name, "expected a number")),
        }
    }

    pub(super) fn json(&self, name: &str) -> Result<Value, StoreError> {
        Ok(serde_json::from_str(self.str(name)?)?)
    }

    pub(super) fn opt_json(&self, name: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.opt_str(name)?.map(serde_json::from_str).transpose()?)
    }

    pub(super) fn time(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        parse_time(name, self.str(name)?)
    }

    pub(super) fn opt_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_str(name)?.map(|t| parse_time(name, t)).transpose()
    }
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Fields::corrupt(name, "expected an RFC 3339 time"))
}

/// A stored item and the version it was read at.
#[derive(Debug, Clone)]
pub(super) struct Versioned<T> {
    pub(super) value: T,
    pub(super) version: i64,
}

pub(super) fn run_item(run: &Run, version: i64) -> Item {
    let order = run_order(run.created_at, run.run_id);
    let shard = run_shard(run.run_id);
    ItemBuilder::new((run_pk(run.run_id), RUN_SK.into()), "run")
        .s("run_id", run.run_id.to_string())
        .s("project", run.project.as_str())
        .s("status", run.status.as_str())
        .s("job_code", run.job_code.as_str())
        .opt_s("user_id", run.user_id.as_deref())
        .json("input", &run.input)
        .opt_json("result", run.result.as_ref())
        .opt_s("execution_id", run.execution_id.as_deref())
        .s("providers_mode", run.providers_mode.as_str())
        .opt_s("error", run.error.as_deref())
        .time("created_at", run.created_at)
        .time("updated_at", run.updated_at)
        .n(VERSION, version)
        .s(GSI1PK, all_runs_pk(shard))
        .s(GSI1SK, order.clone())
        .s(GSI2PK, run_status_pk(run.status, shard))
        .s(GSI2SK, order)
        .build()
}

// Each `*_from` below reads its item field by field, as the SQL adapters
// read their rows: alike in shape, each is its own record's layout.
pub(super) fn run_from(item: &Item) -> Result<Versioned<Run>, StoreError> {
    let f = Fields(item);
    Ok(Versioned {
        value: Run {
            run_id: f.parse("run_id")?,
            project: f.parse("project")?,
            status: f.parse("status")?,
            job_code: f.parse("job_code")?,
            user_id: f.opt_string("user_id")?,
            input: f.json("input")?,
            result: f.opt_json("result")?,
            execution_id: f.opt_string("execution_id")?,
            providers_mode: f.parse("providers_mode")?,
            error: f.opt_string("error")?,
            created_at: f.time("created_at")?,
            updated_at: f.time("updated_at")?,
        },
        version: f.int(VERSION)?,
    })
}

pub(super) fn artifact_item(a: &Artifact) -> Item {
    ItemBuilder::new(
        (run_pk(a.run_id), artifact_sk(a.created_at, a.id)),
        "artifact",
    )
    .s("id", a.id.to_string())
    .s("run_id", a.run_id.to_string())
    .s("type", a.artifact_type.as_str())
    .opt_s("provider", a.provider.map(Provider::as_str))
    .opt_s("persona", a.persona.map(|p| p.as_str()))
    .opt_s("url", a.url.as_deref())
    .opt_s("checksum", a.checksum.as_deref())
    .json("metadata", &a.metadata)
    .time("created_at", a.created_at)
    .build()
}

pub(super) fn artifact_from(item: &Item) -> Result<Artifact, StoreError> {
    let f = Fields(item);
    Ok(Artifact {
        id: f.uuid("id")?,
        run_id: f.parse("run_id")?,
        artifact_type: f.parse("type")?,
        provider: f.opt_parse("provider")?,
        persona: f.opt_parse("persona")?,
        url: f.opt_string("url")?,
        checksum: f.opt_string("checksum")?,
        metadata: f.json("metadata")?,
        created_at: f.time("created_at")?,
    })
}

pub(super) fn event_item(e: &WebhookEvent) -> Item {
    let order = format!("{}#{}", time(e.created_at), e.id);
    let of_job = e.provider_job_id.as_deref();
    ItemBuilder::new(event_key(e.id), "webhook_event")
        .s("id", e.id.to_string())
        .opt_s("run_id", e.run_id.map(|r| r.to_string()))
        .s("provider", e.provider.as_str())
        .s("idempotency_key", e.idempotency_key.as_str())
        .opt_s("provider_job_id", of_job)
        .s("signature_status", e.signature_status.as_str())
        .json("headers", &e.headers)
        .json("payload", &e.payload)
        .s("status", e.status.as_str())
        .opt_s("error", e.error.as_deref())
        .time("created_at", e.created_at)
        .opt_time("processed_at", e.processed_at)
        .s(GSI1PK, events_of(e.run_id))
        .s(GSI1SK, order.clone())
        .opt_s(
            GSI2PK,
            of_job.map(|job_id| job_events_pk(e.provider, job_id)),
        )
        .opt_s(GSI2SK, of_job.map(|_| order))
        .build()
}

pub(super) fn event_from(item: &Item) -> Result<WebhookEvent, StoreError> {
    let f = Fields(item);
    Ok(WebhookEvent {
        id: f.uuid("id")?,
        run_id: f.opt_parse("run_id")?,
        provider: f.parse("provider")?,
        idempotency_key: f.str("idempotency_key")?.to_owned(),
        provider_job_id: f.opt_string("provider_job_id")?,
        signature_status: f.parse("signature_status")?,
        headers: f.json("headers")?,
        payload: f.json("payload")?,
        status: f.parse("status")?,
        error: f.opt_string("error")?,
        created_at: f.time("created_at")?,
        processed_at: f.opt_time("processed_at")?,
    })
}

pub(super) fn job_item(j: &ProviderJob, version: i64) -> Item {
    ItemBuilder::new(job_key(j.run_id, j.provider, &j.job_id), "provider_job")
        .s("provider", j.provider.as_str())
        .s("job_id", j.job_id.as_str())
        .s("run_id", j.run_id.to_string())
        .s("persona", j.persona.as_str())
        .opt_s("task_token", j.task_token.as_deref())
        .s("status", j.status.as_str())
        .opt_json("result", j.result.as_ref())
        .opt_s("error", j.error.as_deref())
        .time("created_at", j.created_at)
        .opt_time("settled_at", j.settled_at)
        .opt_time("next_check_at", j.next_check_at)
        .n("checks", i64::from(j.checks))
        .opt_s("settled_by", j.settled_by.map(|b| b.as_str()))
        .n(VERSION, version)
        .build()
}

/// The lookup item of a job (`job_lookup_key`): its run, and the job's
/// reconciliation fields as the job item has them. While the job is
/// pending it is in the due-jobs index (`due_jobs_pk` / `due_order`); the
/// item of a settled job is written without those keys, which takes it out.
pub(super) fn job_lookup_item(j: &ProviderJob) -> Item {
    let item = ItemBuilder::new(job_lookup_key(j.provider, &j.job_id), "job_lookup")
        .s("run_id", j.run_id.to_string())
        .s("provider", j.provider.as_str())
        .s("job_id", j.job_id.as_str())
        .opt_time("next_check_at", j.next_check_at)
        .n("checks", i64::from(j.checks))
        .opt_s("settled_by", j.settled_by.map(|b| b.as_str()));
    match j.next_check_at {
        Some(at) if j.status == JobStatus::Pending => item
            .s(GSI2PK, due_jobs_pk(j.provider, &j.job_id))
            .s(GSI2SK, due_order(at, j.provider, &j.job_id))
            .build(),
        _ => item.build(),
    }
}

/// The key of the job a due-jobs index entry (a lookup item) names.
pub(super) fn due_job_key(item: &Item) -> Result<(String, String), StoreError> {
    let f = Fields(item);
    Ok(job_key(
        f.parse("run_id")?,
        f.parse("provider")?,
        f.str("job_id")?,
    ))
}

pub(super) fn job_from(item: &Item) -> Result<Versioned<ProviderJob>, StoreError> {
    let f = Fields(item);
    Ok(Versioned {
        value: ProviderJob {
            provider: f.parse("provider")?,
            job_id: f.str("job_id")?.to_owned(),
            run_id: f.parse("run_id")?,
            persona: f.parse("persona")?,
            task_token: f.opt_string("task_token")?,
            status: f.parse("status")?,
            result: f.opt_json("result")?,
            error: f.opt_string("error")?,
            created_at: f.time("created_at")?,
            settled_at: f.opt_time("settled_at")?,
            next_check_at: f.opt_time("next_check_at")?,
            // Absent from jobs registered before it was kept.
            checks: check_count(f.opt_int("checks")?.unwrap_or(0))?,
            settled_by: f.opt_parse("settled_by")?,
        },
        version: f.int(VERSION)?,
    })
}

/// `gsi1pk` of the decisions the engine has not confirmed yet.
pub(super) const UNDELIVERED_DECISIONS: &str = "GATES#UNDELIVERED";

pub(super) fn gate_item(h: &HitlRequest, version: i64) -> Item {
    // In the undelivered-decisions index from the decision until the
    // engine confirms it (a sparse index: only those gates are in it).
    let undelivered = match (h.decision, h.decided_at, h.delivered_at) {
        (Some(_), Some(at), None) => Some(format!("{}#{}#{}", time(at), h.run_id, h.gate)),
        _ => None,
    };
    ItemBuilder::new(gate_key(h.run_id, &h.gate), "hitl_request")
        .s("run_id", h.run_id.to_string())
        .s("gate", h.gate.as_str())
        .opt_s("task_token", h.task_token.as_deref())
        .time("requested_at", h.requested_at)
        .opt_s("decision", h.decision.map(|d| d.as_str()))
        .opt_s("decided_by", h.decided_by.as_deref())
        .opt_s("comment", h.comment.as_deref())
        .opt_time("decided_at", h.decided_at)
        .opt_time("delivered_at", h.delivered_at)
        .n(VERSION, version)
        .opt_s(GSI1PK, undelivered.as_ref().map(|_| UNDELIVERED_DECISIONS))
        .opt_s(GSI1SK, undelivered)
        .build()
}

pub(super) fn gate_from(item: &Item) -> Result<Versioned<HitlRequest>, StoreError> {
    let f = Fields(item);
    Ok(Versioned {
        value: HitlRequest {
            run_id: f.parse("run_id")?,
            gate: f.parse("gate")?,
            task_token: f.opt_string("task_token")?,
            requested_at: f.time("requested_at")?,
            decision: f.opt_parse("decision")?,
            decided_by: f.opt_string("decided_by")?,
            comment: f.opt_string("comment")?,
            decided_at: f.opt_time("decided_at")?,
            delivered_at: f.opt_time("delivered_at")?,
        },
        version: f.int(VERSION)?,
    })
}

pub(super) fn message_item(user_id: &str, seq: i64, m: &ChatMessage) -> Item {
    let run_ids = serde_json::to_value(&m.run_ids).unwrap_or(Value::Null);
    ItemBuilder::new(
        (conversation_pk(user_id), message_sk(seq)),
        "conversation_message",
    )
    .s("user_id", user_id)
    .n("seq", seq)
    .s("role", m.role.as_str())
    .s("content", m.content.as_str())
    .json("run_ids", &run_ids)
    .time("created_at", m.created_at)
    .s(GSI2PK, ALL_MESSAGES)
    .s(
        GSI2SK,
        format!("{}#{user_id}#{seq:020}", time(m.created_at)),
    )
    .build()
}

pub(super) fn message_from(item: &Item) -> Result<ChatMessage, StoreError> {
    let f = Fields(item);
    Ok(ChatMessage {
        role: f.parse("role")?,
        content: f.str("content")?.to_owned(),
        run_ids: serde_json::from_value(f.json("run_ids")?)?,
        created_at: f.time("created_at")?,
    })
}

pub(super) fn span_item(span: &Span) -> Item {
    let attributes = Value::Object(span.attributes.clone());
    let mut item = ItemBuilder::new(span_key(span.trace_id, span.span_id), "span")
        .s("trace_id", span.trace_id.to_string())
        .s("span_id", span.span_id.to_string())
        .opt_s(
            "parent_span_id",
            span.parent_span_id.map(|id| id.to_string()),
        )
        .opt_s("run_id", span.run_id.map(|id| id.to_string()))
        .s("name", span.name.as_str())
        .s("status", span.status.as_str())
        .json("attributes", &attributes)
        .opt_json("input", span.input.as_ref())
        .opt_json("output", span.output.as_ref())
        .opt_s("error", span.error.as_deref())
        .time("start_time", span.start_time)
        .opt_time("end_time", span.end_time);
    if span.run_id.is_none() {
        let expires = span.start_time + chrono::TimeDelta::days(LONE_SPAN_DAYS);
        item = item.n("expires_at", expires.timestamp());
    }
    item.build()
}

pub(super) fn span_from(item: &Item) -> Result<Span, StoreError> {
    let f = Fields(item);
    let attributes = match f.json("attributes")? {
        Value::Object(map) => map,
        _ => return Err(ParseError::new("span attributes", "", "expected an object").into()),
    };
    Ok(Span {
        trace_id: f.parse("trace_id")?,
        span_id: f.parse("span_id")?,
        parent_span_id: f.opt_parse("parent_span_id")?,
        run_id: f.opt_parse("run_id")?,
        name: f.str("name")?.to_owned(),
        status: f.parse("status")?,
        attributes,
        input: f.opt_json("input")?,
        output: f.opt_json("output")?,
        error: f.opt_string("error")?,
        start_time: f.time("start_time")?,
        end_time: f.opt_time("end_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewRun, Project, ProvidersMode};
    use serde_json::json;

    #[test]
    fn times_sort_as_text_and_keep_microseconds() {
        let t = crate::store::clock::now();
        let later = t + chrono::TimeDelta::microseconds(1);
        assert!(time(t) < time(later));
        assert_eq!(time(t).len(), "2026-11-28T12:00:00.000000Z".len());
        assert_eq!(parse_time("t", &time(t)).unwrap(), t);
    }

    fn sample_run() -> Run {
        let project: Project = "aismr".parse().unwrap();
        let new = NewRun::new(
            project.clone(),
            json!({"b": 2.5, "a": [1, null]}),
            ProvidersMode::Mock,
        );
        let now = crate::store::clock::now();
        Run {
            run_id: new.run_id,
            project: project.clone(),
            status: RunStatus::Pending,
            job_code: JobCode::generate(&project),
            user_id: None,
            input: new.input,
            result: None,
            execution_id: Some("arn:x".into()),
            providers_mode: ProvidersMode::Mock,
            error: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_run_round_trips_through_its_item() {
        let run = sample_run();
        let item = run_item(&run, 3);
        assert!(!item.contains_key("user_id"), "None is left out");
        let back = run_from(&item).unwrap();
        assert_eq!((back.value, back.version), (run, 3));
    }

    fn pending_job() -> ProviderJob {
        let now = crate::store::clock::now();
        crate::domain::NewProviderJob {
            provider: Provider::KieAi,
            job_id: "task#1".into(),
            run_id: RunId::new(),
            persona: crate::domain::Persona::Riley,
            task_token: Some("token".into()),
            check_at: now + chrono::TimeDelta::minutes(2),
        }
        .registered_at(now)
    }

    #[test]
    fn a_pending_job_is_in_the_due_index_until_it_settles() {
        let job = pending_job();
        let lookup = job_lookup_item(&job);
        let f = Fields(&lookup);
        assert_eq!(
            f.str(GSI2PK).unwrap(),
            due_jobs_pk(job.provider, &job.job_id)
        );
        let due = job.next_check_at.unwrap();
        assert_eq!(
            f.str(GSI2SK).unwrap(),
            format!("{}#kieai#task#1", time(due))
        );
        assert_eq!(
            due_job_key(&lookup).unwrap(),
            job_key(job.run_id, job.provider, &job.job_id),
            "the index entry names its job, whatever its id holds"
        );
        let back = job_from(&job_item(&job, 4)).unwrap();
        assert_eq!((back.value, back.version), (job.clone(), 4));

        let settled = ProviderJob {
            status: crate::domain::JobStatus::Succeeded,
            settled_at: Some(due),
            settled_by: Some(crate::domain::SettledBy::Poll),
            next_check_at: None,
            checks: 3,
            ..job
        };
        let lookup = job_lookup_item(&settled);
        assert!(!lookup.contains_key(GSI2PK) && !lookup.contains_key(GSI2SK));
        assert_eq!(Fields(&lookup).str("settled_by").unwrap(), "poll");
        let back = job_from(&job_item(&settled, 5)).unwrap();
        assert_eq!(back.value, settled);
    }

    /// A run's shard is part of its stored index keys: it must not change
    /// between versions, or listings would look in the wrong partitions.
    #[test]
    fn run_shards_are_stable_in_range_and_read_with_the_unsharded_partition() {
        let id: RunId = "0b6e2c6e-5b4e-4d39-9d2c-0f7c1e0f7a11".parse().unwrap();
        assert_eq!(run_shard(id), run_shard(id));
        let shards: std::collections::HashSet<u8> =
            (0..400).map(|_| run_shard(RunId::new())).collect();
        assert_eq!(
            shards,
            (0..RUN_SHARDS).collect(),
            "every shard is used, and no other"
        );
        let all = all_runs_partitions();
        assert_eq!(all.len(), usize::from(RUN_SHARDS) + 1);
        assert!(all.contains(&"RUNS".to_owned()) && all.contains(&"ALLRUNS#0".to_owned()));
        let published = run_status_partitions(RunStatus::Published);
        assert!(published.contains(&"RUNS#published".to_owned()));
        assert!(published.contains(&"RUNS#published#7".to_owned()));
        let run = sample_run();
        let item = run_item(&run, 1);
        let shard = run_shard(run.run_id);
        assert_eq!(Fields(&item).str(GSI1PK).unwrap(), all_runs_pk(shard));
        assert_eq!(
            Fields(&item).str(GSI2PK).unwrap(),
            run_status_pk(RunStatus::Pending, shard)
        );
    }

    /// The shard is part of the stored keys: it must not change between
    /// versions, or pending jobs would be looked for in the wrong partition.
    #[test]
    fn due_shards_are_stable_and_in_range() {
        assert_eq!(due_jobs_pk(Provider::KieAi, "task-1"), "DUEJOBS#0");
        assert_eq!(due_jobs_pk(Provider::Shotstack, "render-7"), "DUEJOBS#3");
        let shards: std::collections::HashSet<String> = (0..200)
            .map(|i| due_jobs_pk(Provider::Shotstack, &format!("render-{i}")))
            .collect();
        assert_eq!(
            shards,
            (0..DUE_SHARDS).map(due_shard_pk).collect(),
            "every shard is used, and no other"
        );
    }

    #[test]
    fn a_job_stored_before_its_checks_were_kept_reads_as_never_checked() {
        let job = pending_job();
        let mut item = job_item(&job, 1);
        for name in ["next_check_at", "checks", "settled_by"] {
            item.remove(name);
        }
        let back = job_from(&item).unwrap().value;
        assert_eq!(
            (back.next_check_at, back.checks, back.settled_by),
            (None, 0, None)
        );
    }

    /// A callback that names its job is found among the job's callbacks,
    /// in order of arrival; one that names none is in no such partition.
    #[test]
    fn an_event_of_a_job_is_among_the_jobs_callbacks() {
        let event = crate::domain::NewWebhookEvent {
            run_id: None,
            provider: Provider::Shotstack,
            idempotency_key: "shotstack:render-1".into(),
            provider_job_id: Some("render-1".into()),
            signature_status: crate::domain::SignatureStatus::Unsigned,
            headers: json!({}),
            payload: json!({}),
            status: crate::domain::WebhookEventStatus::Received,
        }
        .stored_at(crate::store::clock::now());
        let item = event_item(&event);
        let f = Fields(&item);
        assert_eq!(f.str(GSI2PK).unwrap(), "JOBEVENTS#shotstack#render-1");
        assert_eq!(f.str(GSI2SK).unwrap(), f.str(GSI1SK).unwrap());
        assert_eq!(event_from(&item).unwrap(), event);
        let unnamed = WebhookEvent {
            provider_job_id: None,
            ..event
        };
        let item = event_item(&unnamed);
        assert!(!item.contains_key(GSI2PK) && !item.contains_key(GSI2SK));
    }

    #[test]
    fn a_missing_attribute_is_corrupt_data() {
        let mut item = key(event_key(Uuid::now_v7()));
        item.insert("id".into(), s("not-a-uuid"));
        let err = event_from(&item).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }
}
