//! One module per command group. Errors carry an exit code: 2 for what the
//! user asked that does not exist or cannot be, 1 for everything else.
pub mod db;
pub mod runs;
pub mod statemachine;

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

/// A command that is part of the interface but not built yet says so clearly.
pub fn not_built(command: &str, what: &str) -> anyhow::Result<ExitCode> {
    Err(UserError(format!(
        "`mw {command}` is not built yet: {what} needs the local engine and the persona pipeline, \
         which are still open work. `mw runs list` and `mw runs show` work today."
    ))
    .into())
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
