//! The fault soak: N aismr runs through the whole embedded stack while the
//! mock providers misbehave at the rates `--faults` sets (`MOCK_FAULTS`
//! syntax: `all=0.3`, or `429=0.3,5xx=0.3,lost=0.3,…`), then what came of
//! them:
//! - published;
//! - failed, each with its cause (a run that failed without naming one is
//!   counted apart, as a defect);
//! - stuck: not ended by the deadline;
//! - duplicated effects: work the providers accepted more often than the
//!   store registered it (a clip, render or upload paid for twice, counted
//!   by the mocks), and results recorded twice (a clip, a render or a
//!   platform's post settled twice, counted in the store).
//!
//! ```text
//! cargo run --release -p myloware-tests --bin soak -- [--runs 100] [--faults all=0.3]
//!     [--concurrency 25] [--timeout 600] [--latency-ms 200] [--reconcile-after 3]
//! ```
//! Gates are approved as soon as they wait. Exits 1 when a run is stuck, a
//! failure names no cause, or an effect was duplicated.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use myloware::domain::RunStatus;
use myloware::wiring::{Stack, StackOptions};
use myloware_tests::{config_from, soak_report as soak, stack_vars, ApiClient};
use serde_json::json;

struct Options {
    runs: usize,
    faults: String,
    concurrency: usize,
    timeout: Duration,
    latency_ms: u64,
    reconcile_after: f64,
}

fn options() -> Result<Options> {
    let mut o = Options {
        runs: 100,
        faults: "all=0.3".into(),
        concurrency: 25,
        timeout: Duration::from_secs(600),
        latency_ms: 200,
        reconcile_after: 3.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => o.runs = value()?.parse()?,
            "--faults" => o.faults = value()?,
            "--concurrency" => o.concurrency = value()?.parse()?,
            "--timeout" => o.timeout = Duration::from_secs(value()?.parse()?),
            "--latency-ms" => o.latency_ms = value()?.parse()?,
            "--reconcile-after" => o.reconcile_after = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "soak [--runs N] [--faults MOCK_FAULTS] [--concurrency N] [--timeout SECS] \
                     [--latency-ms MS] [--reconcile-after SECS]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(o)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let o = options()?;
    let dir = tempfile::tempdir()?;
    let latency = o.latency_ms.to_string();
    let reconcile_after = o.reconcile_after.to_string();
    // Work whose answer was lost waits this long for a callback naming it:
    // past the `late` fault's delay and the callbacks' retries.
    let in_doubt = (o.reconcile_after * 5.0).max(20.0).to_string();
    let vars = stack_vars(
        dir.path(),
        &[
            ("MOCK_LATENCY_MS", &latency),
            ("MOCK_FAULTS", &o.faults),
            ("RECONCILE_AFTER_SECS", &reconcile_after),
            ("RECONCILE_IN_DOUBT_SECS", &in_doubt),
            ("RECONCILE_INTERVAL_SECS", "1"),
        ],
    );
    let config = config_from(&vars);
    println!(
        "soak: {} aismr runs, {} at once, faults {}, mock latency {} ms, jobs overdue after {} s",
        o.runs, o.concurrency, config.mock_faults, o.latency_ms, o.reconcile_after
    );
    let stack = Stack::start(&config, StackOptions::ephemeral())
        .await
        .context("starting the stack")?;
    let client = ApiClient::new(&stack.base_url, vars["API_KEY"].as_str());
    let started = Instant::now();
    let deadline = started + o.timeout;
    let limit = Arc::new(tokio::sync::Semaphore::new(o.concurrency));
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..o.runs {
        let (client, limit) = (client.clone(), limit.clone());
        runs.spawn(async move {
            let _slot = limit.acquire_owned().await;
            drive(&client, deadline).await
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = runs.join_next().await {
        ids.push(done??.parse().context("run id")?);
    }
    // Late callbacks may still come; let them, so their effects are counted.
    tokio::time::sleep(config_late_delay() + Duration::from_secs(1)).await;
    let mocks = stack.mocks.as_ref().context("mock providers")?;
    let report = soak::count(stack.pipeline.store.as_ref(), mocks, &ids).await?;
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    report.print();
    soak::print_mocks(mocks);
    let ok = report.stuck == 0 && report.failed_without_cause == 0 && report.duplicated() == 0;
    stack.shutdown().await;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn config_late_delay() -> Duration {
    myloware::providers::mock::faults::DEFAULT_LATE_DELAY
}

/// Starts one run, approves its gates as they come, and follows it to its
/// end or the deadline; answers its id.
async fn drive(client: &ApiClient, deadline: Instant) -> Result<String> {
    let (status, run) = client.post("/v1/runs", json!({ "project": "aismr" })).await;
    if status != 201 {
        bail!("starting a run answered {status}: {run}");
    }
    let id = run["run_id"].as_str().context("run id")?.to_owned();
    let mut seen = String::from("pending");
    while Instant::now() < deadline {
        let (_, run) = client
            .get(&format!("/v1/runs/{id}?status={seen}&wait=5"))
            .await;
        let status = run["status"].as_str().unwrap_or_default().to_owned();
        if status == "awaiting_approval" {
            let (_, evidence) = client.get(&format!("/v1/runs/{id}/evidence")).await;
            let waiting = soak::waiting_gates(&evidence);
            for gate in waiting {
                client
                    .post(&format!("/v1/hitl/approve/{id}/{gate}"), json!({}))
                    .await;
            }
        }
        if status.parse::<RunStatus>().is_ok_and(|s| s.is_terminal()) {
            break;
        }
        seen = status;
    }
    Ok(id)
}
