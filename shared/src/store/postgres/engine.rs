//! The local engine's storage on Postgres: each group commit written with a
//! handful of set-based statements (one per kind of row), the reads shared
//! with SQLite (`sql::engine`).
use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row as _};

use super::PostgresStore;
use crate::store::engine::{
    Batch, Commit, CommitKind, CommitRefused, EngineStore, ExecutionRecord, ExecutionState,
    HistoryRecord, QueueMessage,
};
use crate::store::sql::engine::{
    definition_hash, history_page, read_history_page, DESCRIBE_EXECUTION, EXECUTION_COLUMNS,
    HISTORY_PAGES, LOAD_EXECUTION, QUEUED_MESSAGES, RUNNING_EXECUTIONS,
};
use crate::store::StoreError;

// Read field by field, as every row reader is (DynamoDB's items too): the
// shape repeats, the columns are the execution's own.
fn execution(row: &PgRow) -> Result<ExecutionRecord, StoreError> {
    Ok(ExecutionRecord {
        execution_arn: row.try_get("execution_arn")?,
        state_machine_arn: row.try_get("state_machine_arn")?,
        name: row.try_get("name")?,
        definition: row.try_get("definition")?,
        input: row.try_get("input")?,
        state: ExecutionState {
            status: row.try_get("status")?,
            output: row.try_get("output")?,
            error: row.try_get("error")?,
            cause: row.try_get("cause")?,
            stop_date: row.try_get("stop_date")?,
            snapshot: row.try_get("snapshot")?,
        },
        version: row.try_get("version")?,
        start_date: row.try_get("start_date")?,
    })
}

/// The largest number of rows in one statement, well under both
/// backends' limits on bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// Writes the batch with a handful of set-based statements: one
/// insert for new executions, one compare-and-set update for the
/// advancing ones, then history and messages of the
/// commits that held, messages sent on their own, and the acknowledged messages' deletion.
async fn apply(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    batch: Batch,
) -> Result<Vec<Result<(), CommitRefused>>, sqlx::Error> {
    let mut applied: HashSet<String> = HashSet::with_capacity(batch.commits.len());
    // Each new execution with its definition's hash, each distinct
    // definition hashed once per batch (executions of one state
    // machine carry equal texts).
    let mut hashed: Vec<(&str, String)> = Vec::new();
    let starts: Vec<(&Commit, String)> = batch
        .commits
        .iter()
        .filter_map(|c| match &c.kind {
            CommitKind::Start(new) => {
                let text = new.definition.as_str();
                let hash = match hashed.iter().find(|(seen, _)| *seen == text) {
                    Some((_, hash)) => hash.clone(),
                    None => {
                        let hash = definition_hash(text);
                        hashed.push((text, hash.clone()));
                        hash
                    }
                };
                Some((c, hash))
            }
            CommitKind::Advance { .. } => None,
        })
        .collect();
    let mut definitions: Vec<(&str, &str)> = starts
        .iter()
        .map(|(c, hash)| {
            let CommitKind::Start(new) = &c.kind else {
                unreachable!()
            };
            (hash.as_str(), new.definition.as_str())
        })
        .collect();
    definitions.sort_unstable();
    definitions.dedup_by(|a, b| a.0 == b.0);
    for chunk in definitions.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            QueryBuilder::<Postgres>::new("INSERT INTO execution_definitions (hash, definition) ");
        q.push_values(chunk, |mut b, (hash, text)| {
            b.push_bind(*hash).push_bind(*text);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut **tx).await?;
    }
    for chunk in starts.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("INSERT INTO executions ({EXECUTION_COLUMNS}) "));
        q.push_values(chunk, |mut b, (c, hash)| {
            let CommitKind::Start(new) = &c.kind else {
                unreachable!()
            };
            let s = &c.state;
            b.push_bind(&c.execution_arn)
                .push_bind(&new.state_machine_arn)
                .push_bind(&new.name)
                .push_bind(hash.as_str())
                .push_bind(&new.input)
                .push_bind(&s.status)
                .push_bind(&s.output)
                .push_bind(&s.error)
                .push_bind(&s.cause)
                .push_bind(&s.snapshot)
                .push_bind(c.version)
                .push_bind(new.start_date)
                .push_bind(s.stop_date);
        });
        q.push(" ON CONFLICT DO NOTHING RETURNING execution_arn");
        let inserted: Vec<String> = q.build_query_scalar().fetch_all(&mut **tx).await?;
        applied.extend(inserted);
    }
    // A transition that leaves the execution running changes only
    // its snapshot and version (it was running, or the version
    // check fails): setting just those leaves the status index
    // untouched. Transitions that end it set everything.
    let (still_running, ending): (Vec<&Commit>, Vec<&Commit>) = batch
        .commits
        .iter()
        .filter(|c| matches!(c.kind, CommitKind::Advance { .. }))
        .partition(|c| c.state.status == "RUNNING");
    for chunk in still_running.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new("WITH v (arn, expected, version, snapshot) AS (");
        q.push_values(chunk, |mut b, c| {
            let CommitKind::Advance { expected_version } = c.kind else {
                unreachable!()
            };
            b.push_bind(&c.execution_arn)
                .push_bind(expected_version)
                .push_bind(c.version)
                .push_bind(&c.state.snapshot);
        });
        q.push(
            ") UPDATE executions SET snapshot = v.snapshot, version = v.version \
             FROM v WHERE executions.execution_arn = v.arn \
               AND executions.version = v.expected \
             RETURNING executions.execution_arn",
        );
        let updated: Vec<String> = q.build_query_scalar().fetch_all(&mut **tx).await?;
        applied.extend(updated);
    }
    for chunk in ending.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "WITH v (arn, expected, version, snapshot, status, output, error, cause, \
             stop_date) AS (",
        );
        q.push_values(chunk, |mut b, c| {
            let CommitKind::Advance { expected_version } = c.kind else {
                unreachable!()
            };
            let s = &c.state;
            b.push_bind(&c.execution_arn)
                .push_bind(expected_version)
                .push_bind(c.version)
                .push_bind(&s.snapshot)
                .push_bind(&s.status)
                .push_bind(&s.output)
                .push_bind(&s.error)
                .push_bind(&s.cause)
                .push_bind(s.stop_date);
        });
        q.push(
            ") UPDATE executions SET snapshot = v.snapshot, version = v.version, \
               status = v.status, output = v.output, error = v.error, \
               cause = v.cause, stop_date = v.stop_date \
             FROM v WHERE executions.execution_arn = v.arn \
               AND executions.version = v.expected \
             RETURNING executions.execution_arn",
        );
        let updated: Vec<String> = q.build_query_scalar().fetch_all(&mut **tx).await?;
        applied.extend(updated);
    }

    let held: Vec<&Commit> = batch
        .commits
        .iter()
        .filter(|c| applied.contains(&c.execution_arn))
        .collect();
    let pages: Vec<(&str, i64, i64, String)> = held
        .iter()
        .filter(|c| !c.history.is_empty())
        .map(|c| {
            let first = c.history[0].event_id;
            let last = c.history[c.history.len() - 1].event_id;
            (
                c.execution_arn.as_str(),
                first,
                last,
                history_page(&c.history),
            )
        })
        .collect();
    for chunk in pages.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO execution_history \
             (execution_arn, first_event_id, last_event_id, events) ",
        );
        q.push_values(chunk, |mut b, (arn, first, last, events)| {
            b.push_bind(*arn)
                .push_bind(*first)
                .push_bind(*last)
                .push_bind(events.as_str());
        });
        q.build().execute(&mut **tx).await?;
    }
    let messages: Vec<&QueueMessage> = held
        .iter()
        .flat_map(|c| c.messages.iter())
        .chain(batch.messages.iter())
        .collect();
    for chunk in messages.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO queue_messages (id, queue_url, body, created_at, receive_count) ",
        );
        q.push_values(chunk, |mut b, m| {
            b.push_bind(&m.id)
                .push_bind(&m.queue_url)
                .push_bind(&m.body)
                .push_bind(m.created_at)
                .push_bind(m.receive_count);
        });
        q.build().execute(&mut **tx).await?;
    }
    for chunk in batch.acks.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new("DELETE FROM queue_messages WHERE id IN (");
        let mut ids = q.separated(", ");
        for id in chunk {
            ids.push_bind(id);
        }
        q.push(")");
        q.build().execute(&mut **tx).await?;
    }

    Ok(batch
        .commits
        .iter()
        .map(|c| {
            if applied.contains(&c.execution_arn) {
                Ok(())
            } else {
                Err(c.refusal())
            }
        })
        .collect())
}

#[async_trait]
impl EngineStore for PostgresStore {
    async fn commit(&self, batch: Batch) -> Result<Vec<Result<(), CommitRefused>>, StoreError> {
        let mut tx = self.writer().begin().await?;
        let outcomes = apply(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn load_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let row = sqlx::query(LOAD_EXECUTION.postgres)
            .bind(execution_arn)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(execution).transpose()
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let row = sqlx::query(DESCRIBE_EXECUTION.postgres)
            .bind(execution_arn)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(execution).transpose()
    }

    async fn running_executions(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        let rows = sqlx::query(RUNNING_EXECUTIONS.postgres)
            .fetch_all(self.writer())
            .await?;
        rows.iter().map(execution).collect()
    }

    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        let pages: Vec<String> = sqlx::query_scalar(HISTORY_PAGES.postgres)
            .bind(execution_arn)
            .fetch_all(self.reader())
            .await?;
        let mut events = Vec::new();
        for page in pages {
            events.extend(read_history_page(&page)?);
        }
        Ok(events)
    }

    async fn queued_messages(&self, queue_url: &str) -> Result<Vec<QueueMessage>, StoreError> {
        let rows = sqlx::query(QUEUED_MESSAGES.postgres)
            .bind(queue_url)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueMessage {
                    id: row.try_get("id")?,
                    queue_url: row.try_get("queue_url")?,
                    body: row.try_get("body")?,
                    created_at: row.try_get("created_at")?,
                    receive_count: row.try_get("receive_count")?,
                })
            })
            .collect()
    }
}
