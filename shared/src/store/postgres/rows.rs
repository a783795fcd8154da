//! Rows as the Postgres adapter reads them (sqlx): one or all of a query's,
//! their conversion into domain types, and sqlx's errors as `StoreError`s.
//! A row that does not parse is reported as corrupt, never silently skipped.
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgPool, PgRow, Postgres};
use sqlx::query::QueryAs;
use sqlx::types::Json;
use sqlx::FromRow;
use uuid::Uuid;

use crate::domain::{Artifact, HitlRequest, ParseError, ProviderJob, Run, RunId, WebhookEvent};
use crate::store::{check_count, StoreError};

fn parse_id(text: &str, kind: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| ParseError::new(kind, text, "expected a UUID").into())
}

fn parse_opt<T: std::str::FromStr<Err = ParseError>>(
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    Ok(text.map(|t| t.parse()).transpose()?)
}

// Each row type below mirrors its table's columns and converts field by
// field: alike in shape, each is its own table's.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RunRow {
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
pub(super) struct ArtifactRow {
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
pub(super) struct WebhookEventRow {
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
pub(super) struct ProviderJobRow {
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
pub(super) struct HitlRequestRow {
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

/// Converts every row, failing on the first corrupt one.
pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The row `query` selects on `pool`, if any, converted.
pub(super) async fn one<R, T>(
    query: QueryAs<'_, Postgres, R, PgArguments>,
    pool: &PgPool,
) -> Result<Option<T>, StoreError>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    T: TryFrom<R, Error = StoreError>,
{
    query
        .fetch_optional(pool)
        .await?
        .map(T::try_from)
        .transpose()
}

/// Every row `query` selects on `pool`, converted, failing on the first
/// corrupt one.
pub(super) async fn all<R, T>(
    query: QueryAs<'_, Postgres, R, PgArguments>,
    pool: &PgPool,
) -> Result<Vec<T>, StoreError>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    T: TryFrom<R, Error = StoreError>,
{
    convert(query.fetch_all(pool).await?)
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SpanRow {
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

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::database("postgres", err)
    }
}

/// True when `err` is a unique-constraint violation.
pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The error of a statement that writes a row of run `run_id`: a broken
/// foreign key is that run missing.
pub(super) fn missing_run(err: sqlx::Error, run_id: RunId) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::not_found(format!("run {run_id}"))
        }
        _ => err.into(),
    }
}
