//! The aismr workflow on Restate, measured like the pipeline bench
//! (`cargo bench -p myloware --bench pipeline`) so that the two figures come
//! from the same machine. The pipeline's throughput and resume targets were
//! set against Restate measured on another machine, and the machines we
//! measure on differ by up to 3x from one day to the next, so only figures
//! taken side by side compare (docs/performance.md, "Against Restate on the same machine").
//!
//! The workflow, one Restate workflow per run, steps instant:
//! Iggy (a journaled step) → gate `ideate` (a durable promise the client
//! resolves) → Riley submits 12 clips (a journaled step each, then a one-way
//! call to `Provider.submit`, which calls the run's `webhook` handler at once;
//! that resolves the clip's promise) → Alex submits a render → gate
//! `prepublish` → Quinn submits a publish → done. 14 provider callbacks and 2
//! approvals per run, all through Restate; the pipeline bench has more (a
//! CDN-copy callback, one callback per platform, a confirming GET for each
//! kie.ai and Shotstack callback), so this shape favours Restate.
//!
//! "Webhook → next state" is, as in the pipeline bench, from the arrival of the
//! callback that settles a persona's last job (taken in the `webhook` handler)
//! to the next step journaled (Alex, the prepublish gate, the end): three per run.
//!
//! Run (Restate's server from npm, this binary spawns it with a fresh data
//! folder; ports 8080, 9070, 5122 and 9080 must be free):
//!
//! ```sh
//! npm install --prefix /tmp/restate @restatedev/restate-server@1.7.12
//! RESTATE_SERVER=/tmp/restate/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server \
//!   cargo run --release --manifest-path scripts/compare/restate_aismr/Cargo.toml
//! ```
//!
//! Restate syncs its logs to disk at each write by default; the SQLite store
//! does not (`synchronous=NORMAL` in WAL mode). For like against like, also set
//! `RESTATE_LOG_SERVER__ROCKSDB_DISABLE_WAL_FSYNC=true` and
//! `RESTATE_BIFROST__LOCAL__ROCKSDB_DISABLE_WAL_FSYNC=true` (the spawned
//! server inherits the environment).
//!
//! `MW_BENCH_RUNS` (default 256) and `MW_BENCH_IN_FLIGHT` (default 64) as in
//! the pipeline bench. `MW_RESTATE_SHAPE=steps` runs a lighter workflow
//! instead: every provider job a journaled step with no call and no callback
//! (runs per second and CPU only).
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use restate_sdk::prelude::*;
use serde_json::json;

const INGRESS: &str = "http://127.0.0.1:8080";
const ADMIN: &str = "http://127.0.0.1:9070";
const ENDPOINT: &str = "127.0.0.1:9080";
const CLIPS: usize = 12;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Job {
    run: String,
    job: String,
}

/// A provider that finishes every job at once and calls the run back.
struct Provider;

#[restate_sdk::service]
impl Provider {
    #[handler]
    async fn submit(&self, ctx: Context<'_>, job: Json<Job>) -> Result<(), HandlerError> {
        let Job { run, job } = job.into_inner();
        ctx.workflow_client::<AismrClient>(run)
            .webhook(Json(job))
            .send();
        Ok(())
    }
}

struct Aismr;

#[restate_sdk::workflow]
impl Aismr {
    #[handler]
    async fn run(
        &self,
        ctx: WorkflowContext<'_>,
        input: Json<serde_json::Value>,
    ) -> Result<Json<Vec<u64>>, HandlerError> {
        if input.into_inner()["shape"] == "steps" {
            return steps_only(&ctx).await;
        }
        let run = ctx.key().to_owned();
        let mut latencies = Vec::new();
        ctx.run(|| async { Ok(()) }).name("Iggy").await?;
        gate(&ctx, "ideate").await?;

        ctx.run(|| async { Ok(()) }).name("Riley").await?;
        let clips: Vec<String> = (0..CLIPS).map(|i| format!("clip-{i}")).collect();
        latencies.push(jobs_then(&ctx, &run, &clips, "Alex").await?);

        let render = ["render".to_owned()];
        latencies.push(jobs_then(&ctx, &run, &render, "GatePrepublish").await?);
        gate(&ctx, "prepublish").await?;

        ctx.run(|| async { Ok(()) }).name("Quinn").await?;
        let publish = ["publish".to_owned()];
        latencies.push(jobs_then(&ctx, &run, &publish, "RecordPublished").await?);
        Ok(Json(latencies))
    }

    /// A provider's callback: settles its job with the time it arrived.
    #[handler]
    async fn webhook(
        &self,
        ctx: SharedWorkflowContext<'_>,
        job: Json<String>,
    ) -> Result<(), HandlerError> {
        ctx.resolve_promise::<u64>(&job.into_inner(), now_us());
        Ok(())
    }

    /// Answers once the run waits at `gate`.
    #[handler]
    async fn at_gate(
        &self,
        ctx: SharedWorkflowContext<'_>,
        gate: Json<String>,
    ) -> Result<(), HandlerError> {
        ctx.promise::<u64>(&format!("at-{}", gate.into_inner()))
            .await?;
        Ok(())
    }

    /// The client's approval of `gate`.
    #[handler]
    async fn approve(
        &self,
        ctx: SharedWorkflowContext<'_>,
        gate: Json<String>,
    ) -> Result<(), HandlerError> {
        ctx.resolve_promise::<u64>(&gate.into_inner(), now_us());
        Ok(())
    }
}

/// The `steps` shape: every provider job a journaled step and no callback,
/// the gates as in the full shape. It measures no resume.
async fn steps_only(ctx: &WorkflowContext<'_>) -> Result<Json<Vec<u64>>, HandlerError> {
    ctx.run(|| async { Ok(()) }).name("Iggy").await?;
    gate(ctx, "ideate").await?;
    ctx.run(|| async { Ok(()) }).name("Riley").await?;
    for i in 0..CLIPS {
        ctx.run(|| async { Ok(()) })
            .name(format!("clip-{i}"))
            .await?;
    }
    ctx.run(|| async { Ok(()) }).name("Alex").await?;
    gate(ctx, "prepublish").await?;
    ctx.run(|| async { Ok(()) }).name("Quinn").await?;
    Ok(Json(Vec::new()))
}

async fn gate(ctx: &WorkflowContext<'_>, name: &str) -> Result<(), HandlerError> {
    ctx.resolve_promise::<u64>(&format!("at-{name}"), now_us());
    ctx.promise::<u64>(name).await?;
    Ok(())
}

async fn submit(ctx: &WorkflowContext<'_>, run: &str, job: &str) -> Result<(), HandlerError> {
    ctx.run(|| async { Ok(()) })
        .name(format!("submit {job}"))
        .await?;
    ctx.service_client::<ProviderClient>()
        .submit(Json(Job {
            run: run.to_owned(),
            job: job.to_owned(),
        }))
        .send();
    Ok(())
}

/// Submits `jobs`, waits for every one's callback, then journals the step
/// `next`: the time (µs) from the last callback's arrival to that step.
async fn jobs_then(
    ctx: &WorkflowContext<'_>,
    run: &str,
    jobs: &[String],
    next: &str,
) -> Result<u64, HandlerError> {
    for job in jobs {
        submit(ctx, run, job).await?;
    }
    let mut arrived = 0;
    for job in jobs {
        arrived = arrived.max(ctx.promise::<u64>(job).await?);
    }
    let entered = ctx.run(|| async { Ok(now_us()) }).name(next).await?;
    Ok(entered.saturating_sub(arrived))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User and system CPU time of a process, from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    let (_, after) = stat.rsplit_once(')').expect("stat format");
    let mut fields = after.split_whitespace().skip(11);
    let mut ticks = || {
        fields
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .expect("ticks")
    };
    let (user, system) = (ticks(), ticks());
    Duration::from_millis((user + system) * 10)
}

#[tokio::main]
async fn main() {
    let runs = env_usize("MW_BENCH_RUNS", 256);
    let shape = std::env::var("MW_RESTATE_SHAPE").unwrap_or_else(|_| "callbacks".into());
    assert!(
        shape == "callbacks" || shape == "steps",
        "MW_RESTATE_SHAPE is callbacks (the default) or steps, not {shape}"
    );
    let in_flight = env_usize("MW_BENCH_IN_FLIGHT", 64);
    let server = std::env::var("RESTATE_SERVER").unwrap_or_else(|_| "restate-server".into());
    let data = tempfile::tempdir().expect("a temporary folder");
    let mut restate = tokio::process::Command::new(&server)
        .arg("--no-logo")
        .arg("--base-dir")
        .arg(data.path())
        .env("RESTATE_LOG_FILTER", "error")
        .env("RESTATE_DISABLE_TELEMETRY", "true")
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {server}: {e} (set RESTATE_SERVER)"));
    let server_pid = restate.id().expect("server pid").to_string();

    let listener = tokio::net::TcpListener::bind(ENDPOINT)
        .await
        .expect("endpoint port 9080 free");
    tokio::spawn(
        HttpServer::new(Endpoint::builder().bind(Provider).bind(Aismr).build()).serve(listener),
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client");
    let started = Instant::now();
    loop {
        let ok = http
            .post(format!("{ADMIN}/deployments"))
            .json(&json!({ "uri": format!("http://{ENDPOINT}"), "force": true }))
            .send()
            .await
            .map(|r| r.status().is_success());
        if let Ok(true) = ok {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Restate's admin API did not register the endpoint: {ok:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let idle = drive(&http, &shape, "idle", 16, 1).await.1;
    let (cpu_before, self_before) = (cpu_time(&server_pid), cpu_time("self"));
    let (elapsed, loaded) = drive(&http, &shape, "loaded", runs, in_flight).await;
    let (server_cpu, own_cpu) = (
        cpu_time(&server_pid) - cpu_before,
        cpu_time("self") - self_before,
    );
    println!(
        "restate aismr runs ({shape}): {:.0} runs/s ({runs} runs, {in_flight} in flight, {:.2} s; 12 clips each, instant steps)",
        runs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let cpu = server_cpu + own_cpu;
    println!(
        "CPU per run, {in_flight} in flight: {:.1} ms (restate-server {:.1} ms + endpoint and client {:.1} ms; {:.2} cores busy)",
        cpu.as_secs_f64() * 1000.0 / runs as f64,
        server_cpu.as_secs_f64() * 1000.0 / runs as f64,
        own_cpu.as_secs_f64() * 1000.0 / runs as f64,
        cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    if shape == "callbacks" {
        report("webhook → next state, idle       ", idle);
        report(
            &format!("webhook → next state, {in_flight} in flight"),
            loaded,
        );
    }
    restate.kill().await.ok();
}

/// Prints as the pipeline bench does (`shared/benches/pipeline.rs`; this
/// crate stands outside the workspace, so the few lines are its own).
fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label}: median {:.2} ms, p99 {:.2} ms ({} resumes)",
        at(0.5),
        at(0.99),
        ms.len()
    );
}

/// Runs `runs` workflows to their end, `in_flight` at a time: the time it
/// took and every resume latency (ms).
async fn drive(
    http: &reqwest::Client,
    shape: &str,
    tag: &str,
    runs: usize,
    in_flight: usize,
) -> (Duration, Vec<f64>) {
    let start = Instant::now();
    let latencies: Vec<Vec<u64>> = futures::stream::iter(0..runs)
        .map(|i| one_run(http, shape, format!("{tag}-{i}")))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let ms = latencies
        .into_iter()
        .flatten()
        .map(|us| us as f64 / 1000.0)
        .collect();
    (elapsed, ms)
}

async fn post(http: &reqwest::Client, url: String, body: serde_json::Value) -> reqwest::Response {
    let answer = http.post(&url).json(&body).send().await.expect(&url);
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    answer
}

/// One run: submitted, each gate approved once it waits, its result read.
async fn one_run(http: &reqwest::Client, shape: &str, id: String) -> Vec<u64> {
    let base = format!("{INGRESS}/Aismr/{id}");
    let input = json!({ "project": "aismr", "shape": shape });
    post(http, format!("{base}/run/send"), input).await;
    for gate in ["ideate", "prepublish"] {
        post(http, format!("{base}/at_gate"), json!(gate)).await;
        post(http, format!("{base}/approve"), json!(gate)).await;
    }
    let url = format!("{INGRESS}/restate/workflow/Aismr/{id}/attach");
    let answer = http.get(&url).send().await.expect(&url);
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    let latencies: Vec<u64> = answer.json().await.expect("the run's latencies");
    let expected = if shape == "steps" { 0 } else { 3 };
    assert_eq!(latencies.len(), expected, "run {id}: {latencies:?}");
    latencies
}
