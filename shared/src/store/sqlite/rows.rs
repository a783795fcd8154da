//! Rows as the SQLite adapter reads them (columns in the order of the
//! `*_COLUMNS` lists), and the statements' plumbing. A row that does not
//! parse is reported as corrupt, never silently skipped.
use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::{FromSql, Type, ValueRef};
use rusqlite::{Connection, ErrorCode, Params, Row};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{
    Artifact, ChatMessage, HitlRequest, ParseError, ProviderJob, Run, RunId, RunLabels, Span,
    WebhookEvent,
};
use crate::store::{check_count, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        Self::database("sqlite", err)
    }
}

/// The row `sql` selects, if any, read by `read`.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    match rows.next()? {
        Some(row) => Ok(Some(read(row)?)),
        None => Ok(None),
    }
}

/// Every row `sql` selects, read by `read`, failing on the first corrupt one.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// Which constraint a statement broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Constraint {
    Unique,
    ForeignKey,
    Other,
}

/// The constraint behind a statement's error, read through a `StoreError`
/// too (a write's helpers answer those).
pub(super) fn broken_constraint(err: &StoreError) -> Option<Constraint> {
    match err {
        StoreError::Database { source, .. } => source
            .downcast_ref::<rusqlite::Error>()
            .and_then(constraint),
        _ => None,
    }
}

/// The error of a statement that writes a row of run `run_id`: a broken
/// foreign key is that run missing.
pub(super) fn missing_run(err: rusqlite::Error, run_id: RunId) -> StoreError {
    match constraint(&err) {
        Some(Constraint::ForeignKey) => StoreError::not_found(format!("run {run_id}")),
        _ => err.into(),
    }
}

pub(super) fn constraint(err: &rusqlite::Error) -> Option<Constraint> {
    match err {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation => {
            Some(match e.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Constraint::Unique,
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Constraint::ForeignKey,
                _ => Constraint::Other,
            })
        }
        _ => None,
    }
}

/// Column `i` as text, borrowed from the row.
pub(super) fn text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    Ok(opt_text(row, i)?.ok_or(rusqlite::Error::InvalidColumnType(
        i,
        "NULL".into(),
        Type::Null,
    ))?)
}

pub(super) fn opt_text<'r>(row: &'r Row<'_>, i: usize) -> Result<Option<&'r str>, StoreError> {
    match row.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => Ok(Some(std::str::from_utf8(bytes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))
        })?)),
        other => {
            Err(rusqlite::Error::InvalidColumnType(i, "text".into(), other.data_type()).into())
        }
    }
}

pub(super) fn owned(row: &Row<'_>, i: usize) -> Result<Option<String>, StoreError> {
    Ok(opt_text(row, i)?.map(str::to_owned))
}

pub(super) fn get<T: FromSql>(row: &Row<'_>, i: usize) -> Result<T, StoreError> {
    Ok(row.get(i)?)
}

pub(super) fn parsed<T: std::str::FromStr<Err = ParseError>>(
    row: &Row<'_>,
    i: usize,
) -> Result<T, StoreError> {
    Ok(text(row, i)?.parse()?)
}

pub(super) fn opt_parsed<T: std::str::FromStr<Err = ParseError>>(
    row: &Row<'_>,
    i: usize,
) -> Result<Option<T>, StoreError> {
    Ok(opt_text(row, i)?.map(str::parse).transpose()?)
}

pub(super) fn json<T: DeserializeOwned>(row: &Row<'_>, i: usize) -> Result<T, StoreError> {
    Ok(serde_json::from_str(text(row, i)?)?)
}

pub(super) fn opt_json<T: DeserializeOwned>(
    row: &Row<'_>,
    i: usize,
) -> Result<Option<T>, StoreError> {
    Ok(opt_text(row, i)?.map(serde_json::from_str).transpose()?)
}

/// A time as stored: RFC 3339 with the offset spelled out, the text earlier
/// versions (sqlx) wrote, so old and new rows sort together.
pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A JSON value as stored: its text.
pub(super) fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // What SQLite's own functions write (`datetime('now')`): UTC, no offset.
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

pub(super) fn time(row: &Row<'_>, i: usize) -> Result<DateTime<Utc>, StoreError> {
    let text = text(row, i)?;
    parse_time(text)
        .ok_or_else(|| ParseError::new("time", text, "expected an RFC 3339 time").into())
}

pub(super) fn opt_time(row: &Row<'_>, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
    match opt_text(row, i)? {
        Some(_) => time(row, i).map(Some),
        None => Ok(None),
    }
}

fn uuid(row: &Row<'_>, i: usize, kind: &'static str) -> Result<Uuid, StoreError> {
    let text = text(row, i)?;
    Uuid::parse_str(text).map_err(|_| ParseError::new(kind, text, "expected a UUID").into())
}

pub(super) fn run(row: &Row<'_>) -> Result<Run, StoreError> {
    Ok(Run {
        run_id: parsed(row, 0)?,
        project: parsed(row, 1)?,
        status: parsed(row, 2)?,
        job_code: parsed(row, 3)?,
        user_id: owned(row, 4)?,
        input: json(row, 5)?,
        result: opt_json(row, 6)?,
        execution_id: owned(row, 7)?,
        providers_mode: parsed(row, 8)?,
        error: owned(row, 9)?,
        created_at: time(row, 10)?,
        updated_at: time(row, 11)?,
    })
}

pub(super) fn run_labels(row: &Row<'_>) -> Result<RunLabels, StoreError> {
    Ok(RunLabels {
        run_id: parsed(row, 0)?,
        project: parsed(row, 1)?,
        providers_mode: parsed(row, 2)?,
        status: parsed(row, 3)?,
    })
}

pub(super) fn artifact(row: &Row<'_>) -> Result<Artifact, StoreError> {
    Ok(Artifact {
        id: uuid(row, 0, "artifact id")?,
        run_id: parsed(row, 1)?,
        artifact_type: parsed(row, 2)?,
        provider: opt_parsed(row, 3)?,
        persona: opt_parsed(row, 4)?,
        url: owned(row, 5)?,
        checksum: owned(row, 6)?,
        metadata: json(row, 7)?,
        created_at: time(row, 8)?,
    })
}

pub(super) fn webhook_event(row: &Row<'_>) -> Result<WebhookEvent, StoreError> {
    Ok(WebhookEvent {
        id: uuid(row, 0, "webhook event id")?,
        run_id: opt_parsed(row, 1)?,
        provider: parsed(row, 2)?,
        idempotency_key: text(row, 3)?.to_owned(),
        provider_job_id: owned(row, 4)?,
        signature_status: parsed(row, 5)?,
        headers: json(row, 6)?,
        payload: json(row, 7)?,
        status: parsed(row, 8)?,
        error: owned(row, 9)?,
        created_at: time(row, 10)?,
        processed_at: opt_time(row, 11)?,
    })
}

pub(super) fn provider_job(row: &Row<'_>) -> Result<ProviderJob, StoreError> {
    Ok(ProviderJob {
        provider: parsed(row, 0)?,
        job_id: text(row, 1)?.to_owned(),
        run_id: parsed(row, 2)?,
        persona: parsed(row, 3)?,
        task_token: owned(row, 4)?,
        status: parsed(row, 5)?,
        result: opt_json(row, 6)?,
        error: owned(row, 7)?,
        created_at: time(row, 8)?,
        settled_at: opt_time(row, 9)?,
        next_check_at: opt_time(row, 10)?,
        checks: check_count(get(row, 11)?)?,
        settled_by: opt_parsed(row, 12)?,
    })
}

pub(super) fn hitl_request(row: &Row<'_>) -> Result<HitlRequest, StoreError> {
    Ok(HitlRequest {
        run_id: parsed(row, 0)?,
        gate: parsed(row, 1)?,
        task_token: owned(row, 2)?,
        requested_at: time(row, 3)?,
        decision: opt_parsed(row, 4)?,
        decided_by: owned(row, 5)?,
        comment: owned(row, 6)?,
        decided_at: opt_time(row, 7)?,
        delivered_at: opt_time(row, 8)?,
    })
}

pub(super) fn span(row: &Row<'_>) -> Result<Span, StoreError> {
    Ok(Span {
        trace_id: parsed(row, 0)?,
        span_id: parsed(row, 1)?,
        parent_span_id: opt_parsed(row, 2)?,
        run_id: opt_parsed(row, 3)?,
        name: text(row, 4)?.to_owned(),
        status: parsed(row, 5)?,
        attributes: json(row, 6)?,
        input: opt_json(row, 7)?,
        output: opt_json(row, 8)?,
        error: owned(row, 9)?,
        start_time: time(row, 10)?,
        end_time: opt_time(row, 11)?,
    })
}

/// `role, content, run_ids, created_at` of a conversation message.
pub(super) fn chat_message(row: &Row<'_>) -> Result<ChatMessage, StoreError> {
    Ok(ChatMessage {
        role: parsed(row, 0)?,
        content: text(row, 1)?.to_owned(),
        run_ids: json(row, 2)?,
        created_at: time(row, 3)?,
    })
}
