//! The AWS-path fault soak: N aismr runs through the distributed stack —
//! Step Functions, SQS and DynamoDB on moto's server — with a fault proxy
//! (`myloware_tests::faults`) between our code and moto that throttles calls,
//! fails them with 5xx, and loses the answers of calls that took effect, at
//! the rates `--faults` sets. Everything of ours runs in this process and
//! reaches AWS only through the proxy: the API (`Stack` with
//! `ENGINE=stepfunctions STORE=dynamodb`), the SQS pollers of the task queue,
//! its dead-letter queue and the callback queue (what `mw worker` runs, with
//! the worker and callbacks functions' handlers), and the reconciler. moto's
//! own Step Functions interpreter sends the task messages to SQS directly.
//!
//! Then it prints what came of the runs (as the embedded soak does:
//! published, failed with a cause, stuck, duplicated effects counted by the
//! mock providers and in the store) and the faults injected per operation.
//!
//! ```text
//! scripts/moto.sh start
//! cargo run --release -p myloware-tests --bin soak-aws -- [--runs 50]
//!     [--faults 'throttle=0.2,lost=0.05,dynamodb:lost=0'] [--concurrency 8] [--timeout 900]
//!     [--latency-ms 50] [--pollers 2] [--provider-faults MOCK_FAULTS]
//! ```
//! moto's endpoint: `MW_TEST_AWS_ENDPOINT`, else `http://127.0.0.1:$MOTO_PORT`.
//! Gates are approved as soon as they wait. Exits 1 when a run is stuck, a
//! failure names no cause, or an effect was duplicated.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use myloware::domain::{RunId, RunStatus};
use myloware::pipeline::callbacks::Callbacks;
use myloware::pipeline::worker::{DeadLetters, Worker};
use myloware::queue::sqs::SqsQueue;
use myloware::queue::SharedHandler;
use myloware::store::RunFilter;
use myloware::wiring::{Stack, StackOptions};
use myloware_tests::aws::{env_for, Emulator};
use myloware_tests::faults::{FaultProxy, FaultRules};
use myloware_tests::soak_report;
use myloware_tests::{config_from, stack_vars, ApiClient};
use serde_json::json;

struct Options {
    runs: usize,
    faults: String,
    concurrency: usize,
    timeout: Duration,
    latency_ms: u64,
    pollers: usize,
    provider_faults: String,
}

fn options() -> Result<Options> {
    let mut o = Options {
        runs: 50,
        faults: "throttle=0.2,lost=0.05,dynamodb:lost=0".into(),
        concurrency: 8,
        timeout: Duration::from_secs(900),
        latency_ms: 50,
        pollers: 2,
        provider_faults: String::new(),
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
            "--pollers" => o.pollers = value()?.parse()?,
            "--provider-faults" => o.provider_faults = value()?,
            "-h" | "--help" => {
                println!(
                    "soak-aws [--runs N] [--faults '[scope:]throttle|5xx|lost=RATE,…'] \
                     [--concurrency N] [--timeout SECS] [--latency-ms MS] [--pollers N] \
                     [--provider-faults MOCK_FAULTS]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = options()?;
    let rules = FaultRules::parse(&o.faults).map_err(anyhow::Error::msg)?;
    let moto = myloware_tests::aws::endpoint();
    // Every AWS client of this process reaches moto through the proxy: the
    // SDK reads its endpoint from the environment, once, so it is set before
    // anything runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
    let proxy_url = format!("http://{}", listener.local_addr()?);
    for (k, v) in env_for(&proxy_url) {
        std::env::set_var(k, v);
    }
    // Warnings and errors on stderr (`RUST_LOG` for more): why a run failed.
    myloware::telemetry::init("warn", None);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ok = runtime.block_on(soak(o, rules, listener, moto))?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn soak(
    o: Options,
    rules: FaultRules,
    listener: std::net::TcpListener,
    moto: String,
) -> Result<bool> {
    Emulator::at(&moto).await?; // fails early, saying how to start it
    let proxy = FaultProxy::start(listener, &moto, rules);
    let emulator = Emulator {
        sdk: myloware_tests::aws::sdk_config(&proxy.url).await,
        endpoint: proxy.url.clone(),
    };
    let dir = tempfile::tempdir()?;
    let unique = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (tasks, _) = emulator.queue_with_dlq("soak-tasks", 5).await;
    let (callbacks, _) = emulator.queue_with_dlq("soak-callbacks", 5).await;
    let prefix = format!("soak-{unique}-");
    let latency = o.latency_ms.to_string();
    let mut vars = stack_vars(
        dir.path(),
        &[
            ("ENGINE", "stepfunctions"),
            ("STORE", "dynamodb"),
            ("DYNAMODB_TABLE", &format!("mw-soak-{unique}")),
            ("TASK_QUEUE_URL", &tasks),
            ("CALLBACK_QUEUE_URL", &callbacks),
            ("STATE_MACHINE_PREFIX", &prefix),
            ("MOCK_LATENCY_MS", &latency),
            ("MOCK_FAULTS", &o.provider_faults),
            ("RECONCILE_AFTER_SECS", "3"),
            ("RECONCILE_IN_DOUBT_SECS", "20"),
            ("RECONCILE_INTERVAL_SECS", "1"),
        ],
    );
    for (k, v) in env_for(&proxy.url) {
        vars.insert(k.to_owned(), v);
    }
    let config = config_from(&vars);
    emulator.deploy_state_machines(&prefix, &tasks).await?;
    let stack = Stack::start(&config, StackOptions::ephemeral())
        .await
        .context("starting the stack")?;
    let pipeline = stack.pipeline.clone();
    let mocks = stack.mocks.as_ref().context("mock providers")?;

    // What `mw worker` runs: the pollers, and the reconciler.
    let sqs = SqsQueue::new(&myloware::aws::sdk_config().await);
    let dlq = sqs
        .dead_letter_queue(&tasks)
        .await?
        .context("the task queue's dead-letter queue")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut consumers = Vec::new();
    let worker: SharedHandler = Arc::new(Worker {
        pipeline: pipeline.clone(),
    });
    let callbacks_handler: SharedHandler = Arc::new(Callbacks {
        pipeline: pipeline.clone(),
    });
    let dead: SharedHandler = Arc::new(DeadLetters {
        pipeline: pipeline.clone(),
    });
    for _ in 0..o.pollers.max(1) {
        consumers.push(sqs.consume(&tasks, Arc::clone(&worker), stopped.clone()));
        consumers.push(sqs.consume(&callbacks, Arc::clone(&callbacks_handler), stopped.clone()));
    }
    consumers.push(sqs.consume(&dlq, dead, stopped.clone()));
    let reconciler = tokio::spawn(pipeline.clone().run_reconciler(stopped.clone()));

    println!(
        "soak-aws: {} aismr runs, {} at once, AWS faults {:?} (proxy {} → moto {}), \
         provider faults {:?}, mock latency {} ms",
        o.runs, o.concurrency, o.faults, proxy.url, moto, o.provider_faults, o.latency_ms
    );
    proxy.enable(true);
    let client = ApiClient::new(&stack.base_url, vars["API_KEY"].as_str());
    let started = Instant::now();
    let deadline = started + o.timeout;
    let limit = Arc::new(tokio::sync::Semaphore::new(o.concurrency.max(1)));
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..o.runs {
        let (client, limit) = (client.clone(), limit.clone());
        runs.spawn(async move {
            let _slot = limit.acquire_owned().await;
            drive(&client, deadline).await
        });
    }
    let mut ids = Vec::new();
    let mut refused = Vec::new();
    while let Some(done) = runs.join_next().await {
        match done? {
            Ok(id) => ids.push(id),
            Err(e) => refused.push(e.to_string()),
        }
    }
    // Late callbacks and re-delivered messages may still come; let them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.enable(false);
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    for consumer in consumers {
        let _ = consumer.await;
    }
    let _ = reconciler.await;

    // Runs a retried start request created (its first answer lost; none
    // should, as each start carries an Idempotency-Key): counted too, so
    // their provider work is not mistaken for a duplicate.
    let mut all = BTreeSet::new();
    let mut after = None;
    loop {
        let page = pipeline
            .store
            .list_runs(&RunFilter {
                limit: Some(RunFilter::MAX_LIMIT),
                after,
                ..RunFilter::default()
            })
            .await?;
        all.extend(page.runs.iter().map(|r| r.run_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let asked: BTreeSet<RunId> = ids.iter().copied().collect();
    let extra: Vec<RunId> = all.difference(&asked).copied().collect();
    let counted: Vec<RunId> = all.into_iter().collect();
    let report = soak_report::count(pipeline.store.as_ref(), mocks, &counted).await?;
    println!("finished in {:.1} s", elapsed.as_secs_f64());
    report.print();
    println!(
        "runs created by a retried start request (its first answer lost): {}",
        extra.len()
    );
    println!("start requests refused for good: {}", refused.len());
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in &refused {
        *reasons.entry(soak_report::cause(r)).or_default() += 1;
    }
    for (reason, n) in reasons {
        println!("    {n:>4} × {reason}");
    }
    soak_report::print_mocks(mocks);
    proxy.counts().print();
    let ok = report.ok() && refused.is_empty() && extra.is_empty() && ids.len() == o.runs;
    println!("{}", if ok { "OK" } else { "NOT OK" });
    stack.shutdown().await;
    Ok(ok)
}

/// Starts one run (trying again while the API answers 5xx, as a client
/// should, after its `Retry-After`), approves its gates as they come, and
/// follows it to its end or the deadline; answers its id.
async fn drive(client: &ApiClient, deadline: Instant) -> Result<RunId> {
    let mut tries = 0;
    // One name for this start, however often it is sent.
    let key = uuid::Uuid::new_v4().to_string();
    let run = loop {
        let (status, run) = client
            .try_post_once("/v1/runs", json!({ "project": "aismr" }), Some(&key))
            .await?;
        match status {
            201 | 202 => break run,
            500..=599 if tries < 20 && Instant::now() < deadline => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500 * tries.min(4))).await;
            }
            _ => bail!("starting a run answered {status}: {run}"),
        }
    };
    let id: RunId = run["run_id"]
        .as_str()
        .context("run id")?
        .parse()
        .map_err(|e| anyhow::anyhow!("run id: {e}"))?;
    let mut seen = String::from("pending");
    while Instant::now() < deadline {
        let (code, run) = client
            .get(&format!("/v1/runs/{id}?status={seen}&wait=5"))
            .await;
        if code != 200 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let status = run["status"].as_str().unwrap_or_default().to_owned();
        if status == "awaiting_approval" {
            let (code, evidence) = client.get(&format!("/v1/runs/{id}/evidence")).await;
            if code != 200 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let waiting = soak_report::waiting_gates(&evidence);
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
