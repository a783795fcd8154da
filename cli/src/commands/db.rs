//! `mw db …`
use crate::output::outln;
use std::process::ExitCode;

use crate::cli::DbCommand;

pub async fn run(cmd: DbCommand, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Migrate => {
            let store = super::open_store(config).await?;
            outln!(
                "migrated: {} store at {} is up to date",
                store.backend(),
                config.database
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
