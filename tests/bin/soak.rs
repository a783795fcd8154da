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
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use myloware::domain::{ArtifactType, Provider, RunStatus};
use myloware::stack::{Stack, StackOptions};
use myloware_tests::{config_from, stack_vars, ApiClient};
use serde_json::{json, Value};

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
    let vars = stack_vars(
        dir.path(),
        &[
            ("MOCK_LATENCY_MS", &latency),
            ("MOCK_FAULTS", &o.faults),
            ("RECONCILE_AFTER_SECS", &reconcile_after),
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
        ids.push(done??);
    }
    // Late callbacks may still come; let them, so their effects are counted.
    tokio::time::sleep(config_late_delay() + Duration::from_secs(1)).await;
    let report = count(&stack, &ids).await?;
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    report.print();
    let mocks = stack.mocks.as_ref().context("mock providers")?;
    for (name, counters) in [
        ("kieai", &mocks.kieai),
        ("shotstack", &mocks.shotstack),
        ("upload-post", &mocks.upload_post),
    ] {
        let s = counters.snapshot();
        println!(
            "  mock {name:<11} requests {:>5}  refused on purpose {:>4}  accepted {:>4}  \
             callbacks sent {:>4}  lost {:>3}  repeated {:>3}",
            s.requests,
            s.refused_on_purpose,
            s.accepted,
            s.callbacks_sent,
            s.callbacks_lost,
            s.callbacks_repeated
        );
    }
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
            let waiting = evidence["hitl_requests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|g| g["decision"].is_null())
                .filter_map(|g| g["gate"].as_str().map(str::to_owned))
                .collect::<Vec<_>>();
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

#[derive(Default)]
struct Report {
    runs: usize,
    published: usize,
    failed: usize,
    failed_without_cause: usize,
    causes: BTreeMap<String, usize>,
    stuck: usize,
    stuck_where: Vec<String>,
    /// Provider-side: work accepted by a mock beyond what the store holds.
    extra_accepted: BTreeMap<&'static str, i64>,
    /// Store-side: results recorded twice.
    settled_twice: usize,
    settled_by_poll: usize,
    settled_by_callback: usize,
}

impl Report {
    fn duplicated(&self) -> usize {
        self.settled_twice
            + self
                .extra_accepted
                .values()
                .map(|n| (*n).max(0) as usize)
                .sum::<usize>()
    }

    fn print(&self) {
        println!("runs                 {}", self.runs);
        println!("published            {}", self.published);
        println!(
            "failed with a cause  {}",
            self.failed - self.failed_without_cause
        );
        for (cause, n) in &self.causes {
            println!("    {n:>4} × {cause}");
        }
        println!("failed, no cause     {}", self.failed_without_cause);
        println!("stuck                {}", self.stuck);
        for stuck in &self.stuck_where {
            println!("    {stuck}");
        }
        println!("duplicated effects   {}", self.duplicated());
        for (provider, extra) in &self.extra_accepted {
            println!("    {provider}: accepted {extra:+} beyond the jobs registered");
        }
        println!("    results settled twice: {}", self.settled_twice);
        println!(
            "jobs settled by callback {}, by the reconciler's poll {}",
            self.settled_by_callback, self.settled_by_poll
        );
    }
}

/// What came of the runs, read from the store and the mocks.
async fn count(stack: &Stack, ids: &[String]) -> Result<Report> {
    let store = &stack.pipeline.store;
    let mut report = Report {
        runs: ids.len(),
        ..Report::default()
    };
    let mut registered: BTreeMap<Provider, i64> = BTreeMap::new();
    for id in ids {
        let run_id = id.parse().context("run id")?;
        let run = store.get_run(run_id).await?.context("run")?;
        match run.status {
            RunStatus::Published => report.published += 1,
            RunStatus::Failed => {
                report.failed += 1;
                match run.error.as_deref().filter(|e| !e.trim().is_empty()) {
                    Some(error) => *report.causes.entry(cause(error)).or_default() += 1,
                    None => report.failed_without_cause += 1,
                }
            }
            other => {
                report.stuck += 1;
                report
                    .stuck_where
                    .push(format!("{} {} is {other}", run.job_code, run.run_id));
            }
        }
        let jobs = store.list_provider_jobs(run_id).await?;
        for job in &jobs {
            *registered.entry(job.provider).or_default() += 1;
            match job.settled_by.map(|b| b.as_str()) {
                Some("poll") => report.settled_by_poll += 1,
                Some(_) => report.settled_by_callback += 1,
                None => {}
            }
        }
        let artifacts = store.list_artifacts(run_id).await?;
        let mut results: BTreeMap<String, usize> = BTreeMap::new();
        for a in &artifacts {
            let key = |field: &str| a.metadata.get(field).and_then(Value::as_str).unwrap_or("");
            let result_of = match a.artifact_type.clone() {
                t if t == ArtifactType::KIEAI_CLIP || t == ArtifactType::KIEAI_ERROR => {
                    format!("clip {}", key("task_id"))
                }
                t if t == ArtifactType::RENDER_URL || t == ArtifactType::RENDER_ERROR => {
                    format!("render {}", key("render_id"))
                }
                t if t == ArtifactType::PUBLISH_URL || t == ArtifactType::PUBLISH_ERROR => {
                    format!("post {} {}", key("job_id"), key("platform"))
                }
                _ => continue,
            };
            *results.entry(result_of).or_default() += 1;
        }
        report.settled_twice += results.values().filter(|n| **n > 1).count();
    }
    let mocks = stack.mocks.as_ref().context("mock providers")?;
    for (name, provider, counters) in [
        ("kieai", Provider::KieAi, &mocks.kieai),
        ("shotstack", Provider::Shotstack, &mocks.shotstack),
        ("upload-post", Provider::UploadPost, &mocks.upload_post),
    ] {
        let accepted = counters.snapshot().accepted as i64;
        let extra = accepted - registered.get(&provider).copied().unwrap_or_default();
        report.extra_accepted.insert(name, extra);
    }
    Ok(report)
}

/// A failure's cause without its ids, so that alike causes count together.
fn cause(error: &str) -> String {
    let words: Vec<String> = error
        .split_whitespace()
        .map(|w| {
            if w.len() >= 16 && w.chars().filter(|c| c.is_ascii_hexdigit()).count() >= 12 {
                "<id>".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let text = words.join(" ");
    match text.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
