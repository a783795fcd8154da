//! The built-in echo worker: answers task messages on a local queue the way
//! `asl::driver::echo_answer` says (a body's `fail` fails the task, anything
//! else succeeds with the body minus `task_token`; a body with
//! `"no_answer": true` is left unanswered, to exercise timeouts). It lets
//! `mw statemachine run`, the conformance corpus and the benchmarks execute
//! any definition without the product's workers.
use serde_json::Value;

use super::LocalEngine;
use crate::engine::asl::driver::{echo_answer, TaskAnswer};
use crate::engine::{Engine, EngineError};

/// Consumes `queue_url` until the engine goes away.
pub async fn spawn_echo_worker(engine: &LocalEngine, queue_url: &str) -> Result<(), EngineError> {
    let mut messages = engine.subscribe(queue_url).await?;
    let engine = engine.clone();
    tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            let engine = engine.clone();
            tokio::spawn(async move {
                let body: Value = serde_json::from_str(&message.body).unwrap_or(Value::Null);
                let token = body.get("task_token").and_then(Value::as_str);
                let no_answer = body.get("no_answer").and_then(Value::as_bool) == Some(true);
                if let (Some(token), false) = (token, no_answer) {
                    let answered = match echo_answer(&message.body) {
                        TaskAnswer::Succeeded(output) => {
                            engine.send_task_success(token, &output).await
                        }
                        TaskAnswer::Failed { error, cause } => {
                            engine
                                .send_task_failure(token, error.as_deref(), cause.as_deref())
                                .await
                        }
                    };
                    match answered {
                        Ok(()) | Err(EngineError::TaskDoesNotExist | EngineError::TaskTimedOut) => {
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "echo worker could not answer; the message stays queued");
                            return;
                        }
                    }
                }
                let _ = engine.ack(&message.id).await;
            });
        }
    });
    Ok(())
}
