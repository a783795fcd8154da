//! Whole aismr runs through real HTTP on the embedded stack (SQLite): every
//! provider submission, callback and confirmation a real request to the mock
//! providers (zero latency), gates approved by the client as soon as they
//! wait: each client waits on its run's status (`GET /v1/runs/{id}?status=…
//! &wait=…`). Prints aggregate runs per second with 64 runs in flight, the
//! latency from a webhook's arrival to the next state entered (median, p99),
//! idle (one run at a time) and loaded (64 in flight), and the CPU time
//! the process (client and server) spent per run in the loaded phase: on a
//! shared machine whose speed varies, a steadier figure for comparing two
//! builds than runs per second.
//!
//! Run: `cargo bench -p myloware --bench pipeline`. `MW_BENCH_RUNS` (default
//! 256) runs in the loaded phase, `MW_BENCH_IN_FLIGHT` (default 64),
//! `MW_BENCH_DIR` a folder to keep the database in (default: a temporary one,
//! removed at the end), `MW_BENCH_POLL_MS` clients that poll their run that
//! often instead of waiting on it.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use myloware::pipeline::Evidence;
use myloware::wiring::{Stack, StackOptions};
use serde_json::{json, Value};

mod common;
use common::env_usize;

/// The allocator the `mw` binary, which hosts the stack, uses.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const KEY: &str = "bench-api-key-0123456789";
/// How long one request waits for a run's status to change.
const WAIT_S: u32 = 5;

#[tokio::main]
async fn main() {
    let runs = env_usize("MW_BENCH_RUNS", 256);
    let in_flight = env_usize("MW_BENCH_IN_FLIGHT", 64);
    let poll = std::env::var("MW_BENCH_POLL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let temporary = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("MW_BENCH_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => temporary.path().to_owned(),
    };
    let vars: HashMap<&str, String> = HashMap::from([
        ("MYLOWARE_HOME", dir.join("home").display().to_string()),
        (
            "DATABASE_URL",
            format!("sqlite:{}", dir.join("mw.db").display()),
        ),
        ("API_KEY", KEY.to_owned()),
        ("HITL_SECRET", "bench-hitl-secret-0123456789".to_owned()),
        (
            "KIEAI_WEBHOOK_SECRET",
            "bench-kieai-secret-0123456789".to_owned(),
        ),
        (
            "UPLOAD_POST_WEBHOOK_SECRET",
            "bench-upload-secret-0123456789".to_owned(),
        ),
        ("MOCK_LATENCY_MS", "0".to_owned()),
    ]);
    let config = myloware::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let stack = Stack::start(&config, StackOptions::ephemeral())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let base = stack.base_url.clone();

    let idle = 16;
    let ids = drive(&http, &base, idle, 1, poll).await;
    let idle_latencies = resume_latencies(&http, &base, &ids).await;

    let (start, cpu_before) = (Instant::now(), cpu_time());
    let ids = drive(&http, &base, runs, in_flight, poll).await;
    let elapsed = start.elapsed();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let loaded_latencies = resume_latencies(&http, &base, &ids).await;

    println!(
        "aismr runs through HTTP: {:.0} runs/s ({runs} runs, {in_flight} in flight, {:.2} s; 12 clips each, zero provider latency)",
        runs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU per run, {in_flight} in flight: {:.1} ms (user+system of the whole process; {:.2} of {} cores busy)",
            cpu.as_secs_f64() * 1000.0 / runs as f64,
            cpu.as_secs_f64() / elapsed.as_secs_f64(),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }
    report("webhook → next state, idle       ", idle_latencies);
    report("webhook → next state, 64 in flight", loaded_latencies);
    stack.shutdown().await;
}

/// The CPU time this process (every thread) has used so far, user and
/// system, from `/proc/self/stat` (Linux; counted in 10 ms ticks).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis, from the state
    // (field 3): utime and stime are fields 14 and 15.
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    Some(Duration::from_millis((user + system) * 10))
}

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

/// Runs `runs` aismr runs to the end, `in_flight` at a time; their ids.
/// Each client is a task on the runtime's workers, as the stack's own work
/// is: polled on the bench's main thread instead, they woke that thread
/// (a third busy thread on two cores) about 1,500 times a second, each time
/// preempting a worker in the middle of the stack's work.
async fn drive(
    http: &reqwest::Client,
    base: &str,
    runs: usize,
    in_flight: usize,
    poll: Option<Duration>,
) -> Vec<String> {
    futures::stream::iter(0..runs)
        .map(|_| tokio::spawn(one_run(http.clone(), base.to_owned(), poll)))
        .buffer_unordered(in_flight)
        .map(|client| client.expect("a bench client panicked"))
        .collect()
        .await
}

/// The JSON answer to `request`, sent with the API key.
async fn answer<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    request
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One run to its end: its client waits for each change of its status (or
/// polls every `poll`) and approves each gate as it waits.
async fn one_run(http: reqwest::Client, base: String, poll: Option<Duration>) -> String {
    let run: Value = answer(
        http.post(format!("{base}/v1/runs"))
            .json(&json!({ "project": "aismr" })),
    )
    .await;
    let id = run["run_id"].as_str().unwrap().to_owned();
    let mut gates = ["ideate", "prepublish"].into_iter().peekable();
    let mut seen: Option<String> = None;
    loop {
        let url = match (&seen, poll) {
            (Some(status), None) => format!("{base}/v1/runs/{id}?status={status}&wait={WAIT_S}"),
            _ => format!("{base}/v1/runs/{id}"),
        };
        let run: Value = answer(http.get(url)).await;
        let status = run["status"].as_str().unwrap().to_owned();
        match status.as_str() {
            "published" => return id,
            "awaiting_approval" => {
                let Some(gate) = gates.peek() else {
                    panic!("run {id} waits at a third gate")
                };
                let answer = http
                    .post(format!("{base}/v1/hitl/approve/{id}/{gate}"))
                    .header("x-api-key", KEY)
                    .send()
                    .await
                    .unwrap();
                let approved = answer.status().is_success();
                // Read to the end, so the connection goes back to the pool.
                let _ = answer.bytes().await;
                if approved {
                    gates.next();
                } else {
                    // Not decidable yet: look again shortly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    seen = None;
                    continue;
                }
            }
            "running" | "pending" => {}
            other => panic!("run {id} ended {other}: {}", run["error"]),
        }
        match poll {
            Some(every) => tokio::time::sleep(every).await,
            None => seen = Some(status),
        }
    }
}

/// For each run: from the arrival of the webhook that settles a persona's
/// last job to the next state entered.
async fn resume_latencies(http: &reqwest::Client, base: &str, ids: &[String]) -> Vec<f64> {
    let mut out = Vec::new();
    for id in ids {
        let e: Evidence = answer(http.get(format!("{base}/v1/runs/{id}/evidence"))).await;
        for (provider, next_state) in [
            ("kieai", "Alex"),
            ("shotstack", "GatePrepublish"),
            ("upload-post", "RecordPublished"),
        ] {
            let arrived = e
                .webhook_events
                .iter()
                .filter(|w| {
                    w.provider.as_str() == provider
                        && w.status.as_str() == "processed"
                        && w.error.is_none()
                })
                .map(|w| w.created_at)
                .max();
            let entered = e.history.iter().find(|h| {
                h.event_type == "TaskStateEntered"
                    && h.details.get("name").and_then(Value::as_str) == Some(next_state)
            });
            if let (Some(arrived), Some(entered)) = (arrived, entered) {
                out.push(
                    (entered.timestamp - arrived)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0,
                );
            }
        }
    }
    out
}
