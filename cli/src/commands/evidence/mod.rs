//! `mw evidence <run>` (or `--run-id`, as the runbook spells it): the run,
//! its artifacts, webhook events with signature status and idempotency keys,
//! provider jobs, gates and timings.
use crate::output::outln;
use std::process::ExitCode;

mod bundle;

use crate::cli::EvidenceArgs;
use crate::connect::Reader;
use crate::output::print_json;

pub async fn run(
    args: EvidenceArgs,
    api_base: Option<&str>,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    let key = args.run.or(args.run_id).expect("clap requires one of them");
    let evidence = Reader::open(config, api_base).await?.evidence(&key).await?;
    if let Some(dir) = &args.bundle {
        let written = bundle::write(dir, &evidence, config)?;
        for file in written {
            outln!("wrote {}", file.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        print_json(&evidence)?;
        return Ok(ExitCode::SUCCESS);
    }
    super::runs::print_run(&evidence);
    let run = &evidence.run;
    outln!("\ntimings");
    outln!(
        "  total      {:.1}s",
        (run.updated_at - run.created_at).num_milliseconds() as f64 / 1000.0
    );
    let entered: Vec<_> = evidence
        .history
        .iter()
        .filter(|e| e.event_type.ends_with("StateEntered"))
        .collect();
    for (i, e) in entered.iter().enumerate() {
        let name = e
            .details
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("?");
        let until = entered
            .get(i + 1)
            .map(|n| n.timestamp)
            .unwrap_or(run.updated_at);
        outln!(
            "  {name:<16} {:>7.2}s",
            (until - e.timestamp).num_milliseconds() as f64 / 1000.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
