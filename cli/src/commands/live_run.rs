//! `mw live-run <project>`: the main job. Starts a run (on the stack named by
//! `--api-base`, a local `mw serve`, or the embedded stack booted here),
//! follows it — persona steps, provider jobs, gates — approves gates unless
//! `--manual-hitl`, and ends with a summary. Exit 0 when published, 1
//! otherwise; Ctrl-C says how to find and cancel the run.
use crate::output::outln;
use std::process::ExitCode;
use std::time::Duration;

use myloware::domain::{Run, RunId, RunStatus};
use myloware::pipeline::Evidence;
use serde_json::{json, Value};

use crate::cli::LiveRunArgs;
use crate::connect::{connect, Connection};
use crate::follow::{approved_gates, artifact_counts, publish_urls, Follower};

const POLL: Duration = Duration::from_millis(150);

pub async fn run(
    args: LiveRunArgs,
    api_base: Option<&str>,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    let connection = connect(config, api_base).await?;
    let outcome = follow_new_run(&connection, &args).await;
    if let (Some(stack), Ok((_, Some(run_id)))) = (&connection.embedded, &outcome) {
        // The run's tree closes just after its end is recorded: wait for it
        // so the whole tree is exported (OTLP) before the stack stops.
        stack.pipeline.await_closed_tree(*run_id, TREE_SETTLE).await;
    }
    connection.close().await;
    outcome.map(|(code, _)| code)
}

/// How long an ended run's tree may take to close.
const TREE_SETTLE: Duration = Duration::from_secs(3);

/// Starts the run and follows it to its end: the exit code, and the run
/// when it ended.
async fn follow_new_run(
    connection: &Connection,
    args: &LiveRunArgs,
) -> anyhow::Result<(ExitCode, Option<RunId>)> {
    let client = &connection.client;
    let where_ = if connection.embedded.is_some() {
        "embedded stack".to_owned()
    } else {
        client.base().to_owned()
    };
    let run: Value = client
        .post(
            "/v1/runs",
            &json!({ "project": args.project, "message": args.message, "user_id": "cli" }),
        )
        .await?;
    let run_id = run["run_id"].as_str().unwrap_or_default().to_owned();
    let job_code = run["job_code"].as_str().unwrap_or_default().to_owned();
    if !args.json {
        outln!(
            "▶ {} run {job_code} ({run_id}) on the {where_}",
            args.project
        );
    }
    let mut follower = Follower::new();
    let mut announced_links = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let evidence_path = format!("/v1/runs/{run_id}/evidence");
    let evidence = loop {
        let evidence: Evidence = tokio::select! {
            e = client.get(&evidence_path) => e?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ninterrupted: run {job_code} ({run_id}) goes on without this command.");
                eprintln!("  watch it:  mw runs watch {job_code}");
                eprintln!("  cancel it: mw runs cancel {job_code}");
                return Ok((ExitCode::from(130), None));
            }
        };
        if !args.json {
            for line in follower.changes(&evidence) {
                outln!("{line}");
            }
        }
        if evidence.run.status.is_terminal() {
            break evidence;
        }
        for gate in evidence
            .hitl_requests
            .iter()
            .filter(|g| g.decision.is_none())
        {
            if args.manual_hitl {
                if announced_links.insert(gate.gate.to_string()) {
                    let link: Value = client
                        .get(&format!("/v1/hitl/link/{run_id}/{}", gate.gate))
                        .await?;
                    outln!("⏸ gate {} waits for you:", gate.gate);
                    outln!("    open   {}", link["url"].as_str().unwrap_or("-"));
                    outln!(
                        "    or run mw hitl approve {job_code} {}   (reject: mw hitl reject …)",
                        gate.gate
                    );
                }
            } else {
                let _: Value = client
                    .post(
                        &format!("/v1/hitl/approve/{run_id}/{}", gate.gate),
                        &json!({ "by": "live-run (auto)" }),
                    )
                    .await?;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "timed out after {}s: run {job_code} is {} (mw runs watch {job_code}; mw runs cancel {job_code})",
                args.timeout, evidence.run.status
            );
            return Ok((ExitCode::FAILURE, None));
        }
        // Wait for the status to change, at most POLL: a gate is approved
        // or announced, and the end seen, as it happens; progress still
        // shows at least every POLL.
        let asked = tokio::time::Instant::now();
        let run: Run = client
            .get(&format!(
                "/v1/runs/{run_id}?status={}&wait={}",
                evidence.run.status,
                POLL.as_secs_f64()
            ))
            .await?;
        if run.status == evidence.run.status {
            // A stack that answered before the wait was over (one that does
            // not wait) is not asked again at once.
            tokio::time::sleep_until(asked + POLL).await;
        }
    };

    let duration_s = follower.elapsed_s();
    let summary = json!({
        "run_id": evidence.run.run_id,
        "job_code": evidence.run.job_code,
        "project": evidence.run.project,
        "status": evidence.run.status,
        "publish_urls": publish_urls(&evidence),
        "artifacts": artifact_counts(&evidence),
        "approved_gates": approved_gates(&evidence),
        "duration_s": (duration_s * 10.0).round() / 10.0,
        "error": evidence.run.error,
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&evidence, duration_s);
    }
    let code = if evidence.run.status == RunStatus::Published {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    Ok((code, Some(evidence.run.run_id)))
}

fn print_summary(evidence: &Evidence, duration_s: f64) {
    let run = &evidence.run;
    outln!();
    outln!("run        {}", run.run_id);
    outln!("job code   {}", run.job_code);
    outln!("status     {}", run.status);
    outln!("duration   {duration_s:.1}s");
    for url in publish_urls(evidence) {
        outln!("published  {url}");
    }
    let gates = approved_gates(evidence);
    outln!(
        "gates      {}",
        if gates.is_empty() {
            "-".to_owned()
        } else {
            gates.join(", ") + " approved"
        }
    );
    let counts = artifact_counts(evidence);
    let counts: Vec<String> = counts.iter().map(|(t, n)| format!("{t}×{n}")).collect();
    outln!("artifacts  {}", counts.join("  "));
    if let Some(error) = &run.error {
        outln!("error      {error}");
        outln!(
            "next       mw evidence {}   (and mw runs show {})",
            run.job_code,
            run.job_code
        );
    }
}
