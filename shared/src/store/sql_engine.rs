//! The `EngineStore` implementation shared by the SQL adapters, instantiated
//! per backend by `sql_engine_store!` (see `sql.rs` for why a macro).

pub(crate) const EXECUTION_COLUMNS: &str = "execution_arn, state_machine_arn, name, definition, \
     input, status, output, error, cause, snapshot, version, start_date, stop_date";

macro_rules! sql_engine_store {
    ($store:ty, $db:ty) => {
        mod engine_impl {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::{QueryBuilder, Row as _};

            use super::*;
            use crate::store::engine::{
                Commit, CommitKind, CommitRefused, EngineStore, ExecutionRecord, ExecutionState,
                HistoryRecord, QueueMessage,
            };
            use crate::store::sql_engine::EXECUTION_COLUMNS;
            use crate::store::StoreError;

            type DbRow = <$db as sqlx::Database>::Row;

            fn execution(row: &DbRow) -> Result<ExecutionRecord, StoreError> {
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

            async fn apply(
                tx: &mut sqlx::Transaction<'_, $db>,
                commit: Commit,
            ) -> Result<Result<(), CommitRefused>, sqlx::Error> {
                let s = &commit.state;
                match &commit.kind {
                    CommitKind::Start(new) => {
                        let sql = format!(
                            "INSERT INTO executions ({EXECUTION_COLUMNS}) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                             ON CONFLICT DO NOTHING"
                        );
                        let inserted = sqlx::query(&sql)
                            .bind(&commit.execution_arn)
                            .bind(&new.state_machine_arn)
                            .bind(&new.name)
                            .bind(&new.definition)
                            .bind(&new.input)
                            .bind(&s.status)
                            .bind(&s.output)
                            .bind(&s.error)
                            .bind(&s.cause)
                            .bind(&s.snapshot)
                            .bind(commit.version)
                            .bind(new.start_date)
                            .bind(s.stop_date)
                            .execute(&mut **tx)
                            .await?
                            .rows_affected();
                        if inserted == 0 {
                            return Ok(Err(CommitRefused::AlreadyExists(commit.execution_arn)));
                        }
                    }
                    CommitKind::Advance { expected_version } => {
                        let updated = sqlx::query(
                            "UPDATE executions SET snapshot = $1, version = $2, status = $3, \
                               output = $4, error = $5, cause = $6, stop_date = $7 \
                             WHERE execution_arn = $8 AND version = $9",
                        )
                        .bind(&s.snapshot)
                        .bind(commit.version)
                        .bind(&s.status)
                        .bind(&s.output)
                        .bind(&s.error)
                        .bind(&s.cause)
                        .bind(s.stop_date)
                        .bind(&commit.execution_arn)
                        .bind(*expected_version)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                        if updated == 0 {
                            return Ok(Err(CommitRefused::VersionConflict(commit.execution_arn)));
                        }
                    }
                }
                if !commit.history.is_empty() {
                    let mut insert = QueryBuilder::<$db>::new(
                        "INSERT INTO execution_history \
                         (execution_arn, event_id, previous_event_id, type, timestamp, details) ",
                    );
                    insert.push_values(&commit.history, |mut b, e| {
                        b.push_bind(&commit.execution_arn)
                            .push_bind(e.event_id)
                            .push_bind(e.previous_event_id)
                            .push_bind(&e.event_type)
                            .push_bind(e.timestamp)
                            .push_bind(&e.details);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                let now = crate::store::rows::now();
                if !commit.tokens.is_empty() {
                    let mut insert = QueryBuilder::<$db>::new(
                        "INSERT INTO task_tokens (token, execution_arn, state_name, created_at) ",
                    );
                    insert.push_values(&commit.tokens, |mut b, t| {
                        b.push_bind(&t.token)
                            .push_bind(&commit.execution_arn)
                            .push_bind(&t.state_name)
                            .push_bind(now);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                if !commit.messages.is_empty() {
                    let mut insert = QueryBuilder::<$db>::new(
                        "INSERT INTO queue_messages (id, queue_url, body, created_at, receive_count) ",
                    );
                    insert.push_values(&commit.messages, |mut b, m| {
                        b.push_bind(&m.id)
                            .push_bind(&m.queue_url)
                            .push_bind(&m.body)
                            .push_bind(m.created_at)
                            .push_bind(m.receive_count);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                Ok(Ok(()))
            }

            #[async_trait]
            impl EngineStore for $store {
                async fn commit(
                    &self,
                    commits: Vec<Commit>,
                ) -> Result<Vec<Result<(), CommitRefused>>, StoreError> {
                    let mut tx = self.writer().begin().await?;
                    let mut outcomes = Vec::with_capacity(commits.len());
                    for commit in commits {
                        // A refusal is decided by the first statement, before
                        // anything of that commit is written, so the others of
                        // the group go on unaffected.
                        outcomes.push(apply(&mut tx, commit).await?);
                    }
                    tx.commit().await?;
                    Ok(outcomes)
                }

                async fn load_execution(
                    &self,
                    execution_arn: &str,
                ) -> Result<Option<ExecutionRecord>, StoreError> {
                    let sql =
                        format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE execution_arn = $1");
                    let row = sqlx::query(&sql)
                        .bind(execution_arn)
                        .fetch_optional(self.writer())
                        .await?;
                    row.as_ref().map(execution).transpose()
                }

                async fn running_executions(&self) -> Result<Vec<ExecutionRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {EXECUTION_COLUMNS} FROM executions WHERE status = 'RUNNING' \
                         ORDER BY start_date"
                    );
                    let rows = sqlx::query(&sql).fetch_all(self.writer()).await?;
                    rows.iter().map(execution).collect()
                }

                async fn execution_of_token(&self, token: &str) -> Result<Option<String>, StoreError> {
                    Ok(sqlx::query_scalar("SELECT execution_arn FROM task_tokens WHERE token = $1")
                        .bind(token)
                        .fetch_optional(self.writer())
                        .await?)
                }

                async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryRecord>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT event_id, previous_event_id, type, timestamp, details \
                         FROM execution_history WHERE execution_arn = $1 ORDER BY event_id",
                    )
                    .bind(execution_arn)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(HistoryRecord {
                                event_id: row.try_get("event_id")?,
                                previous_event_id: row.try_get("previous_event_id")?,
                                event_type: row.try_get("type")?,
                                timestamp: row.try_get::<DateTime<Utc>, _>("timestamp")?,
                                details: row.try_get("details")?,
                            })
                        })
                        .collect()
                }

                async fn queued_messages(
                    &self,
                    queue_url: &str,
                ) -> Result<Vec<QueueMessage>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT id, queue_url, body, created_at, receive_count FROM queue_messages \
                         WHERE queue_url = $1 ORDER BY created_at, id",
                    )
                    .bind(queue_url)
                    .fetch_all(self.writer())
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

                async fn delete_message(&self, id: &str) -> Result<bool, StoreError> {
                    let deleted = sqlx::query("DELETE FROM queue_messages WHERE id = $1")
                        .bind(id)
                        .execute(self.writer())
                        .await?
                        .rows_affected();
                    Ok(deleted > 0)
                }
            }
        }
    };
}
pub(crate) use sql_engine_store;
