//! The durable local engine's throughput, on SQLite and (when reachable)
//! Postgres:
//! - whole `statemachine/aismr.asl.json` executions per second, every task
//!   answered at once by an in-process worker (gates included);
//! - durable state transitions per second (states entered, each persisted
//!   with its history before it is acted on), in those aismr executions and
//!   in a 50-state Pass chain.
//!
//! Run: `cargo bench -p myloware --bench engine`. `MW_BENCH_RUNS` (default
//! 2000) executions, `MW_BENCH_IN_FLIGHT` (default 256) at once.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use myloware::config::DatabaseConfig;
use myloware::engine::definitions::{self, LOCAL_TASK_QUEUE_URL};
use myloware::engine::{Engine, LocalEngine};
use serde_json::{json, Value};

mod common;
use common::{env_usize, on_each_backend};

/// The allocator the `mw` binary, which hosts the engine, uses.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let runs = env_usize("MW_BENCH_RUNS", 2000);
    let in_flight = env_usize("MW_BENCH_IN_FLIGHT", 256);
    on_each_backend(|name, config| async move {
        bench(name, &config, runs, in_flight).await;
    })
    .await;
}

async fn bench(backend_name: &str, config: &DatabaseConfig, runs: usize, in_flight: usize) {
    let backend = myloware::store::open(config).await.expect("open store");
    let engine = LocalEngine::start(backend.engine_store().expect("engine store"))
        .await
        .expect("engine");
    spawn_instant_worker(&engine).await;

    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachine/aismr.asl.json");
    let aismr =
        definitions::load(&root, &definitions::substitutions(LOCAL_TASK_QUEUE_URL)).expect("aismr");
    let machine = engine.register_state_machine("aismr", &aismr.text).unwrap();
    let (elapsed, entered) = run_many(
        &engine,
        &machine,
        runs,
        in_flight,
        json!({"run_id": "bench"}),
    )
    .await;
    println!(
        "{backend_name:<8} aismr executions     {:>8.0} /s   ({runs} runs, {in_flight} in flight, {:.2} s)",
        runs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "{backend_name:<8} aismr transitions    {:>8.0} /s   (states entered, each durable before acted on)",
        entered as f64 / elapsed.as_secs_f64()
    );

    let chain = pass_chain(50);
    let machine = engine.register_state_machine("chain", &chain).unwrap();
    let chain_runs = runs / 2;
    let (elapsed, entered) =
        run_many(&engine, &machine, chain_runs, in_flight, json!({"n": 1})).await;
    println!(
        "{backend_name:<8} pass-chain transitions {:>6.0} /s   ({chain_runs} runs of 50 states)",
        entered as f64 / elapsed.as_secs_f64()
    );
}

/// Starts `runs` executions, `in_flight` at a time, each waited for; returns
/// the elapsed time and the number of states entered.
async fn run_many(
    engine: &LocalEngine,
    machine: &str,
    runs: usize,
    in_flight: usize,
    input: Value,
) -> (Duration, usize) {
    let start = Instant::now();
    let arns: Vec<String> = futures::stream::iter(0..runs)
        .map(|_| {
            let engine = engine.clone();
            let input = input.clone();
            async move {
                let started = engine.start_execution(machine, None, &input).await.unwrap();
                let done = engine
                    .wait_for(&started.execution_arn, Duration::from_secs(120))
                    .await
                    .unwrap();
                assert_eq!(done.status, "SUCCEEDED", "{done:?}");
                started.execution_arn
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let sample = engine.get_execution_history(&arns[0]).await.unwrap();
    let entered = sample
        .iter()
        .filter(|e| e.event_type.ends_with("StateEntered"))
        .count();
    (elapsed, entered * runs)
}

/// Answers every task at once with a small result, then acknowledges it.
async fn spawn_instant_worker(engine: &LocalEngine) {
    let mut messages = engine.subscribe(LOCAL_TASK_QUEUE_URL).await.unwrap();
    let engine = Arc::new(engine.clone());
    tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                let body: Value = serde_json::from_str(&message.body).unwrap();
                let token = body["task_token"].as_str().unwrap();
                engine
                    .send_task_success(token, &json!({"ok": true}))
                    .await
                    .unwrap();
                engine.ack(&message.id).await.unwrap();
            });
        }
    });
}

fn pass_chain(n: usize) -> String {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let mut state = json!({"Type": "Pass", "ResultPath": format!("$.s{}", i % 4), "Result": i});
        if i + 1 < n {
            state["Next"] = json!(format!("S{}", i + 1));
        } else {
            state["End"] = json!(true);
        }
        states.insert(format!("S{i}"), state);
    }
    json!({"StartAt": "S0", "States": states}).to_string()
}
