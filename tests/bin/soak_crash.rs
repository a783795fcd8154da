//! The crash soak: N aismr runs through `mw serve` (a child process on the
//! embedded SQLite store and local engine), killed with SIGKILL K times at
//! random moments and started again. The mock providers run in this
//! process, outside what is killed, and keep calling back (retrying while
//! the stack is down) as real providers do; they count every submission
//! they accept. Gates are approved through the API while the stack is up,
//! and with `mw hitl approve` (which boots the stack in its own process for
//! the command) while it is down. Then what came of the runs:
//! - published;
//! - failed, each with its cause (one without a cause is a defect);
//! - stuck: not ended by the deadline;
//! - duplicated effects: submissions a provider accepted beyond the jobs the
//!   store registered (a clip, render or upload paid for twice), and results
//!   recorded twice.
//!
//! ```text
//! cargo build --release -p mw -p myloware-tests --bin mw --bin soak-crash
//! target/release/soak-crash [--runs 100] [--kills 10] [--concurrency 20] [--timeout 900]
//!     [--latency-ms 300] [--faults none] [--gap 2..8] [--seed N] [--mw target/release/mw]
//! ```
//! Exits 1 when a run is stuck, a failure names no cause, or an effect was
//! duplicated.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use myloware::domain::{RunId, RunStatus};
use myloware::providers::mock::MockProviders;
use myloware::store::RunFilter;
use myloware_tests::{config_from, live_stack_vars, mock_config, soak_report as soak, ApiClient};
use rand::{Rng, SeedableRng};
use serde_json::json;

struct Options {
    runs: usize,
    kills: usize,
    concurrency: usize,
    timeout: Duration,
    latency_ms: u64,
    faults: String,
    /// Seconds between kills, drawn from `gap.0..gap.1`.
    gap: (f64, f64),
    seed: u64,
    mw: PathBuf,
}

fn options() -> Result<Options> {
    let exe = std::env::current_exe().context("this binary's path")?;
    let mut o = Options {
        runs: 100,
        kills: 10,
        concurrency: 20,
        timeout: Duration::from_secs(900),
        latency_ms: 300,
        faults: "none".into(),
        gap: (2.0, 8.0),
        seed: rand::random(),
        mw: exe.with_file_name(format!("mw{}", std::env::consts::EXE_SUFFIX)),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => o.runs = value()?.parse()?,
            "--kills" => o.kills = value()?.parse()?,
            "--concurrency" => o.concurrency = value()?.parse()?,
            "--timeout" => o.timeout = Duration::from_secs(value()?.parse()?),
            "--latency-ms" => o.latency_ms = value()?.parse()?,
            "--faults" => o.faults = value()?,
            "--gap" => {
                let gap = value()?;
                let (low, high) = gap
                    .split_once("..")
                    .with_context(|| format!("--gap {gap:?}: expected LOW..HIGH seconds"))?;
                o.gap = (low.parse()?, high.parse()?);
                if !(0.0 < o.gap.0 && o.gap.0 < o.gap.1) {
                    bail!("--gap {gap:?}: expected 0 < LOW < HIGH");
                }
            }
            "--seed" => o.seed = value()?.parse()?,
            "--mw" => o.mw = value()?.into(),
            "-h" | "--help" => {
                println!(
                    "soak-crash [--runs N] [--kills K] [--concurrency N] [--timeout SECS] \
                     [--latency-ms MS] [--faults MOCK_FAULTS] [--gap LOW..HIGH] [--seed N] [--mw PATH]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if !o.mw.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p mw`, or name it with --mw",
            o.mw.display()
        );
    }
    Ok(o)
}

/// `mw serve` as a child process that can be killed and started again.
struct Server {
    mw: PathBuf,
    dir: PathBuf,
    vars: std::collections::HashMap<String, String>,
    port: u16,
    child: Mutex<Option<Child>>,
    starts: Mutex<usize>,
}

impl Server {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&self) -> Result<()> {
        let mut starts = self.starts.lock().expect("starts");
        *starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("serve-{starts}.log")))?;
        let child = Command::new(&self.mw)
            .args(["serve", "--port", &self.port.to_string()])
            .current_dir(&self.dir)
            .envs(&self.vars)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", self.mw.display()))?;
        *self.child.lock().expect("child") = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut.
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("child").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `mw hitl approve RUN GATE` with the stack down: the command boots
    /// the stack in its own process. Answers whether it succeeded.
    fn approve_offline(&self, run: &str, gate: &str) -> bool {
        Command::new(&self.mw)
            .args(["hitl", "approve", run, gate])
            .current_dir(&self.dir)
            .envs(&self.vars)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Gates seen waiting and not yet known approved: `(run id, gate)`.
type Waiting = Arc<Mutex<BTreeSet<(String, String)>>>;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let o = options()?;
    let mut mock_config = mock_config(Duration::from_millis(o.latency_ms));
    let faults = if o.faults == "none" { "" } else { &o.faults };
    mock_config.faults = faults
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--faults {:?}: {e}", o.faults))?;
    let mocks = MockProviders::start(mock_config)
        .await
        .context("starting the mock providers")?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let vars = live_stack_vars(
        dir.path(),
        &mocks,
        &base,
        &[
            ("RECONCILE_AFTER_SECS", "5"),
            // Past a restart and the callbacks' retries meanwhile.
            ("RECONCILE_IN_DOUBT_SECS", "30"),
            ("RECONCILE_INTERVAL_SECS", "1"),
        ],
    );
    let config = config_from(&vars);
    println!(
        "soak-crash: {} aismr runs, {} at once, {} kills {:.1}–{:.1} s apart, faults {}, \
         mock latency {} ms, seed {}",
        o.runs, o.concurrency, o.kills, o.gap.0, o.gap.1, o.faults, o.latency_ms, o.seed
    );
    let server = Arc::new(Server {
        mw: o.mw.clone(),
        dir: dir.path().to_owned(),
        vars,
        port,
        child: Mutex::new(None),
        starts: Mutex::new(0),
    });
    server.start()?;
    myloware_tests::wait_healthy(&server.base()).await;

    let client = ApiClient::new(&base, "test-api-key-0123456789");
    let started = Instant::now();
    let deadline = started + o.timeout;
    let waiting: Waiting = Arc::default();
    let (finished_tx, finished) = tokio::sync::watch::channel(false);
    let killer = tokio::spawn(kill_at_random(
        server.clone(),
        waiting.clone(),
        o.kills,
        o.gap,
        o.seed,
        finished,
    ));
    let limit = Arc::new(tokio::sync::Semaphore::new(o.concurrency));
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..o.runs {
        let (client, limit, waiting) = (client.clone(), limit.clone(), waiting.clone());
        runs.spawn(async move {
            let _slot = limit.acquire_owned().await;
            drive(&client, &waiting, deadline).await
        });
    }
    while let Some(done) = runs.join_next().await {
        done??;
    }
    let _ = finished_tx.send(true);
    let kills = killer.await?;
    // Late callbacks may still come; let them, so their effects are counted.
    tokio::time::sleep(
        myloware::providers::mock::faults::DEFAULT_LATE_DELAY + Duration::from_secs(1),
    )
    .await;
    server.kill();
    let elapsed = started.elapsed();

    let store = myloware::store::open(&config.database)
        .await
        .context("opening the soak's store")?
        .store;
    let mut ids: Vec<RunId> = Vec::new();
    let mut filter = RunFilter {
        limit: Some(RunFilter::MAX_LIMIT),
        ..RunFilter::default()
    };
    loop {
        let page = store.list_runs(&filter).await?;
        ids.extend(page.runs.iter().map(|r| r.run_id));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    let report = soak::count(store.as_ref(), &mocks, &ids).await?;
    println!(
        "finished in {:.1} s; {kills} kills (SIGKILL) and restarts; {} runs in the store \
         (a start request cut by a kill is sent again with its Idempotency-Key: no second run)",
        elapsed.as_secs_f64(),
        ids.len()
    );
    report.print();
    soak::print_mocks(&mocks);
    mocks.shutdown().await;
    // A start sent again made no second run.
    let ok = report.stuck == 0
        && report.failed_without_cause == 0
        && report.duplicated() == 0
        && ids.len() == o.runs;
    if !ok {
        println!("logs kept in {}", dir.keep().display());
        std::process::exit(1);
    }
    Ok(())
}

/// Kills the stack `kills` times, `gap` seconds apart (drawn at random),
/// approving some waiting gates with the CLI while it is down; stops early
/// once every run has ended. Answers how many kills it made.
async fn kill_at_random(
    server: Arc<Server>,
    waiting: Waiting,
    kills: usize,
    gap: (f64, f64),
    seed: u64,
    mut finished: tokio::sync::watch::Receiver<bool>,
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    for kill in 1..=kills {
        let wait = Duration::from_secs_f64(rng.random_range(gap.0..gap.1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = finished.wait_for(|f| *f) => return kill - 1,
        }
        server.kill();
        let at = started.elapsed().as_secs_f64();
        // Gates decided while nothing serves: `mw hitl approve` boots the
        // stack in its own process for the command.
        let offline: Vec<(String, String)> = {
            let waiting = waiting.lock().expect("waiting");
            waiting
                .iter()
                .take(rng.random_range(0..=3))
                .cloned()
                .collect()
        };
        let mut approved = 0;
        for (run, gate) in &offline {
            let server = server.clone();
            let (run, gate) = (run.clone(), gate.clone());
            if tokio::task::spawn_blocking(move || server.approve_offline(&run, &gate))
                .await
                .unwrap_or(false)
            {
                approved += 1;
            }
        }
        let down = Duration::from_secs_f64(rng.random_range(0.0..1.5));
        tokio::time::sleep(down).await;
        if let Err(e) = server.start() {
            eprintln!("soak-crash: could not start the stack again: {e:#}");
            return kill;
        }
        myloware_tests::wait_healthy(&server.base()).await;
        println!(
            "  kill {kill} at {at:.1} s: down {:.1} s, {approved} of {} gates approved with `mw hitl approve` meanwhile",
            started.elapsed().as_secs_f64() - at,
            offline.len()
        );
    }
    kills
}

/// Starts one run, approves its gates as they come (noting them in
/// `waiting` so that they can be approved while the stack is down), and
/// follows it to its end or the deadline. Requests that find the stack down
/// are tried again.
async fn drive(client: &ApiClient, waiting: &Waiting, deadline: Instant) -> Result<()> {
    let pause = || tokio::time::sleep(Duration::from_millis(300));
    // One name for this start, however often it is sent.
    let key = uuid::Uuid::new_v4().to_string();
    let id = loop {
        match client
            .try_post_once("/v1/runs", json!({ "project": "aismr" }), Some(&key))
            .await
        {
            Ok((201, run)) => break run["run_id"].as_str().context("run id")?.to_owned(),
            Ok((status, body)) if status < 500 => bail!("starting a run answered {status}: {body}"),
            _ if Instant::now() > deadline => bail!("the stack never took a run"),
            _ => pause().await,
        }
    };
    let mut seen = String::from("pending");
    while Instant::now() < deadline {
        // A gate left waiting is looked at again within a second.
        let wait = if seen == "awaiting_approval" { 1 } else { 5 };
        let Ok((200, run)) = client
            .try_get(&format!("/v1/runs/{id}?status={seen}&wait={wait}"))
            .await
        else {
            pause().await;
            continue;
        };
        let status = run["status"].as_str().unwrap_or_default().to_owned();
        if status == "awaiting_approval" {
            let Ok((200, evidence)) = client.try_get(&format!("/v1/runs/{id}/evidence")).await
            else {
                pause().await;
                continue;
            };
            let gates = soak::waiting_gates(&evidence);
            for gate in gates {
                let key = (id.clone(), gate.clone());
                // Half the gates wait a moment for their human, so that some
                // are still waiting when the stack is killed (and are then
                // approved with the CLI while it is down).
                let fresh = waiting.lock().expect("waiting").insert(key.clone());
                if fresh && rand::random::<bool>() {
                    continue;
                }
                if let Ok((200, _)) = client
                    .try_post(&format!("/v1/hitl/approve/{id}/{gate}"), json!({}))
                    .await
                {
                    waiting.lock().expect("waiting").remove(&key);
                }
            }
        }
        if status.parse::<RunStatus>().is_ok_and(|s| s.is_terminal()) {
            break;
        }
        seen = status;
    }
    waiting
        .lock()
        .expect("waiting")
        .retain(|(run, _)| run != &id);
    Ok(())
}
