//! `mw statemachine validate|run`: the persona graphs and any other ASL
//! definition, checked and executed on the durable local engine.
use crate::output::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use myloware::engine::definitions::{self, LOCAL_TASK_QUEUE_URL};
use myloware::engine::local::spawn_echo_worker;
use myloware::engine::{arn, Engine, EngineError, LocalEngine};
use serde_json::Value;

use super::UserError;
use crate::cli::{DeployArgs, RunDefinitionArgs, StatemachineCommand};
use myloware::config::EngineKind;
use myloware::engine::stepfunctions::StepFunctionsEngine;

pub async fn run(cmd: StatemachineCommand, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    match cmd {
        StatemachineCommand::Validate { files } => validate(files, config),
        StatemachineCommand::Run(args) => run_definition(args, config).await,
        StatemachineCommand::Deploy(args) => deploy(args, config).await,
    }
}

/// Creates or updates each embedded persona graph on Step Functions, with
/// the task queue substituted, and prints the `STATE_MACHINE_ARNS` line.
async fn deploy(args: DeployArgs, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let EngineKind::StepFunctions { name_prefix, .. } = &config.engine else {
        return Err(UserError(
            "`mw statemachine deploy` deploys to Step Functions: set ENGINE=stepfunctions, \
             TASK_QUEUE_URL and CALLBACK_QUEUE_URL (and AWS_ENDPOINT_URL for an emulator)"
                .into(),
        )
        .into());
    };
    let engine = StepFunctionsEngine::new(&myloware::aws::sdk_config().await);
    let mut arns = Vec::new();
    for (project, text) in
        definitions::embedded(&definitions::substitutions(&config.task_queue_url))?
    {
        let name = format!("{name_prefix}{project}");
        let arn = engine
            .deploy(&name, &text, &args.role_arn)
            .await
            .with_context(|| format!("deploying {name}"))?;
        outln!("{name}: {arn}");
        arns.push(format!("{project}={arn}"));
    }
    outln!("STATE_MACHINE_ARNS={}", arns.join(","));
    Ok(ExitCode::SUCCESS)
}

fn validate(files: Vec<PathBuf>, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let files = if files.is_empty() {
        definitions::files_in(Path::new("statemachine"))
            .context("listing statemachine/ (run from the repository root, or name the files)")?
    } else {
        files
    };
    let values = definitions::substitutions(&config.task_queue_url);
    let mut failed = 0;
    for file in &files {
        match definitions::load(file, &values) {
            Ok(def) => {
                let unsupported = def.machine.unsupported_resources();
                outln!("{}: ok", file.display());
                for u in unsupported {
                    outln!(
                        "{}: note: {}: the local engine cannot run Resource {}",
                        file.display(),
                        u.state,
                        u.resource
                    );
                }
            }
            Err(err) => {
                failed += 1;
                eprintln!("{err}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_definition(
    args: RunDefinitionArgs,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    let input: Value = serde_json::from_str(&args.input)
        .map_err(|e| UserError(format!("--input is not JSON: {e}")))?;
    let values = definitions::substitutions(LOCAL_TASK_QUEUE_URL);
    let def = definitions::load(&args.file, &values).map_err(|e| UserError(e.to_string()))?;
    let backend = myloware::store::open(&config.database)
        .await
        .with_context(|| format!("opening the store at {}", config.database))?;
    let engine = LocalEngine::start(backend.engine_store()?).await?;
    let machine = engine.register_state_machine(&def.name, &def.text)?;
    spawn_echo_worker(&engine, LOCAL_TASK_QUEUE_URL).await?;

    let execution = match &args.name {
        Some(name) => {
            let existing = arn::execution(&def.name, name);
            match engine.describe_execution(&existing).await {
                Ok(d) if d.is_running() => {
                    eprintln!("resuming execution {existing}");
                    existing
                }
                Ok(_) => {
                    return Err(UserError(format!(
                        "ExecutionAlreadyExists: {existing} has already ended (mw runs the same name once)"
                    ))
                    .into())
                }
                Err(EngineError::ExecutionDoesNotExist(_)) => {
                    engine.start_execution(&machine, Some(name), &input).await?.execution_arn
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            engine
                .start_execution(&machine, None, &input)
                .await?
                .execution_arn
        }
    };

    let done = engine
        .wait_for(&execution, Duration::from_secs(args.timeout))
        .await?;
    match done.status.as_str() {
        "SUCCEEDED" => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&done.output.unwrap_or(Value::Null))?
            );
            Ok(ExitCode::SUCCESS)
        }
        "RUNNING" => {
            eprintln!(
                "timed out after {}s; execution {execution} is still running (run again with --name {} to resume)",
                args.timeout,
                arn::name_of(&execution)
            );
            Ok(ExitCode::FAILURE)
        }
        status => {
            eprintln!("execution {status}");
            eprintln!("error: {}", done.error.as_deref().unwrap_or("-"));
            eprintln!("cause: {}", done.cause.as_deref().unwrap_or("-"));
            Ok(ExitCode::FAILURE)
        }
    }
}
