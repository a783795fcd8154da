//! One module per command group. Errors carry an exit code: 2 for what the
//! user asked that does not exist or cannot be, 1 for everything else.
pub mod chat;
pub mod db;
pub mod doctor;
pub mod evidence;
pub mod hitl;
pub mod live_run;
pub mod logs;
pub mod runs;
pub mod serve;
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

/// Opens the store the config names, applying pending migrations.
pub async fn open_store(
    config: &myloware::Config,
) -> anyhow::Result<std::sync::Arc<dyn myloware::store::Store>> {
    use anyhow::Context;
    myloware::store::connect(&config.database)
        .await
        .with_context(|| format!("opening the store at {}", config.database))
}
