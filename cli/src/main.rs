//! `mw`, the operator's tool. `main` only wires: parse arguments, load the
//! config, set up telemetry, open the store, dispatch.
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    myloware::telemetry::init("warn");
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            commands::exit_code_for(&err)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = myloware::Config::load()?;
    match cli.command {
        Command::Db(cmd) => commands::db::run(cmd, &config).await,
        Command::Runs(cmd) => commands::runs::run(cmd, &config).await,
        Command::Statemachine(cmd) => commands::statemachine::run(cmd, &config).await,
        Command::LiveRun(args) => commands::not_built(
            "live-run",
            &format!("the end-to-end pipeline for project {:?}", args.project),
        ),
    }
}
