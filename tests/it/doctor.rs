//! `mw doctor` in each of the runbook's four symptom situations, on runs
//! stopped there for real.
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use chrono::Utc;
use myloware::domain::{ProvidersMode, RunStatus};
use myloware::pipeline::doctor::{diagnose, Context, Finding, Symptom};
use myloware_tests::TestStack;
use serde_json::json;

fn context(links: Vec<(String, String)>) -> Context {
    // Look from the future, so that everything pending counts as overdue.
    Context {
        now: Utc::now() + chrono::Duration::seconds(600),
        links,
    }
}

fn find(findings: &[Finding], symptom: Symptom) -> &Finding {
    findings
        .iter()
        .find(|f| f.symptom == symptom)
        .unwrap_or_else(|| panic!("no {symptom:?} finding in {findings:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persona_that_never_gets_to_its_provider() {
    // A model that never answers: Iggy's agent never ends.
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async { std::future::pending::<String>().await }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let t = TestStack::start(&[("LLM_BASE_URL", &llm)]).await;
    let id = t.start_run("test-video-gen").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t
        .wait_for(&id, 10, "Iggy entered", |e| {
            e.history.iter().any(|h| h.event_type == "TaskStateEntered")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let findings = diagnose(&e, &context(vec![]));
    let f = find(&findings, Symptom::PersonaStuck);
    assert!(f.problem, "{f:?}");
    assert!(f.summary.contains("iggy"), "{f:?}");
    assert!(
        f.details
            .iter()
            .any(|d| d.contains("state Iggy") && d.contains("has not finished")),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_that_never_came_and_one_refused_for_its_signature() {
    let t = TestStack::start(&[("MOCK_LATENCY_MS", "600000")]).await;
    let id = t.start_run("test-video-gen").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t
        .wait_for(&id, 10, "clips submitted", |e| {
            e.provider_jobs.iter().filter(|j| !j.is_intent()).count() == 2
        })
        .await;
    let forged_for = e
        .provider_jobs
        .iter()
        .find(|j| !j.is_intent())
        .unwrap()
        .job_id
        .clone();
    let forged = t
        .client
        .http
        .post(format!("{}/v1/webhooks/kieai", t.client.base))
        .header("X-Webhook-Timestamp", Utc::now().timestamp().to_string())
        .header("X-Webhook-Signature", "bm90IGEgc2lnbmF0dXJl")
        .json(&json!({ "code": 200, "msg": "success", "data": { "taskId": forged_for, "info": { "resultUrls": ["https://x/y.mp4"] } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let e = t.evidence(&id).await;
    let findings = diagnose(&e, &context(vec![]));
    let f = find(&findings, Symptom::WaitingOnWebhook);
    assert!(f.problem, "{f:?}");
    assert_eq!(
        f.details.iter().filter(|d| d.contains("kieai job")).count(),
        2,
        "{f:?}"
    );
    assert!(
        f.details
            .iter()
            .any(|d| d.contains(&forged_for) && d.contains("1 refused for their signature")),
        "{f:?}"
    );
    assert!(
        f.details
            .iter()
            .all(|d| !d.contains("kieai job") || d.contains("artifact kieai.job")),
        "{f:?}"
    );

    // A mock run's loopback callbacks are fine; a live run's are a finding
    // of their own, judged from the address the run recorded (the shell the
    // doctor runs in has no say).
    assert!(
        f.details.iter().all(|d| !d.contains("loopback or private")),
        "{f:?}"
    );
    let mut live = e.clone();
    live.run.providers_mode = ProvidersMode::Live;
    let f = diagnose(&live, &context(vec![]))
        .into_iter()
        .find(|f| f.symptom == Symptom::WaitingOnWebhook)
        .unwrap();
    assert!(
        f.details
            .iter()
            .any(|d| d.contains("loopback or private") && d.contains(&t.client.base)),
        "{f:?}"
    );
    // The reconciler's checks of each overdue job are shown.
    assert!(
        f.details
            .iter()
            .any(|d| d.contains("the reconciler has asked kieai")),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_error() {
    let t = TestStack::start(&[]).await;
    let (status, run) = t
        .client
        .post(
            "/v1/runs",
            json!({ "project": "test-video-gen", "message": "[fail] a glass apple" }),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();
    let e = t.wait_for_status(&id, RunStatus::Failed).await;
    let findings = diagnose(&e, &context(vec![]));
    let f = find(&findings, Symptom::ProviderError);
    assert!(f.problem);
    assert!(
        f.summary.contains("kieai job") && f.summary.contains("riley"),
        "{f:?}"
    );
    assert!(
        f.details
            .iter()
            .any(|d| d.starts_with("provider said:") && d.contains("kie.ai error")),
        "{f:?}"
    );
    assert!(
        f.details.iter().any(|d| d.contains(&id)),
        "the run id, for the bug report: {f:?}"
    );
    assert!(
        f.details
            .iter()
            .any(|d| d.starts_with("artifact metadata:") && d.contains("task_id")),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_nobody_decided() {
    let t = TestStack::start(&[]).await;
    let id = t.start_run("aismr").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t.wait_for_gate(&id, "ideate").await;
    let (_, link) = t.client.get(&format!("/v1/hitl/link/{id}/ideate")).await;
    let url = link["url"].as_str().unwrap().to_owned();
    let findings = diagnose(&e, &context(vec![("ideate".into(), url.clone())]));
    let f = find(&findings, Symptom::GateStuck);
    // Waiting for a human is what a gate is for: named, not a problem, until
    // it has waited a day.
    assert!(!f.problem, "{f:?}");
    assert!(f.summary.starts_with("gate ideate has waited"), "{f:?}");
    let a_day_later = Context {
        now: Utc::now() + chrono::Duration::hours(25),
        links: vec![],
    };
    assert!(find(&diagnose(&e, &a_day_later), Symptom::GateStuck).problem);
    assert!(f.details.iter().any(|d| d.contains(&url)), "{f:?}");
    assert_eq!(
        f.next[0],
        format!("mw hitl approve {} ideate", e.run.job_code)
    );

    // Decided, the run goes on and the doctor finds nothing wrong there.
    t.client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    let e = t.wait_for_gate(&id, "prepublish").await;
    let now = Context {
        now: Utc::now(),
        ..context(vec![])
    };
    assert!(diagnose(&e, &now)
        .iter()
        .all(|f| f.symptom != Symptom::GateStuck || f.summary.contains("prepublish")));

    // Decided a minute ago, but the engine never took it (the process that
    // decided stopped before telling it): the doctor says so, and how.
    let mut cut = e.clone();
    let ideate = cut
        .hitl_requests
        .iter_mut()
        .find(|g| g.gate.as_str() == "ideate")
        .unwrap();
    assert!(ideate.delivered_at.is_some(), "delivered when decided");
    ideate.delivered_at = None;
    ideate.decided_at = Some(Utc::now() - chrono::Duration::seconds(60));
    let findings = diagnose(&cut, &now);
    let f = findings
        .iter()
        .find(|f| f.summary.starts_with("gate ideate was approved"))
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert!(
        f.problem && f.summary.contains("not taken the decision"),
        "{f:?}"
    );
    assert_eq!(
        f.next[0],
        format!("mw hitl approve {} ideate", e.run.job_code)
    );
}

/// A run a human ended is no problem: the doctor says who ended it, and why
/// when they said.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_or_cancelled_run_names_who_ended_it() {
    let t = TestStack::start(&[]).await;
    let at_ideate = async || {
        let id = t.start_run("aismr").await["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        t.wait_for_gate(&id, "ideate").await;
        id
    };
    let id = at_ideate().await;
    let (status, _) = t
        .client
        .post(
            &format!("/v1/hitl/reject/{id}/ideate"),
            json!({ "by": "cli", "comment": "too dark for the channel" }),
        )
        .await;
    assert_eq!(status, 200);
    let e = t.wait_for_status(&id, RunStatus::Rejected).await;
    let findings = diagnose(&e, &context(vec![]));
    assert!(findings.iter().all(|f| !f.problem), "{findings:?}");
    let f = find(&findings, Symptom::Healthy);
    assert!(f.summary.contains("rejected at gate ideate"), "{f:?}");
    assert!(
        f.details
            .iter()
            .any(|d| d.starts_with("decided by ") && d.contains("cli")),
        "{f:?}"
    );
    assert!(
        f.details
            .iter()
            .any(|d| d == "comment: too dark for the channel"),
        "{f:?}"
    );

    let id = at_ideate().await;
    let (status, _) = t
        .client
        .post(&format!("/v1/runs/{id}/cancel"), json!({ "by": "ops" }))
        .await;
    assert_eq!(status, 200);
    let e = t.wait_for_status(&id, RunStatus::Cancelled).await;
    let f = find(&diagnose(&e, &context(vec![])), Symptom::Healthy).clone();
    assert!(f.summary.contains("was cancelled"), "{f:?}");
    assert!(
        f.details
            .iter()
            .any(|d| d.starts_with("cancelled by ops") && d.contains(" at ")),
        "{f:?}"
    );
    assert!(
        f.details.iter().any(|d| d == "it was awaiting_approval"),
        "{f:?}"
    );
}

#[test]
fn mw_doctor_exits_2_on_no_such_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::cli::mw_binary())
        .args(["doctor", "TVG-AAA000"])
        .current_dir(dir.path())
        .env("MYLOWARE_HOME", dir.path().join(".myloware"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
