//! The local engine's storage on SQLite: the same tables and rules as the
//! Postgres adapter, the reads shared with it (`sql::engine`), the commits
//! written row by row with cached statements, which in-process is as fast
//! as Postgres's set-based statements and simpler.
use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{params, Row};

use super::rows::{all, get, one, opt_text, opt_time, owned, text, time, ts};
use super::SqliteStore;
use crate::store::engine::{
    Batch, CommitKind, CommitRefused, EngineStore, ExecutionRecord, ExecutionState, HistoryRecord,
    QueueMessage,
};
use crate::store::sql::engine::{
    definition_hash, execution_columns, history_page, read_history_page, DESCRIBE_EXECUTION,
    HISTORY_PAGES, LOAD_EXECUTION, QUEUED_MESSAGES, RUNNING_EXECUTIONS,
};
use crate::store::StoreError;

/// A new execution, unless one has its ARN (or its name in its state
/// machine).
const INSERT_EXECUTION: &str = concat!(
    "INSERT INTO executions (",
    execution_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING"
);

/// Columns in the order of `LOAD_EXECUTION` and `DESCRIBE_EXECUTION`.
fn execution(row: &Row<'_>) -> Result<ExecutionRecord, StoreError> {
    Ok(ExecutionRecord {
        execution_arn: text(row, 0)?.to_owned(),
        state_machine_arn: text(row, 1)?.to_owned(),
        name: text(row, 2)?.to_owned(),
        definition: text(row, 3)?.to_owned(),
        input: text(row, 4)?.to_owned(),
        state: ExecutionState {
            status: text(row, 5)?.to_owned(),
            output: owned(row, 6)?,
            error: owned(row, 7)?,
            cause: owned(row, 8)?,
            snapshot: text(row, 9)?.to_owned(),
            stop_date: opt_time(row, 12)?,
        },
        version: get(row, 10)?,
        start_date: time(row, 11)?,
    })
}

fn queue_message(row: &Row<'_>) -> Result<QueueMessage, StoreError> {
    Ok(QueueMessage {
        id: text(row, 0)?.to_owned(),
        queue_url: text(row, 1)?.to_owned(),
        body: text(row, 2)?.to_owned(),
        created_at: time(row, 3)?,
        receive_count: get(row, 4)?,
    })
}

#[async_trait]
impl EngineStore for SqliteStore {
    /// One transaction: new executions (refused if the name is taken),
    /// compare-and-set advances, then history and messages of the commits
    /// that held, messages sent on their own, and acknowledged messages'
    /// deletion.
    async fn commit(&self, batch: Batch) -> Result<Vec<Result<(), CommitRefused>>, StoreError> {
        self.write(move |tx| {
            let mut applied: HashSet<&str> = HashSet::with_capacity(batch.commits.len());
            let mut hashed: Vec<(&str, String)> = Vec::new();
            for c in &batch.commits {
                let s = &c.state;
                let changed = match &c.kind {
                    CommitKind::Start(new) => {
                        // Executions of one state machine carry equal texts:
                        // each distinct one is hashed and stored once.
                        let hash = match hashed.iter().find(|(seen, _)| *seen == new.definition) {
                            Some((_, hash)) => hash.clone(),
                            None => {
                                let hash = definition_hash(&new.definition);
                                tx.prepare_cached(
                                    "INSERT INTO execution_definitions (hash, definition) \
                                     VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                                )?
                                .execute(params![hash, new.definition])?;
                                hashed.push((&new.definition, hash.clone()));
                                hash
                            }
                        };
                        tx.prepare_cached(INSERT_EXECUTION)?.execute(params![
                            c.execution_arn,
                            new.state_machine_arn,
                            new.name,
                            hash,
                            new.input,
                            s.status,
                            s.output,
                            s.error,
                            s.cause,
                            s.snapshot,
                            c.version,
                            ts(&new.start_date),
                            s.stop_date.as_ref().map(ts),
                        ])?
                    }
                    // A transition that leaves the execution running changes
                    // only its snapshot and version: the status index is
                    // left untouched. Transitions that end it set everything.
                    CommitKind::Advance { expected_version } if s.status == "RUNNING" => tx
                        .prepare_cached(
                            "UPDATE executions SET snapshot = ?1, version = ?2 \
                             WHERE execution_arn = ?3 AND version = ?4",
                        )?
                        .execute(params![
                            s.snapshot,
                            c.version,
                            c.execution_arn,
                            expected_version
                        ])?,
                    CommitKind::Advance { expected_version } => tx
                        .prepare_cached(
                            "UPDATE executions SET snapshot = ?1, version = ?2, status = ?3, \
                               output = ?4, error = ?5, cause = ?6, stop_date = ?7 \
                             WHERE execution_arn = ?8 AND version = ?9",
                        )?
                        .execute(params![
                            s.snapshot,
                            c.version,
                            s.status,
                            s.output,
                            s.error,
                            s.cause,
                            s.stop_date.as_ref().map(ts),
                            c.execution_arn,
                            expected_version,
                        ])?,
                };
                if changed == 0 {
                    continue;
                }
                applied.insert(&c.execution_arn);
                if let (Some(first), Some(last)) = (c.history.first(), c.history.last()) {
                    tx.prepare_cached(
                        "INSERT INTO execution_history \
                         (execution_arn, first_event_id, last_event_id, events) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        c.execution_arn,
                        first.event_id,
                        last.event_id,
                        history_page(&c.history),
                    ])?;
                }
                for m in &c.messages {
                    insert_message(tx, m)?;
                }
            }
            for m in &batch.messages {
                insert_message(tx, m)?;
            }
            let mut delete = tx.prepare_cached("DELETE FROM queue_messages WHERE id = ?1")?;
            for id in &batch.acks {
                delete.execute(params![id])?;
            }
            Ok(batch
                .commits
                .iter()
                .map(|c| {
                    if applied.contains(c.execution_arn.as_str()) {
                        Ok(())
                    } else {
                        Err(c.refusal())
                    }
                })
                .collect())
        })
        .await
    }

    async fn load_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.execution_by_arn(LOAD_EXECUTION.sqlite, execution_arn)
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.execution_by_arn(DESCRIBE_EXECUTION.sqlite, execution_arn)
    }

    async fn running_executions(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.with(|conn| all(conn, RUNNING_EXECUTIONS.sqlite, [], execution))
    }

    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        let pages = self.with(|conn| {
            all(conn, HISTORY_PAGES.sqlite, params![execution_arn], |row| {
                Ok(opt_text(row, 0)?.unwrap_or("[]").to_owned())
            })
        })?;
        let mut events = Vec::new();
        for page in pages {
            events.extend(read_history_page(&page)?);
        }
        Ok(events)
    }

    async fn queued_messages(&self, queue_url: &str) -> Result<Vec<QueueMessage>, StoreError> {
        self.with(|conn| {
            all(
                conn,
                QUEUED_MESSAGES.sqlite,
                params![queue_url],
                queue_message,
            )
        })
    }

    /// Every `commit` is a write of the store's group commit.
    fn groups_writes(&self) -> bool {
        true
    }
}

impl SqliteStore {
    /// The execution `sql` reads (with its definition, or without), by ARN.
    fn execution_by_arn(
        &self,
        sql: &str,
        execution_arn: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.with(|conn| one(conn, sql, params![execution_arn], execution))
    }
}

fn insert_message(tx: &rusqlite::Connection, m: &QueueMessage) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO queue_messages (id, queue_url, body, created_at, receive_count) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        m.id,
        m.queue_url,
        m.body,
        ts(&m.created_at),
        m.receive_count
    ])?;
    Ok(())
}
