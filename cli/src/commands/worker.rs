//! `mw worker`: the SQS consumers where no Lambda event source exists (a
//! laptop against AWS, or an emulator): the same `Worker` and `Callbacks`
//! handlers the worker and callbacks functions run, until Ctrl-C or SIGTERM.
use crate::output::outln;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use myloware::pipeline::callbacks::Callbacks;
use myloware::pipeline::worker::{DeadLetters, Worker};
use myloware::queue::sqs::SqsQueue;
use myloware::queue::SharedHandler;
use myloware::wiring::{self, ServeFile};

use super::UserError;
use crate::cli::WorkerArgs;

pub async fn run(args: WorkerArgs, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let queues = super::sqs_queues(config, args.queue, "worker")?;
    // Providers call back the API, and approval links point at it: the
    // configured URL, else a local `mw serve`.
    let public = config
        .public_base_url
        .clone()
        .or_else(|| config.webhook_base_url.clone())
        .or_else(|| ServeFile::read(&config.home).map(|s| s.url))
        .ok_or_else(|| {
            UserError(
                "set PUBLIC_BASE_URL (or WEBHOOK_BASE_URL) to the API's URL: providers call back \
                 there, and approval links point there"
                    .into(),
            )
        })?;
    let (mocks, provider_urls) = wiring::start_mocks(config)
        .await
        .context("starting the mock providers")?;
    let (pipeline, _) = wiring::core(config, public, provider_urls)
        .await
        .context("connecting to the store and Step Functions")?;
    if mocks.is_some() {
        wiring::register_upload_post_webhook(&pipeline).await;
    }
    let sqs = SqsQueue::new(&myloware::aws::sdk_config().await);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut consumers = Vec::new();
    for (name, url) in &queues {
        let handler: SharedHandler = match *name {
            "tasks" => Arc::new(Worker {
                pipeline: pipeline.clone(),
            }),
            _ => Arc::new(Callbacks {
                pipeline: pipeline.clone(),
            }),
        };
        consumers.push(sqs.consume(url, handler, stopped.clone()));
        outln!("consuming {name:<9} {url}");
        // The task queue's dead letters fail their tasks with the reason, as
        // the worker function's event source on the dead-letter queue does.
        if *name == "tasks" {
            if let Some(dlq) = sqs
                .dead_letter_queue(url)
                .await
                .context("reading the task queue's redrive policy")?
            {
                let handler: SharedHandler = Arc::new(DeadLetters {
                    pipeline: pipeline.clone(),
                });
                consumers.push(sqs.consume(&dlq, handler, stopped.clone()));
                outln!("consuming {:<9} {dlq}", "dead tasks");
            }
        }
    }
    // Jobs whose callback is overdue are asked about beside the queues.
    let reconciler = tokio::spawn(pipeline.clone().run_reconciler(stopped.clone()));
    outln!(
        "  reconciler every {:?}, jobs overdue after {:?}",
        config.reconcile.interval,
        config.reconcile.after
    );
    outln!("  store      {}", config.database);
    outln!("  providers  {}", config.providers_mode);
    outln!(
        "  callbacks  {}/v1/webhooks/…",
        pipeline.settings.webhook_base_url
    );
    shutdown_signal().await;
    outln!("stopping: finishing the messages in hand…");
    let _ = stop.send(true);
    for consumer in consumers {
        let _ = consumer.await;
    }
    let _ = reconciler.await;
    pipeline.tracer.flush().await;
    if let Some(mocks) = mocks {
        mocks.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
