//! `mw runs list|show`: the runbook's "recent runs" and "artifacts for a run"
//! queries, without psql.
use std::process::ExitCode;

use myloware::domain::{JobCode, Run, RunId};
use myloware::store::{RunFilter, Store};
use serde_json::json;

use super::UserError;
use crate::cli::{ListArgs, RunsCommand, ShowArgs};
use crate::output::{compact, opt, print_json, table, time};

pub async fn run(cmd: RunsCommand, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config).await?;
    match cmd {
        RunsCommand::List(args) => list(store.as_ref(), args).await,
        RunsCommand::Show(args) => show(store.as_ref(), args).await,
    }
}

async fn list(store: &dyn Store, args: ListArgs) -> anyhow::Result<ExitCode> {
    let filter = RunFilter {
        status: args.status,
        project: args.project,
        limit: Some(args.limit),
        after: args.after,
    };
    let page = store.list_runs(&filter).await?;
    if args.json {
        print_json(&page)?;
        return Ok(ExitCode::SUCCESS);
    }
    if page.runs.is_empty() {
        println!("no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["run_id", "job_code", "project", "status", "updated_at"]);
    for run in &page.runs {
        t.add_row(vec![
            run.run_id.to_string(),
            run.job_code.to_string(),
            run.project.to_string(),
            run.status.to_string(),
            time(&run.updated_at),
        ]);
    }
    println!("{t}");
    if let Some(next) = page.next {
        println!("more: mw runs list --after {next}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds a run by id or job code; absent is a `UserError` (exit 2).
pub async fn find_run(store: &dyn Store, key: &str) -> anyhow::Result<Run> {
    let found = if let Ok(id) = key.parse::<RunId>() {
        store.get_run(id).await?
    } else if let Ok(code) = key.parse::<JobCode>() {
        store.find_run_by_job_code(&code).await?
    } else {
        return Err(UserError(format!(
            "{key:?} is neither a run id (UUID) nor a job code (TVG-QXZ123)"
        ))
        .into());
    };
    found.ok_or_else(|| UserError(format!("run {key} not found in {}", store.backend())).into())
}

async fn show(store: &dyn Store, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let run = find_run(store, &args.run).await?;
    let id = run.run_id;
    let artifacts = store.list_artifacts(id).await?;
    let webhook_events = store.list_webhook_events(id).await?;
    let provider_jobs = store.list_provider_jobs(id).await?;
    let gates = store.list_hitl_requests(id).await?;
    if args.json {
        print_json(&json!({
            "run": run,
            "artifacts": artifacts,
            "webhook_events": webhook_events,
            "provider_jobs": provider_jobs,
            "hitl_requests": gates,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }

    println!("run        {}", run.run_id);
    println!("job code   {}", run.job_code);
    println!("project    {}", run.project);
    println!("status     {}", run.status);
    println!("providers  {}", run.providers_mode);
    println!("user       {}", opt(run.user_id.as_deref()));
    println!("execution  {}", opt(run.execution_id.as_deref()));
    println!("created    {}", time(&run.created_at));
    println!("updated    {}", time(&run.updated_at));
    if let Some(error) = &run.error {
        println!("error      {error}");
    }
    println!("input      {}", compact(&run.input, 100));
    if let Some(result) = &run.result {
        println!("result     {}", compact(result, 100));
    }

    println!("\nartifacts ({})", artifacts.len());
    if !artifacts.is_empty() {
        let mut t = table(&[
            "created_at",
            "type",
            "provider",
            "persona",
            "url / metadata",
        ]);
        for a in &artifacts {
            t.add_row(vec![
                time(&a.created_at),
                a.artifact_type.to_string(),
                a.provider.map_or("-".into(), |p| p.to_string()),
                a.persona.map_or("-".into(), |p| p.to_string()),
                a.url.clone().unwrap_or_else(|| compact(&a.metadata, 60)),
            ]);
        }
        println!("{t}");
    }

    println!("\nwebhook events ({})", webhook_events.len());
    if !webhook_events.is_empty() {
        let mut t = table(&[
            "created_at",
            "provider",
            "idempotency_key",
            "signature",
            "status",
        ]);
        for e in &webhook_events {
            t.add_row(vec![
                time(&e.created_at),
                e.provider.to_string(),
                e.idempotency_key.clone(),
                e.signature_status.to_string(),
                e.status.to_string(),
            ]);
        }
        println!("{t}");
    }

    println!("\nprovider jobs ({})", provider_jobs.len());
    if !provider_jobs.is_empty() {
        let mut t = table(&[
            "created_at",
            "provider",
            "job_id",
            "persona",
            "status",
            "error",
        ]);
        for j in &provider_jobs {
            t.add_row(vec![
                time(&j.created_at),
                j.provider.to_string(),
                j.job_id.clone(),
                j.persona.to_string(),
                j.status.to_string(),
                opt(j.error.as_deref()).to_owned(),
            ]);
        }
        println!("{t}");
    }

    println!("\ngates ({})", gates.len());
    for g in &gates {
        let decision = g.decision.map_or("waiting".to_owned(), |d| {
            format!("{d} by {}", opt(g.decided_by.as_deref()))
        });
        println!(
            "  {:<12} requested {}  {decision}",
            g.gate.to_string(),
            time(&g.requested_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}
