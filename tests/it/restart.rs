//! The stack killed with SIGKILL in the middle of a run — after the first
//! clip's callback, with eleven clips and their callbacks still in flight, or
//! later when the machine is loaded — and started again: the run finishes,
//! with every clip exactly once. The
//! providers (mocks in this process) keep running meanwhile and retry their
//! callbacks, as real providers do.
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use myloware::domain::RunStatus;
use myloware::providers::mock::MockProviders;
use myloware_tests::{live_stack_vars, mock_config, ApiClient};
use serde_json::json;

use crate::pipeline::count;

fn serve(
    vars: &std::collections::HashMap<String, String>,
    port: u16,
    dir: &std::path::Path,
    log: &str,
) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("log file");
    Command::new(crate::cli::mw_binary())
        .args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .envs(vars)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mw serve")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stack_killed_mid_run_finishes_the_run_after_a_restart() {
    let mocks = MockProviders::start(mock_config(Duration::from_millis(400)))
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    // A kill may land between a submission's intent and its send (under load
    // the kill comes late, in Alex's render as well as in Riley's clips): the
    // reconciler sends what is in doubt again after a window short enough for
    // the test's deadline, longer than the mocks take to call back.
    let vars = live_stack_vars(
        dir.path(),
        &mocks,
        &base,
        &[
            ("RECONCILE_AFTER_SECS", "2"),
            ("RECONCILE_IN_DOUBT_SECS", "4"),
            ("RECONCILE_INTERVAL_SECS", "1"),
        ],
    );
    let client = ApiClient::new(&base, "test-api-key-0123456789");

    let mut first = serve(&vars, port, dir.path(), "first.log");
    myloware_tests::wait_healthy(&base).await;
    let (status, run) = client.post("/v1/runs", json!({ "project": "aismr" })).await;
    assert_eq!(status, 201, "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();
    let evidence = |client: ApiClient, id: String| async move {
        let (_, e) = client.get(&format!("/v1/runs/{id}/evidence")).await;
        serde_json::from_value::<myloware::pipeline::Evidence>(e).unwrap()
    };
    let mut approved = false;
    loop {
        let e = evidence(client.clone(), id.clone()).await;
        if !approved && e.hitl_requests.iter().any(|g| g.gate.as_str() == "ideate") {
            let (status, body) = client
                .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
                .await;
            assert_eq!(status, 200, "{body}");
            approved = true;
        }
        if count(&e, "kieai.clip") >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = serve(&vars, port, dir.path(), "second.log");
    myloware_tests::wait_healthy(&base).await;
    let mut e;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        e = evidence(client.clone(), id.clone()).await;
        if e.hitl_requests
            .iter()
            .any(|g| g.gate.as_str() == "prepublish" && g.decision.is_none())
        {
            let (status, body) = client
                .post(&format!("/v1/hitl/approve/{id}/prepublish"), json!({}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        if e.run.status.is_terminal() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never finished after the restart: {:?}\njobs: {:?}\nevents: {:?}\nartifacts: {:?}\nhistory: {:?}\nlog:\n{}",
            e.run.status,
            e.provider_jobs.iter().map(|j| format!("{} {} {}", j.provider, j.job_id, j.status)).collect::<Vec<_>>(),
            e.webhook_events.iter().map(|w| format!("{} {} {} {:?}", w.idempotency_key, w.signature_status, w.status, w.error)).collect::<Vec<_>>(),
            e.artifacts.iter().map(|a| a.artifact_type.to_string()).collect::<Vec<_>>(),
            e.history.iter().rev().take(6).map(|h| h.event_type.clone()).collect::<Vec<_>>(),
            std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    mocks.shutdown().await;

    assert_eq!(
        e.run.status,
        RunStatus::Published,
        "error: {:?}",
        e.run.error
    );
    assert_eq!(count(&e, "kieai.job"), 12, "no clip was submitted twice");
    assert_eq!(
        count(&e, "kieai.clip"),
        12,
        "every clip recorded exactly once"
    );
    assert_eq!(count(&e, "render.url"), 1);
    assert_eq!(count(&e, "publish.url"), 2);
    assert_eq!(e.provider_jobs.len(), 14);
    let entered: Vec<&str> = e
        .history
        .iter()
        .filter(|h| h.event_type == "TaskStateEntered")
        .filter_map(|h| h.details.get("name").and_then(|n| n.as_str()))
        .collect();
    assert_eq!(
        entered,
        [
            "Iggy",
            "GateIdeate",
            "Riley",
            "Alex",
            "GatePrepublish",
            "Quinn",
            "RecordPublished"
        ]
    );
}
