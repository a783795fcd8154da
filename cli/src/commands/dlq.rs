//! `mw dlq list|replay`: what landed in the SQS queues' dead-letter queues
//! (messages that failed every delivery the redrive policy allows), and
//! sending it back once the cause is fixed.
use crate::output::{self, outln};
use std::process::ExitCode;

use anyhow::Context;
use myloware::queue::sqs::{QueuedMessage, SqsQueue};
use serde::Serialize;
use serde_json::Value;

use super::UserError;
use crate::cli::DlqCommand;

#[derive(Debug, Serialize)]
struct DeadLetters {
    queue: &'static str,
    queue_url: String,
    dead_letter_queue_url: String,
    messages: Vec<QueuedMessage>,
}

pub async fn run(cmd: DlqCommand, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let (args, replay) = match cmd {
        DlqCommand::List(args) => (args, false),
        DlqCommand::Replay(args) => (args, true),
    };
    let verb = if replay { "dlq replay" } else { "dlq list" };
    let queues = super::sqs_queues(config, args.queue, verb)?;
    let sqs = SqsQueue::new(&myloware::aws::sdk_config().await);
    let mut all = Vec::new();
    for (name, url) in queues {
        let dlq = sqs
            .dead_letter_queue(&url)
            .await
            .with_context(|| format!("reading the redrive policy of the {name} queue"))?
            .ok_or_else(|| {
                UserError(format!(
                    "the {name} queue ({url}) has no dead-letter queue (no RedrivePolicy)"
                ))
            })?;
        let messages = if replay {
            sqs.redrive(&dlq, &url, args.max)
                .await
                .with_context(|| format!("replaying {dlq} into {url}"))?
        } else {
            sqs.peek(&dlq, args.max)
                .await
                .with_context(|| format!("reading {dlq}"))?
        };
        all.push(DeadLetters {
            queue: name,
            queue_url: url,
            dead_letter_queue_url: dlq,
            messages,
        });
    }
    if args.json {
        output::print_json(&all)?;
        return Ok(ExitCode::SUCCESS);
    }
    for dead in &all {
        let what = if replay { "replayed" } else { "waiting" };
        outln!(
            "{} queue: {} message(s) {what} in {}",
            dead.queue,
            dead.messages.len(),
            dead.dead_letter_queue_url
        );
        if dead.messages.is_empty() {
            continue;
        }
        let mut table = output::table(&["message id", "sent", "receives", "about"]);
        for m in &dead.messages {
            table.add_row(vec![
                m.message_id.clone(),
                m.sent_at.as_ref().map(output::time).unwrap_or_default(),
                m.receive_count.to_string(),
                about(&m.body),
            ]);
        }
        outln!("{table}");
    }
    if !replay && all.iter().any(|d| !d.messages.is_empty()) {
        outln!(
            "next: `mw doctor <run_id>` for the run, then `mw dlq replay` once the cause is fixed"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a message is about, in a few words: the task and run of a task
/// message, the provider and job of a callback; never the task token.
fn about(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return output::compact(&Value::String(body.to_owned()), 60);
    };
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    let parts: Vec<String> = [
        ("task", field("task")),
        ("run", field("run_id")),
        ("persona", field("persona")),
        ("gate", field("gate")),
        ("provider", field("provider")),
        ("job", field("job_id")),
        ("callback", field("kind")),
        ("event", field("event_id")),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "(not a MyloWare message)".into()
    } else {
        parts.join(" ")
    }
}
