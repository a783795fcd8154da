//! Rows as the Postgres adapter reads them (sqlx), their conversion into
//! domain types, and the store's clock (both SQL adapters).
//! A row that does not parse is reported as corrupt, never silently skipped.
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Artifact, HitlRequest, ParseError, ProviderJob, Run, RunId, WebhookEvent};

fn parse_id(text: &str, kind: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| ParseError::new(kind, text, "expected a UUID").into())
}

fn parse_opt<T: std::str::FromStr<Err = ParseError>>(
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    Ok(text.map(|t| t.parse()).transpose()?)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunRow {
    run_id: String,
    project: String,
    status: String,
    job_code: String,
    user_id: Option<String>,
    input: Json<Value>,
    result: Option<Json<Value>>,
    execution_id: Option<String>,
    providers_mode: String,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;
    fn try_from(row: RunRow) -> Result<Self, StoreError> {
        Ok(Run {
            run_id: row.run_id.parse()?,
            project: row.project.parse()?,
            status: row.status.parse()?,
            job_code: row.job_code.parse()?,
            user_id: row.user_id,
            input: row.input.0,
            result: row.result.map(|j| j.0),
            execution_id: row.execution_id,
            providers_mode: row.providers_mode.parse()?,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ArtifactRow {
    id: String,
    run_id: String,
    #[sqlx(rename = "type")]
    artifact_type: String,
    provider: Option<String>,
    persona: Option<String>,
    url: Option<String>,
    checksum: Option<String>,
    metadata: Json<Value>,
    created_at: DateTime<Utc>,
}

impl TryFrom<ArtifactRow> for Artifact {
    type Error = StoreError;
    fn try_from(row: ArtifactRow) -> Result<Self, StoreError> {
        Ok(Artifact {
            id: parse_id(&row.id, "artifact id")?,
            run_id: row.run_id.parse()?,
            artifact_type: row.artifact_type.parse()?,
            provider: parse_opt(row.provider)?,
            persona: parse_opt(row.persona)?,
            url: row.url,
            checksum: row.checksum,
            metadata: row.metadata.0,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WebhookEventRow {
    id: String,
    run_id: Option<String>,
    provider: String,
    idempotency_key: String,
    provider_job_id: Option<String>,
    signature_status: String,
    headers: Json<Value>,
    payload: Json<Value>,
    status: String,
    error: Option<String>,
    created_at: DateTime<Utc>,
    processed_at: Option<DateTime<Utc>>,
}

impl TryFrom<WebhookEventRow> for WebhookEvent {
    type Error = StoreError;
    fn try_from(row: WebhookEventRow) -> Result<Self, StoreError> {
        Ok(WebhookEvent {
            id: parse_id(&row.id, "webhook event id")?,
            run_id: parse_opt::<RunId>(row.run_id)?,
            provider: row.provider.parse()?,
            idempotency_key: row.idempotency_key,
            provider_job_id: row.provider_job_id,
            signature_status: row.signature_status.parse()?,
            headers: row.headers.0,
            payload: row.payload.0,
            status: row.status.parse()?,
            error: row.error,
            created_at: row.created_at,
            processed_at: row.processed_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProviderJobRow {
    provider: String,
    job_id: String,
    run_id: String,
    persona: String,
    task_token: Option<String>,
    status: String,
    result: Option<Json<Value>>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    settled_at: Option<DateTime<Utc>>,
    next_check_at: Option<DateTime<Utc>>,
    checks: i64,
    settled_by: Option<String>,
}

impl TryFrom<ProviderJobRow> for ProviderJob {
    type Error = StoreError;
    fn try_from(row: ProviderJobRow) -> Result<Self, StoreError> {
        Ok(ProviderJob {
            provider: row.provider.parse()?,
            job_id: row.job_id,
            run_id: row.run_id.parse()?,
            persona: row.persona.parse()?,
            task_token: row.task_token,
            status: row.status.parse()?,
            result: row.result.map(|j| j.0),
            error: row.error,
            created_at: row.created_at,
            settled_at: row.settled_at,
            next_check_at: row.next_check_at,
            checks: check_count(row.checks)?,
            settled_by: parse_opt(row.settled_by)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HitlRequestRow {
    run_id: String,
    gate: String,
    task_token: Option<String>,
    requested_at: DateTime<Utc>,
    decision: Option<String>,
    decided_by: Option<String>,
    comment: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
}

impl TryFrom<HitlRequestRow> for HitlRequest {
    type Error = StoreError;
    fn try_from(row: HitlRequestRow) -> Result<Self, StoreError> {
        Ok(HitlRequest {
            run_id: row.run_id.parse()?,
            gate: row.gate.parse()?,
            task_token: row.task_token,
            requested_at: row.requested_at,
            decision: parse_opt(row.decision)?,
            decided_by: row.decided_by,
            comment: row.comment,
            decided_at: row.decided_at,
            delivered_at: row.delivered_at,
        })
    }
}

/// A provider job's `checks` as stored (a `BIGINT`): never negative, and
/// far below `u32::MAX`, unless the row is corrupt.
pub(crate) fn check_count(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored)
        .map_err(|_| ParseError::new("check count", &stored.to_string(), "expected a u32").into())
}

/// Converts every row, failing on the first corrupt one.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Now, truncated to microseconds: the precision every backend keeps, so a
/// value read back equals the value written.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SpanRow {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    run_id: Option<String>,
    name: String,
    status: String,
    attributes: Json<serde_json::Map<String, Value>>,
    input: Option<Json<Value>>,
    output: Option<Json<Value>>,
    error: Option<String>,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
}

impl TryFrom<SpanRow> for crate::domain::Span {
    type Error = StoreError;
    fn try_from(row: SpanRow) -> Result<Self, StoreError> {
        Ok(crate::domain::Span {
            trace_id: row.trace_id.parse()?,
            span_id: row.span_id.parse()?,
            parent_span_id: parse_opt(row.parent_span_id)?,
            run_id: parse_opt(row.run_id)?,
            name: row.name,
            status: row.status.parse()?,
            attributes: row.attributes.0,
            input: row.input.map(|j| j.0),
            output: row.output.map(|j| j.0),
            error: row.error,
            start_time: row.start_time,
            end_time: row.end_time,
        })
    }
}

/// What noting a gate's delivery found: the gate's decision column, if the
/// gate exists. Delivery is noted only for a decided gate.
pub(crate) fn delivered(
    decision: Option<Option<String>>,
    run_id: crate::domain::RunId,
    gate: &crate::domain::Gate,
) -> Result<(), StoreError> {
    match decision {
        None => Err(StoreError::not_found(format!(
            "gate {gate} request of run {run_id}"
        ))),
        Some(None) => Err(StoreError::Refused(format!(
            "gate {gate} of run {run_id} is not decided"
        ))),
        Some(Some(_)) => Ok(()),
    }
}
