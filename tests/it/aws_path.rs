//! The distributed path on the AWS emulator: `mw serve` with
//! `ENGINE=stepfunctions STORE=dynamodb`, the persona graphs deployed to the emulator's
//! Step Functions (whose interpreter executes them), `mw worker` consuming
//! its SQS queues, the mock providers calling back through the webhook
//! route — a whole aismr run, compared with the same run on the embedded
//! stack. Also: failed SQS messages reach the dead-letter queue and
//! `mw dlq` shows and replays them.
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use myloware::domain::RunStatus;
use myloware::pipeline::Evidence;
use myloware::providers::mock::MockProviders;
use myloware::queue::sqs::SqsQueue;
use myloware::queue::{HandlerError, MessageHandler};
use myloware_tests::aws::{env_for, Emulator};
use myloware_tests::{drive, stack_vars, ApiClient, TestStack};
use serde_json::{json, Value};

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mw(vars: &BTreeMap<String, String>, dir: &std::path::Path, args: &[&str], log: &str) -> Proc {
    let log = std::fs::File::create(dir.join(log)).expect("log file");
    Proc(
        Command::new(crate::cli::mw_binary())
            .args(args)
            .current_dir(dir)
            .envs(vars)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mw"),
    )
}

fn mw_output(vars: &BTreeMap<String, String>, dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(crate::cli::mw_binary())
        .args(args)
        .current_dir(dir)
        .envs(vars)
        .env_remove("RUST_LOG")
        .output()
        .expect("run mw");
    assert!(
        out.status.success(),
        "mw {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The variables of a stack on the emulator: the embedded stack's secrets,
/// Step Functions, SQS queues with dead-letter queues, state machines of
/// the test's own, and the store.
async fn aws_vars(emulator: &Emulator, dir: &std::path::Path) -> BTreeMap<String, String> {
    let unique = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (tasks, _) = emulator.queue_with_dlq("mw-tasks", 3).await;
    let (callbacks, _) = emulator.queue_with_dlq("mw-callbacks", 3).await;
    let mut vars: BTreeMap<String, String> = stack_vars(dir, &[]).into_iter().collect();
    vars.extend(
        env_for(&emulator.endpoint)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    for (k, v) in [
        ("ENGINE", "stepfunctions".to_owned()),
        ("STORE", "dynamodb".to_owned()),
        ("DYNAMODB_TABLE", format!("mw-e2e-{unique}")),
        ("TASK_QUEUE_URL", tasks),
        ("CALLBACK_QUEUE_URL", callbacks),
        ("STATE_MACHINE_PREFIX", format!("e2e-{unique}-")),
        (
            "STATE_MACHINE_ROLE_ARN",
            format!(
                "arn:aws:iam::{}:role/mw-states",
                myloware_tests::aws::ACCOUNT
            ),
        ),
        ("MOCK_LATENCY_MS", "20".to_owned()),
    ] {
        vars.insert(k.to_owned(), v);
    }
    vars
}

/// What two runs of the same project must share: how many artifacts of
/// each type, the personas in order, the gates and how they were decided,
/// the provider jobs by provider and status, the states the graph passed.
fn shape(e: &Evidence) -> Value {
    let mut artifacts = BTreeMap::new();
    for a in &e.artifacts {
        *artifacts.entry(a.artifact_type.to_string()).or_insert(0) += 1;
    }
    let personas: Vec<String> = e
        .artifacts
        .iter()
        .filter(|a| a.artifact_type.as_str() == "persona.completed")
        .filter_map(|a| a.persona.as_ref().map(|p| p.to_string()))
        .collect();
    let mut jobs = BTreeMap::new();
    for j in &e.provider_jobs {
        *jobs
            .entry(format!("{} {}", j.provider, j.status))
            .or_insert(0) += 1;
    }
    let gates: Vec<String> = e
        .hitl_requests
        .iter()
        .map(|g| format!("{} {:?}", g.gate, g.decision))
        .collect();
    let states: Vec<String> = e
        .history
        .iter()
        .filter(|h| h.event_type.ends_with("StateEntered"))
        .filter_map(|h| h.details["name"].as_str().map(str::to_owned))
        .collect();
    json!({
        "status": e.run.status,
        "artifacts": artifacts,
        "personas": personas,
        "jobs": jobs,
        "gates": gates,
        "states": states,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_aismr_run_on_step_functions_and_sqs_matches_the_embedded_stack() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut vars = aws_vars(&emulator, dir.path()).await;
    mw_output(&vars, dir.path(), &["db", "migrate"]);
    let deployed = mw_output(&vars, dir.path(), &["statemachine", "deploy"]);
    assert!(
        deployed.contains("STATE_MACHINE_ARNS=test-video-gen=arn:aws:states:"),
        "{deployed}"
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _serve = mw(
        &vars,
        dir.path(),
        &["serve", "--port", &port.to_string()],
        "serve.log",
    );
    myloware_tests::wait_healthy(&base).await;
    vars.insert("PUBLIC_BASE_URL".into(), base.clone());
    let _worker = mw(&vars, dir.path(), &["worker"], "worker.log");

    let client = ApiClient::new(&base, "test-api-key-0123456789");
    let on_aws = drive(&client, "aismr", 120).await;
    let logs = || {
        format!(
            "serve: {}\nworker: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default()
        )
    };
    assert_eq!(on_aws.run.status, RunStatus::Published, "{}", logs());
    let execution = on_aws.run.execution_id.clone().unwrap();
    assert!(
        execution.starts_with("arn:aws:states:us-east-1:"),
        "executed by Step Functions: {execution}"
    );
    assert_eq!(
        crate::pipeline::count(&on_aws, "kieai.clip"),
        12,
        "twelve clips"
    );

    let embedded = TestStack::start(&[("MOCK_LATENCY_MS", "20")]).await;
    let on_embedded = drive(&embedded.client, "aismr", 60).await;
    assert_eq!(shape(&on_aws), shape(&on_embedded), "{}", logs());
    crate::cost::same_cost_on_aws_and_embedded(&on_aws, &on_embedded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_callback_is_recovered_by_the_reconciler_on_the_aws_path() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut vars = aws_vars(&emulator, dir.path()).await;
    for (k, v) in [
        ("MOCK_FAULTS", "lost=1"),
        ("RECONCILE_AFTER_SECS", "0.5"),
        ("RECONCILE_INTERVAL_SECS", "0.5"),
    ] {
        vars.insert(k.into(), v.into());
    }
    // The worker submits the jobs, and its reconciler asks about them.
    let (client, _procs) = up(&mut vars, dir.path()).await;
    let e = drive(&client, "test-video-gen", 120).await;
    assert_eq!(e.run.status, RunStatus::Published, "{}", logs(dir.path()));
    assert!(e.webhook_events.is_empty(), "every callback was lost");
    assert!(e.provider_jobs.len() >= 4);
    for job in &e.provider_jobs {
        assert_eq!(
            job.settled_by,
            Some(myloware::domain::SettledBy::Poll),
            "{job:?}"
        );
    }
}

/// `mw db migrate` and `mw statemachine deploy` on the emulator, then
/// `mw serve` and `mw worker` (killed when the answer is dropped): the
/// API's client, and the processes.
async fn up(vars: &mut BTreeMap<String, String>, dir: &std::path::Path) -> (ApiClient, [Proc; 2]) {
    mw_output(vars, dir, &["db", "migrate"]);
    mw_output(vars, dir, &["statemachine", "deploy"]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Where the worker's jobs call back, and where the stacks register the
    // upload-post webhook: `mw serve`'s API.
    vars.insert("PUBLIC_BASE_URL".into(), base.clone());
    vars.insert("WEBHOOK_BASE_URL".into(), base.clone());
    let serve = mw(
        vars,
        dir,
        &["serve", "--port", &port.to_string()],
        "serve.log",
    );
    myloware_tests::wait_healthy(&base).await;
    let worker = mw(vars, dir, &["worker"], "worker.log");
    (
        ApiClient::new(&base, "test-api-key-0123456789"),
        [serve, worker],
    )
}

/// What `up`'s processes logged.
fn logs(dir: &std::path::Path) -> String {
    format!(
        "serve: {}\nworker: {}",
        std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default()
    )
}

/// A run failed at Alex on Step Functions (Shotstack failing every render
/// until fixed) is redriven through the API: a new execution of the same
/// run, starting at Alex, that publishes with no new kie.ai job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_failed_at_alex_is_redriven_on_step_functions() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut vars = aws_vars(&emulator, dir.path()).await;
    // The mock providers in this process, so the test can fix Shotstack
    // while the worker (another process) talks to it.
    let mocks = MockProviders::start(myloware_tests::mock_config(Duration::from_millis(20)))
        .await
        .unwrap();
    for (k, v) in [
        ("PROVIDERS_MODE", "live"),
        ("KIEAI_BASE_URL", mocks.kieai_url.as_str()),
        ("SHOTSTACK_BASE_URL", mocks.shotstack_url.as_str()),
        ("UPLOAD_POST_BASE_URL", mocks.upload_post_url.as_str()),
        ("KIEAI_API_KEY", "k-kieai"),
        ("SHOTSTACK_API_KEY", "k-shotstack"),
        ("UPLOAD_POST_API_KEY", "k-upload"),
    ] {
        vars.insert(k.into(), v.into());
    }
    mocks.shotstack.fail_every_job(true);
    let (client, _procs) = up(&mut vars, dir.path()).await;
    let failed = drive(&client, "test-video-gen", 120).await;
    assert_eq!(failed.run.status, RunStatus::Failed, "{}", logs(dir.path()));
    let cause = failed.run.error.clone().unwrap_or_default();
    assert!(cause.contains("persona alex"), "{cause}");
    mocks.shotstack.fail_every_job(false);
    let clips = mocks.kieai.snapshot().accepted;
    assert_eq!(mocks.shotstack.snapshot().accepted, 1);

    // Redriven once the failed execution has ended (409 until then).
    let id = failed.run.run_id.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = client
            .post(&format!("/v1/runs/{id}/redrive"), json!({}))
            .await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 409, "{body}");
        assert!(body.to_string().contains("still ending"), "{body}");
        assert!(Instant::now() < deadline, "never redriven: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let e = loop {
        let (status, body) = client.get(&format!("/v1/runs/{id}/evidence")).await;
        assert_eq!(status, 200, "{body}");
        let e: Evidence = serde_json::from_value(body).unwrap();
        if e.run.status.is_terminal() {
            break e;
        }
        assert!(Instant::now() < deadline, "{}", logs(dir.path()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(e.run.status, RunStatus::Published, "{}", logs(dir.path()));
    let execution = e.run.execution_id.clone().unwrap();
    assert!(
        execution.starts_with("arn:aws:states:") && execution.ends_with(&format!("{id}-r1")),
        "{execution}"
    );
    assert_eq!(
        mocks.kieai.snapshot().accepted,
        clips,
        "no clip generated twice"
    );
    assert_eq!(mocks.shotstack.snapshot().accepted, 2, "one new render");
    let entered = crate::redrive::tasks_entered(&e);
    assert_eq!(entered, ["Alex", "Quinn", "RecordPublished"]);
    assert_eq!(e.lineage.redrives[0].from.as_deref(), Some("Alex"));
}

/// Fails messages whose body says so, counting every delivery.
struct FailsWhenAsked(AtomicUsize);

#[async_trait]
impl MessageHandler for FailsWhenAsked {
    async fn handle(&self, body: &str) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if body.contains("fail") {
            Err(HandlerError::permanent("asked to fail"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_messages_land_in_the_dead_letter_queue_and_replay_from_there() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vars = aws_vars(&emulator, dir.path()).await;
    let tasks = vars["TASK_QUEUE_URL"].clone();
    let sqs = SqsQueue::new(&emulator.sdk);
    use myloware::queue::Queue;
    sqs.send(&tasks, json!({"task": "persona", "ok": true}).to_string())
        .await
        .unwrap();
    sqs.send(
        &tasks,
        json!({"task": "persona", "fail": true, "run_id": "r-1"}).to_string(),
    )
    .await
    .unwrap();

    let handler = Arc::new(FailsWhenAsked(AtomicUsize::new(0)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = sqs.consume(&tasks, handler.clone(), stopped);
    let dlq = sqs.dead_letter_queue(&tasks).await.unwrap().expect("a DLQ");
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = sqs.peek(&dlq, 10).await.unwrap();
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = stop.send(true);
    consumer.await.unwrap();
    assert_eq!(dead.len(), 1, "only the failing message: {dead:?}");
    assert!(dead[0].body.contains("\"fail\":true"));
    assert_eq!(
        handler.0.load(Ordering::SeqCst),
        1 + 3,
        "the good message once, the failing one for each of its 3 receives"
    );
    assert_eq!(
        sqs.depth(&tasks).await.unwrap().visible,
        0,
        "the good one was deleted"
    );

    // `mw dlq list` shows it and leaves it; `mw dlq replay` sends it back.
    let listed = mw_output(
        &vars,
        dir.path(),
        &["dlq", "list", "--queue", "tasks", "--json"],
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed[0]["messages"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    assert_eq!(listed[0]["dead_letter_queue_url"], dlq.as_str());
    let table = mw_output(&vars, dir.path(), &["dlq", "list", "--queue", "tasks"]);
    assert!(table.contains("task=persona run=r-1"), "{table}");
    let replayed = mw_output(&vars, dir.path(), &["dlq", "replay", "--queue", "tasks"]);
    assert!(replayed.contains("1 message(s) replayed"), "{replayed}");
    assert!(
        sqs.peek(&dlq, 10).await.unwrap().is_empty(),
        "the DLQ is empty"
    );
    let depth = sqs.depth(&tasks).await.unwrap();
    let back = emulator.drain(&tasks, 1, 10).await;
    assert_eq!(back.len(), 1, "{depth:?} {replayed}");
    assert!(back[0].contains("\"fail\":true"));
}

#[test]
fn the_aws_commands_explain_themselves_on_the_local_engine() {
    let dir = tempfile::tempdir().unwrap();
    let vars: BTreeMap<String, String> = stack_vars(dir.path(), &[]).into_iter().collect();
    for args in [&["worker"][..], &["dlq", "list"]] {
        let out = Command::new(crate::cli::mw_binary())
            .args(args)
            .current_dir(dir.path())
            .envs(&vars)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ENGINE=stepfunctions"), "{err}");
    }
}
