//! `mw db migrate`, `mw db prune`.
use crate::output::outln;
use std::process::ExitCode;

use myloware::config::DatabaseConfig;
use myloware::store::RunFilter;

use super::UserError;
use crate::cli::{DbCommand, PruneArgs};

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
        DbCommand::Prune(args) => prune(args, config).await,
    }
}

/// `30d`, `12h`, `90m`, `3600s` as a duration.
fn age(text: &str) -> Result<chrono::Duration, UserError> {
    let bad = || {
        UserError(format!(
            "--older-than {text:?}: expected a number and a unit, s, m, h or d (like 30d)"
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(seconds)
        .filter(|s| (0..=100 * 365 * 86_400).contains(s))
        .map(chrono::Duration::seconds)
        .ok_or_else(bad)
}

async fn prune(args: PruneArgs, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let cutoff = chrono::Utc::now() - age(&args.older_than)?;
    let store = super::existing_store(config).await?;
    let when = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if args.dry_run {
        let mut old = 0;
        let mut filter = RunFilter {
            limit: Some(RunFilter::MAX_LIMIT),
            ..RunFilter::default()
        };
        loop {
            let page = store.list_runs(&filter).await?;
            old += page
                .runs
                .iter()
                .filter(|r| r.status.is_terminal() && r.updated_at < cutoff)
                .count();
            match page.next {
                Some(next) => filter.after = Some(next),
                None => break,
            }
        }
        outln!(
            "would remove {old} finished run(s) last changed before {when}, with their \
             artifacts, webhook events and spans (dry run: nothing removed)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = store.prune(cutoff).await?;
    outln!(
        "removed {} finished run(s) last changed before {when}: {} artifact(s), {} webhook \
         event(s)",
        report.runs,
        report.artifacts,
        report.webhook_events
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_take_a_number_and_a_unit() {
        assert_eq!(age("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(age("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(age("90m").unwrap(), chrono::Duration::minutes(90));
        assert_eq!(age("0s").unwrap(), chrono::Duration::zero());
        for bad in ["", "d", "30", "30x", "-1d", "1.5d", "99999999999d"] {
            let e = age(bad).unwrap_err();
            assert!(e.0.contains("--older-than"), "{bad}: {}", e.0);
        }
    }
}
