//! Redrive and replay over real HTTP and the real `mw` binary: a run that
//! failed at Alex (Shotstack failing every render) is redriven once
//! Shotstack is fixed and publishes with no clip generated twice (one
//! failed at Quinn uploads again, and only that); a
//! published run replayed from Quinn publishes again with no new clip or
//! render; the links show in the evidence, `mw runs show` and `mw trace`.
use std::process::{Command, Output};

use myloware::domain::RunStatus;
use myloware::pipeline::Evidence;
use myloware::providers::mock::{MockCounters, MockStats};
use myloware_tests::TestStack;
use serde_json::{json, Value};

/// `mw args` against the test stack's API (`MW_API_BASE`), with its key.
fn mw(t: &TestStack, args: &[&str]) -> Output {
    Command::new(crate::cli::mw_binary())
        .args(args)
        .current_dir(t.dir.path())
        .envs(&t.vars)
        .env("MW_API_BASE", &t.stack.base_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("run mw")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What each mock provider has accepted so far: (kie.ai, Shotstack, upload-post).
fn accepted(t: &TestStack) -> (u64, u64, u64) {
    let mocks = t.stack.mocks.as_ref().expect("mock providers");
    let n = |stats: MockStats| stats.accepted;
    (
        n(mocks.kieai.snapshot()),
        n(mocks.shotstack.snapshot()),
        n(mocks.upload_post.snapshot()),
    )
}

/// A test-video-gen run that failed at `persona`: its provider (`mock`)
/// fails every job while the run goes, and is fixed once it has failed.
async fn failed_at(t: &TestStack, persona: &str, mock: &MockCounters) -> Evidence {
    mock.fail_every_job(true);
    let run = t.start_run("test-video-gen").await;
    let failed = t
        .wait_for_status(run["run_id"].as_str().unwrap(), RunStatus::Failed)
        .await;
    mock.fail_every_job(false);
    let cause = failed.run.error.clone().unwrap_or_default();
    assert!(cause.contains(&format!("persona {persona}")), "{cause}");
    failed
}

/// `failed_at` Alex: Shotstack fails the render.
async fn failed_at_alex(t: &TestStack) -> Evidence {
    failed_at(t, "alex", &t.stack.mocks.as_ref().unwrap().shotstack).await
}

/// The task states the run's (current) execution entered, in order.
pub fn tasks_entered(e: &Evidence) -> Vec<&str> {
    e.history
        .iter()
        .filter(|h| h.event_type == "TaskStateEntered")
        .filter_map(|h| h.details["name"].as_str())
        .collect()
}

fn count(e: &Evidence, artifact_type: &str) -> usize {
    crate::pipeline::count(e, artifact_type)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_failed_at_alex_is_redriven_by_the_cli_and_publishes_without_new_clips() {
    let t = TestStack::start(&[]).await;
    let failed = failed_at_alex(&t).await;
    let code = failed.run.job_code.to_string();
    let (clips, renders, _) = accepted(&t);
    assert_eq!(renders, 1);
    assert!(clips >= 1);

    let out = mw(&t, &["runs", "redrive", &code]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("redriving {code}")),
        "{}",
        text(&out)
    );
    let e = t
        .wait_for_status(&failed.run.run_id.to_string(), RunStatus::Published)
        .await;

    let (clips_after, renders_after, uploads) = accepted(&t);
    assert_eq!(clips_after, clips, "no clip generated twice");
    assert_eq!(
        renders_after,
        renders + 1,
        "the failed render submitted again"
    );
    assert_eq!(uploads, 1);
    assert_eq!(e.run.run_id, failed.run.run_id, "the same run");
    assert_ne!(
        e.run.execution_id, failed.run.execution_id,
        "a new execution"
    );
    assert!(
        e.run.execution_id.as_deref().unwrap().ends_with("-r1"),
        "{:?}",
        e.run.execution_id
    );
    assert_eq!(count(&e, "kieai.clip"), count(&failed, "kieai.clip"));
    assert_eq!(count(&e, "render.url"), 1);
    assert_eq!(count(&e, "render.error"), 1);
    let result = e.run.result.clone().unwrap();
    assert!(result["render_url"].is_string(), "{result}");
    assert_eq!(e.lineage.redrives.len(), 1);
    assert_eq!(e.lineage.redrives[0].from.as_deref(), Some("Alex"));
    // The redriven execution started at Alex: the personas before it did
    // not run again.
    let entered = tasks_entered(&e);
    assert_eq!(entered, ["Alex", "Quinn", "RecordPublished"]);

    // The run tree shows the redrive and the steps after it.
    let out = mw(&t, &["trace", &code]);
    let trace = text(&out);
    assert!(out.status.success(), "{trace}");
    assert!(trace.contains("redriven from Alex"), "{trace}");
    assert!(trace.contains("test-video-gen:redrive"), "{trace}");
    assert_eq!(trace.matches("test-video-gen:alex").count(), 2, "{trace}");
    assert!(trace.contains("test-video-gen:quinn"), "{trace}");

    // A run that is not failed is not redriven: 409 through the API, exit 2
    // with the reason from the CLI.
    let out = mw(&t, &["runs", "redrive", &code]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is published: only a failed run can be redriven"),
        "{}",
        text(&out)
    );
    let (status, body) = t
        .client
        .post(&format!("/v1/runs/{code}/redrive"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let unknown = format!("/v1/runs/{}/redrive", uuid::Uuid::new_v4());
    let (status, body) = t.client.post(&unknown, json!({})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_failed_at_quinn_is_redriven_and_uploads_again_without_new_clips_or_renders() {
    let t = TestStack::start(&[]).await;
    let failed = failed_at(&t, "quinn", &t.stack.mocks.as_ref().unwrap().upload_post).await;
    let (clips, renders, uploads) = accepted(&t);
    assert_eq!(uploads, 1);
    let (status, body) = t
        .client
        .post(
            &format!("/v1/runs/{}/redrive", failed.run.job_code),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let e = t
        .wait_for_status(&failed.run.run_id.to_string(), RunStatus::Published)
        .await;
    assert_eq!(
        accepted(&t),
        (clips, renders, uploads + 1),
        "only the upload again"
    );
    assert_eq!(e.lineage.redrives[0].from.as_deref(), Some("Quinn"));
    assert!(count(&e, "publish.url") >= 1);
    let requests: Vec<&Value> = e
        .artifacts
        .iter()
        .filter(|a| a.artifact_type.as_str() == "publish.request")
        .map(|a| &a.metadata["request_id"])
        .collect();
    assert_eq!(requests.len(), 2);
    assert_ne!(requests[0], requests[1], "sent again under a new name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_redrives_of_the_same_run_at_once_start_one_execution() {
    // Providers slow enough that the redriven run is still running when the
    // old execution's late end comes.
    let t = TestStack::start(&[("MOCK_LATENCY_MS", "300")]).await;
    let failed = failed_at_alex(&t).await;
    let path = format!("/v1/runs/{}/redrive", failed.run.run_id);
    let (a, b) = tokio::join!(
        t.client.post(&path, json!({ "by": "a" })),
        t.client.post(&path, json!({ "by": "b" }))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} {}", a.1, b.1);
    // The old execution's end, reported late (as EventBridge may), does
    // not fail the redriven run.
    let late = myloware::pipeline::ExecutionStatusChange {
        execution_arn: failed.run.execution_id.clone().unwrap(),
        state_machine_arn: None,
        name: failed.run.run_id.to_string(),
        status: "FAILED".into(),
        error: Some("Worker.JobFailed".into()),
        cause: Some("the render failed".into()),
    };
    let outcome = t.stack.pipeline.record_execution_end(&late).await.unwrap();
    assert_eq!(outcome, myloware::pipeline::ExecutionEndOutcome::Superseded);
    let e = t
        .wait_for_status(&failed.run.run_id.to_string(), RunStatus::Published)
        .await;
    assert_eq!(count(&e, "run.redriven"), 1);
    assert_eq!(accepted(&t).1, 2, "one new render");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_from_quinn_is_a_new_linked_run_that_publishes_without_new_clips_or_renders() {
    let t = TestStack::start(&[]).await;
    let run = t.start_run("test-video-gen").await;
    let origin_id = run["run_id"].as_str().unwrap().to_owned();
    let origin = t.wait_for_status(&origin_id, RunStatus::Published).await;
    let code = origin.run.job_code.to_string();
    let (clips, renders, uploads) = accepted(&t);

    let out = mw(
        &t,
        &[
            "runs",
            "replay",
            &code,
            "--from",
            "Quinn",
            "--input",
            r#"{"caption_hint": "shorter"}"#,
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    let replay_id = replay["run_id"].as_str().unwrap().to_owned();
    assert_ne!(replay_id, origin_id);
    assert_ne!(replay["job_code"], json!(code));
    let e = t.wait_for_status(&replay_id, RunStatus::Published).await;

    assert_eq!(
        accepted(&t),
        (clips, renders, uploads + 1),
        "only a new upload"
    );
    let (was, now) = (origin.run.result.unwrap(), e.run.result.clone().unwrap());
    assert_eq!(now["render_url"], was["render_url"], "the origin's render");
    assert_eq!(now["clips"], was["clips"]);
    let entered = tasks_entered(&e);
    assert_eq!(entered, ["Quinn", "RecordPublished"]);
    let merged = e
        .history
        .iter()
        .find(|h| h.event_type == "TaskStateEntered");
    let input: Value =
        serde_json::from_str(merged.unwrap().details["input"].as_str().unwrap()).unwrap();
    assert_eq!(input["caption_hint"], "shorter", "{input}");
    assert_eq!(input["run_id"], json!(replay_id));

    // Linked both ways: the evidence (JSON, text, Markdown), `mw runs show`
    // and the graph span.
    let link = e.lineage.replay_of.clone().expect("linked to its origin");
    assert_eq!(
        (link.job_code.to_string(), link.from.as_str()),
        (code.clone(), "Quinn")
    );
    let replay_code = e.run.job_code.to_string();
    let said = format!("replay of {code} from Quinn");
    let out = mw(&t, &["evidence", &replay_code]);
    assert!(text(&out).contains(&said), "{}", text(&out));
    let out = mw(&t, &["runs", "show", &replay_code]);
    assert!(text(&out).contains(&said), "{}", text(&out));
    let bundle = t.dir.path().join("bundle");
    let out = mw(
        &t,
        &[
            "evidence",
            &replay_code,
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary = std::fs::read_to_string(bundle.join("summary.md")).unwrap();
    assert!(summary.contains(&said), "{summary}");
    let origin = t.evidence(&origin_id).await;
    assert_eq!(origin.lineage.replays.len(), 1);
    assert_eq!(origin.lineage.replays[0].run_id.to_string(), replay_id);
    let out = mw(&t, &["evidence", &code]);
    let shown = format!("replayed as {replay_code} from Quinn");
    assert!(text(&out).contains(&shown), "{}", text(&out));
    let graph = e
        .spans
        .iter()
        .find(|s| s.name == "test-video-gen-graph")
        .expect("the graph span");
    assert_eq!(graph.attributes["myloware.replay_of"], json!(code));
    assert_eq!(
        graph.attributes["myloware.started_from.trace_id"],
        json!(myloware::domain::TraceId::of_run(origin.run.run_id).to_string())
    );

    // A state the origin never entered, or an input that is not an object:
    // refused with the reason, nothing started.
    let out = mw(&t, &["runs", "replay", &code, "--from", "Nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("never entered state \"Nowhere\"")
            && text(&out).contains("Alex, Iggy, Quinn"),
        "{}",
        text(&out)
    );
    let (status, body) = t
        .client
        .post(
            &format!("/v1/runs/{code}/replay"),
            json!({ "from": "Quinn", "input": [1] }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let out = mw(
        &t,
        &["runs", "replay", &code, "--from", "Quinn", "--input", "[1]"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(accepted(&t), (clips, renders, uploads + 1));
}
