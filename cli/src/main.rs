//! `mw`, the operator's tool. `main` only wires: parse arguments, load the
//! config, set up telemetry, dispatch.
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod client;
mod commands;
mod connect;
mod follow;
mod output;

use cli::{Cli, Command};
use connect::Reader;

/// jemalloc rather than the system allocator: the local engine allocates
/// many small, short-lived values per transition (JSON values, history
/// text), and glibc's malloc was a quarter of its CPU time. It also serves
/// SQLite's allocations (the crate's `unprefixed_malloc…` feature). Against
/// mimalloc, the pipeline bench spent 5–7% less CPU per run (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            commands::exit_code_for(&err)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Commands that only read create nothing: no home folder, no secrets
    // file, no log file, no store.
    let reads_only = cli.command.reads_only();
    let config = if reads_only {
        myloware::Config::load_read_only()?
    } else {
        myloware::Config::load()?
    };
    let serving = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    // Every command but `mw logs` itself also logs to the file `mw logs`
    // reads (a reading command only to one that is there).
    let file = myloware::telemetry::log_file(&config.home);
    let file = (!matches!(cli.command, Command::Logs(_)) && (!reads_only || file.exists()))
        .then_some(file.as_path());
    myloware::telemetry::init(if serving { "info" } else { "warn" }, file);
    output::set_verbose(cli.verbose);
    let api = cli.api_base.as_deref();
    match cli.command {
        Command::Serve(args) => commands::serve::run(args, &config).await,
        Command::LiveRun(args) => commands::live_run::run(args, api, &config).await,
        Command::Chat(args) => commands::chat::run(args, api, &config).await,
        Command::Runs(cmd) => commands::runs::run(cmd, api, &config).await,
        Command::Evidence(args) => commands::evidence::run(args, api, &config).await,
        Command::Doctor(args) => {
            commands::doctor::run(args, &Reader::open(&config, api).await?, &config).await
        }
        Command::Trace(args) => {
            commands::trace::run(args, &Reader::open(&config, api).await?).await
        }
        Command::Logs(args) => commands::logs::run(args, &config).await,
        Command::Hitl(cmd) => commands::hitl::run(cmd, api, &config).await,
        Command::Db(cmd) => commands::db::run(cmd, &config).await,
        Command::Statemachine(cmd) => commands::statemachine::run(cmd, &config).await,
        Command::Worker(args) => commands::worker::run(args, &config).await,
        Command::Dlq(cmd) => commands::dlq::run(cmd, &config).await,
        Command::Providers(cmd) => commands::providers::run(cmd, &config).await,
    }
}
