//! `mw runs list|show|watch|cancel|redrive|replay`: the runbook's "recent
//! runs" and "artifacts for a run" queries, without psql, and the actions on
//! a run, through the API.
use crate::output::outln;
use std::process::ExitCode;
use std::time::Duration;

use myloware::domain::{Run, RunRef, RunStatus};
use myloware::pipeline::Evidence;
use myloware::store::{RunFilter, Store};
use serde_json::Value;

use super::UserError;
use crate::cli::{ListArgs, RunArgs, RunsCommand, WatchArgs};
use crate::connect::{connect, Reader};
use crate::follow::Follower;
use crate::output::{compact, opt, print_json, table, time};

pub async fn run(
    cmd: RunsCommand,
    api_base: Option<&str>,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List(args) => list(&Reader::open(config, api_base).await?, args).await,
        RunsCommand::Show(args) => show(&Reader::open(config, api_base).await?, args).await,
        RunsCommand::Watch(args) => watch(&Reader::open(config, api_base).await?, args).await,
        RunsCommand::Cancel(args) => {
            let body = serde_json::json!({ "by": "cli" });
            let run = post(config, api_base, &args.run, "cancel", &body).await?;
            said(&run, args.json, "cancelled")
        }
        RunsCommand::Redrive(args) => {
            let body = serde_json::json!({ "by": "cli" });
            let run = post(config, api_base, &args.run, "redrive", &body).await?;
            said(&run, args.json, "redriving")
        }
        RunsCommand::Replay(args) => {
            let input = args
                .input
                .as_deref()
                .map(serde_json::from_str::<Value>)
                .transpose()
                .map_err(|e| UserError(format!("--input is not JSON: {e}")))?;
            if input.as_ref().is_some_and(|i| !i.is_object()) {
                return Err(UserError("--input must be a JSON object".into()).into());
            }
            let body = serde_json::json!({ "from": args.from, "input": input });
            let run = post(config, api_base, &args.run, "replay", &body).await?;
            let what = format!("replay of {} from {}:", args.run, args.from);
            said(&run, args.json, &what)
        }
    }
}

/// `POST /v1/runs/{run}/{action}` on the stack `connect` finds: the run as
/// it answers.
async fn post(
    config: &myloware::Config,
    api_base: Option<&str>,
    run: &str,
    action: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let connection = connect(config, api_base).await?;
    let outcome = connection
        .client
        .post::<Value>(&format!("/v1/runs/{run}/{action}"), body)
        .await;
    connection.close().await;
    outcome
}

/// Prints `run` as JSON, or as `<what> <job code> (<run id>)`.
fn said(run: &Value, json: bool, what: &str) -> anyhow::Result<ExitCode> {
    if json {
        print_json(run)?;
    } else {
        outln!(
            "{what} {} ({})",
            run["job_code"].as_str().unwrap_or("-"),
            run["run_id"].as_str().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(reader: &Reader, args: ListArgs) -> anyhow::Result<ExitCode> {
    let filter = RunFilter {
        status: args.status,
        project: args.project,
        limit: Some(args.limit),
        after: args.after,
    };
    let page = reader.list(&filter).await?;
    // Each run's cost is read from its evidence: one read per run listed.
    let mut costs = Vec::new();
    if args.cost {
        for run in &page.runs {
            costs.push(reader.evidence(&run.run_id.to_string()).await?.cost);
        }
    }
    if args.json {
        if args.cost {
            let mut value = serde_json::to_value(&page)?;
            for (run, cost) in value["runs"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .zip(&costs)
            {
                run["cost"] = serde_json::to_value(cost)?;
            }
            print_json(&value)?;
        } else {
            print_json(&page)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if page.runs.is_empty() {
        outln!("no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["run_id", "job_code", "project", "status", "updated_at"];
    if args.cost {
        header.push("cost");
    }
    let mut t = table(&header);
    for (i, run) in page.runs.iter().enumerate() {
        let mut row = vec![
            run.run_id.to_string(),
            run.job_code.to_string(),
            run.project.to_string(),
            run.status.to_string(),
            time(&run.updated_at),
        ];
        if let Some(cost) = costs.get(i) {
            row.push(
                cost.as_ref()
                    .map_or("-".into(), |c| myloware::pipeline::cost::usd(c.total_usd)),
            );
        }
        t.add_row(row);
    }
    outln!("{t}");
    if let Some(next) = page.next {
        outln!("more: mw runs list --after {next}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds a run by id or job code; absent is a `UserError` (exit 2).
pub async fn find_run(store: &dyn Store, key: &str) -> anyhow::Result<Run> {
    let run_ref: RunRef = key
        .parse()
        .map_err(|e: myloware::domain::ParseError| UserError(e.to_string()))?;
    myloware::store::find_run(store, &run_ref)
        .await?
        .ok_or_else(|| UserError(format!("run {key} not found in {}", store.backend())).into())
}

async fn show(reader: &Reader, args: RunArgs) -> anyhow::Result<ExitCode> {
    let evidence = reader.evidence(&args.run).await?;
    if args.json {
        print_json(&evidence)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_run(&evidence);
    Ok(ExitCode::SUCCESS)
}

/// The readable form of a run and its records.
pub fn print_run(evidence: &Evidence) {
    let run = &evidence.run;
    outln!("run        {}", run.run_id);
    outln!("job code   {}", run.job_code);
    outln!("project    {}", run.project);
    outln!("status     {}", run.status);
    outln!("providers  {}", run.providers_mode);
    outln!("user       {}", opt(run.user_id.as_deref()));
    outln!("execution  {}", opt(run.execution_id.as_deref()));
    outln!("created    {}", time(&run.created_at));
    outln!("updated    {}", time(&run.updated_at));
    if let Some(error) = &run.error {
        outln!("error      {error}");
    }
    for line in evidence.lineage.lines() {
        outln!("lineage    {line}");
    }
    outln!("input      {}", compact(&run.input, 100));
    if let Some(cost) = &evidence.cost {
        outln!("cost       {}", cost.summary());
    }
    if let Some(result) = &run.result {
        outln!("result     {}", compact(result, 100));
    }

    outln!("\nartifacts ({})", evidence.artifacts.len());
    if !evidence.artifacts.is_empty() {
        let mut t = table(&[
            "created_at",
            "type",
            "provider",
            "persona",
            "url / metadata",
        ]);
        for a in &evidence.artifacts {
            t.add_row(vec![
                time(&a.created_at),
                a.artifact_type.to_string(),
                a.provider.map_or("-".into(), |p| p.to_string()),
                a.persona.map_or("-".into(), |p| p.to_string()),
                a.url.clone().unwrap_or_else(|| compact(&a.metadata, 60)),
            ]);
        }
        outln!("{t}");
    }

    outln!("\nwebhook events ({})", evidence.webhook_events.len());
    if !evidence.webhook_events.is_empty() {
        let mut t = table(&[
            "created_at",
            "provider",
            "idempotency_key",
            "signature",
            "status",
        ]);
        for e in &evidence.webhook_events {
            t.add_row(vec![
                time(&e.created_at),
                e.provider.to_string(),
                e.idempotency_key.clone(),
                e.signature_status.to_string(),
                e.status.to_string(),
            ]);
        }
        outln!("{t}");
    }

    outln!("\nprovider jobs ({})", evidence.provider_jobs.len());
    if !evidence.provider_jobs.is_empty() {
        let mut t = table(&[
            "created_at",
            "provider",
            "job_id",
            "persona",
            "status",
            "error",
        ]);
        for j in &evidence.provider_jobs {
            t.add_row(vec![
                time(&j.created_at),
                j.provider.to_string(),
                j.job_id.clone(),
                j.persona.to_string(),
                j.status.to_string(),
                opt(j.error.as_deref()).to_owned(),
            ]);
        }
        outln!("{t}");
    }

    outln!("\ngates ({})", evidence.hitl_requests.len());
    for g in &evidence.hitl_requests {
        let decision = g.decision.map_or("waiting".to_owned(), |d| {
            format!("{d} by {}", opt(g.decided_by.as_deref()))
        });
        outln!(
            "  {:<12} requested {}  {decision}",
            g.gate.to_string(),
            time(&g.requested_at)
        );
    }
    if let Some(cost) = &evidence.cost {
        outln!("\ncost (prices of {})", cost.prices_dated);
        for line in cost.breakdown() {
            outln!("  {line}");
        }
    }
}

async fn watch(reader: &Reader, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let mut follower = Follower::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let evidence = reader.evidence(&args.run).await?;
        for line in follower.changes(&evidence) {
            outln!("{line}");
        }
        match evidence.run.status {
            RunStatus::Published => return Ok(ExitCode::SUCCESS),
            s if s.is_terminal() => return Ok(ExitCode::FAILURE),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "timed out after {}s; the run is {}",
                args.timeout, evidence.run.status
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
