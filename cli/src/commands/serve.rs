//! `mw serve`: the whole stack in one process until Ctrl-C.
use crate::output::outln;
use std::process::ExitCode;

use anyhow::Context;
use myloware::wiring::{Stack, StackOptions};

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let bind = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| {
            format!(
                "--host {} --port {} is not an address",
                args.host, args.port
            )
        })?;
    let stack = Stack::start(
        config,
        StackOptions {
            write_serve_file: true,
            ..StackOptions::at(bind)
        },
    )
    .await
    .context("starting the stack")?;
    outln!("MyloWare listening on {}", stack.base_url);
    outln!("  store      {}", config.database);
    outln!("  providers  {}", config.providers_mode);
    outln!("  dashboard  {}/ui", stack.base_url);
    if stack.engine.is_none() {
        outln!("  engine     Step Functions; queues on SQS: run `mw worker` to consume them");
    }
    outln!("  try        curl -H \"x-api-key: $API_KEY\" -X POST {}/v1/chat/brendan -d '{{\"user_id\":\"dev\",\"message\":\"Start a test video gen run\"}}'", stack.base_url);
    outln!(
        "  API key    in {}/secrets.env unless API_KEY is set",
        config.home.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    outln!("stopping…");
    stack.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
