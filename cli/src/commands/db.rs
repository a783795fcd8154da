//! `mw db …`
use crate::output::outln;
use std::process::ExitCode;

use myloware::config::DatabaseConfig;

use crate::cli::DbCommand;

pub async fn run(cmd: DbCommand, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Migrate => {
            let store = super::open_store(config).await?;
            match &config.database {
                DatabaseConfig::DynamoDb { table } => outln!(
                    "migrated: DynamoDB table {table} is ACTIVE with the store's schema \
                     (pk/sk, indexes gsi1 and gsi2, TTL on expires_at when created here)"
                ),
                _ => outln!(
                    "migrated: {} store at {} is up to date",
                    store.backend(),
                    config.database
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
