//! One module per command group. Errors carry an exit code: 2 for what the
//! user asked that does not exist or cannot be, 1 for everything else.
pub mod chat;
pub mod db;
pub mod dlq;
pub mod doctor;
pub mod evidence;
pub mod hitl;
pub mod live_run;
pub mod logs;
pub mod providers;
pub mod runs;
pub mod serve;
pub mod statemachine;
pub mod trace;
pub mod worker;

use std::process::ExitCode;

/// An error whose exit code is 2: the thing asked for does not exist, or the
/// command is not available.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.downcast_ref::<UserError>().is_some()
        || err
            .downcast_ref::<myloware::config::ConfigError>()
            .is_some()
    {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Opens the store the config names, applying pending migrations.
pub async fn open_store(
    config: &myloware::Config,
) -> anyhow::Result<std::sync::Arc<dyn myloware::store::Store>> {
    use anyhow::Context;
    myloware::store::connect(&config.database)
        .await
        .with_context(|| format!("opening the store at {}", config.database))
}

/// The store the config names, which must exist already: for commands that
/// read or remove what is there, so that a mistyped folder is an error and
/// not a new, empty store.
pub async fn existing_store(
    config: &myloware::Config,
) -> anyhow::Result<std::sync::Arc<dyn myloware::store::Store>> {
    store_exists(config)?;
    crate::output::noteln!("→ the store {}", config.database.location());
    open_store(config).await
}

/// A `UserError` naming the SQLite file the config names when it is not
/// there (a server store is not checked: opening it creates nothing).
pub fn store_exists(config: &myloware::Config) -> Result<(), UserError> {
    match &config.database {
        myloware::config::DatabaseConfig::Sqlite { path } if !path.exists() => {
            Err(UserError(format!(
                "no store at {}: nothing has run here yet (run from the folder you ran in, \
                 or set MYLOWARE_HOME or DATABASE_URL)",
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

/// The SQS queue URLs `choice` names, with their names; a `UserError` when
/// the queues are the local ones (ENGINE=local).
pub fn sqs_queues(
    config: &myloware::Config,
    choice: crate::cli::QueueChoice,
    command: &str,
) -> Result<Vec<(&'static str, String)>, UserError> {
    use crate::cli::QueueChoice;
    if config.engine == myloware::config::EngineKind::Local {
        return Err(UserError(format!(
            "`mw {command}` works on SQS queues (ENGINE=stepfunctions with TASK_QUEUE_URL and \
             CALLBACK_QUEUE_URL); with ENGINE=local, `mw serve` consumes its own queues and \
             retries failed messages itself"
        )));
    }
    let tasks = ("tasks", config.task_queue_url.clone());
    let callbacks = ("callbacks", config.callback_queue_url.clone());
    Ok(match choice {
        QueueChoice::Tasks => vec![tasks],
        QueueChoice::Callbacks => vec![callbacks],
        QueueChoice::All => vec![tasks, callbacks],
    })
}
