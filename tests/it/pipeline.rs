//! Whole runs over real HTTP: the stack on ephemeral ports, the mock
//! providers calling back through the webhook route, gates decided through
//! the API and signed links.
use myloware::domain::RunStatus;
use myloware::pipeline::Evidence;
use myloware_tests::TestStack;
use serde_json::{json, Value};

pub fn count(evidence: &Evidence, artifact_type: &str) -> usize {
    evidence
        .artifacts
        .iter()
        .filter(|a| a.artifact_type.as_str() == artifact_type)
        .count()
}

fn run_id(run: &Value) -> String {
    run["run_id"].as_str().expect("run_id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_video_gen_publishes_with_every_step_on_the_record() {
    let t = TestStack::start(&[]).await;
    let run = t.start_run("test-video-gen").await;
    assert!(
        run["status"] == "pending" || run["status"] == "running",
        "{run}"
    );
    assert!(run["job_code"].as_str().unwrap().starts_with("TVG-"));
    let id = run_id(&run);
    let e = t.wait_for_status(&id, RunStatus::Published).await;

    assert_eq!(count(&e, "run.start"), 1);
    assert_eq!(count(&e, "kieai.job"), 2, "2 clips of 8 s");
    assert_eq!(count(&e, "kieai.clip"), 2);
    assert_eq!(count(&e, "shotstack.timeline"), 1);
    assert_eq!(count(&e, "render.url"), 1);
    assert_eq!(count(&e, "publish.url"), 2, "tiktok and youtube");
    assert_eq!(count(&e, "hitl.request"), 0, "no gates");
    assert!(e
        .provider_jobs
        .iter()
        .all(|j| j.status == myloware::domain::JobStatus::Succeeded));
    assert_eq!(e.provider_jobs.len(), 4);
    // Every callback was verified or (Shotstack) unsigned, and processed.
    assert!(
        e.webhook_events.len() >= 5,
        "{} events",
        e.webhook_events.len()
    );
    for ev in &e.webhook_events {
        assert_ne!(ev.signature_status.as_str(), "rejected");
        assert_eq!(ev.status.as_str(), "processed", "{ev:?}");
    }
    let result = e.run.result.as_ref().expect("result");
    assert_eq!(result["publish_urls"].as_array().unwrap().len(), 2);
    assert!(result["render_url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert_eq!(result["clips"].as_array().unwrap().len(), 2);
    let types: Vec<&str> = e.history.iter().map(|h| h.event_type.as_str()).collect();
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    // Task tokens are credentials: the evidence never shows one.
    let text = serde_json::to_string(&e).unwrap();
    assert!(
        !text.contains("task_token\":\""),
        "a task token leaked into the evidence"
    );

    let metrics = t.client.get_text("/metrics", "text/plain").await;
    for line in [
        "mw_runs_started_total{project=\"test-video-gen\"}",
        "mw_runs_ended_total{project=\"test-video-gen\",status=\"published\"}",
        "mw_webhooks_received_total{provider=\"kieai\",signature_status=\"verified\"}",
        "mw_provider_job_seconds_count{provider=\"shotstack\",status=\"succeeded\"}",
        "mw_persona_step_seconds_count{persona=\"riley\"}",
        "mw_queue_messages{queue=\"tasks\",state=\"in_flight\"}",
        "mw_queue_messages{queue=\"callbacks\",state=\"visible\"} 0",
        "mw_engine_transitions_total ",
    ] {
        assert!(
            metrics.contains(line),
            "{line} missing from /metrics:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aismr_with_manual_approvals_publishes() {
    let t = TestStack::start(&[]).await;
    let id = run_id(&t.start_run("aismr").await);
    let e = t.wait_for_gate(&id, "ideate").await;
    assert_eq!(e.run.status, RunStatus::AwaitingApproval);
    assert_eq!(count(&e, "kieai.job"), 0, "Riley waits behind the gate");
    let request = e
        .artifacts
        .iter()
        .find(|a| a.artifact_type.as_str() == "hitl.request")
        .unwrap();
    assert!(request
        .url
        .as_deref()
        .unwrap()
        .contains("/v1/hitl/approve/"));

    // ideate: through the signed link, as a person would.
    let (status, link) = t.client.get(&format!("/v1/hitl/link/{id}/ideate")).await;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().unwrap().to_owned();
    assert!(
        !url.contains(&e.run.execution_id.clone().unwrap()),
        "the link is not the task token"
    );
    let page = t
        .client
        .http
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // Safe to share: no cache, no referrer, no framing.
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(page.headers()[name], value, "{name}");
    }
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    // The reviewer sees what is approved: Iggy's title and every idea.
    let ideas = &e
        .artifacts
        .iter()
        .find(|a| a.artifact_type.as_str() == "ideas.list")
        .unwrap()
        .metadata;
    let title = ideas["title"].as_str().unwrap();
    assert!(
        html.contains(&format!("<h2 id=\"title\">{title}</h2>")),
        "{html}"
    );
    for idea in ideas["ideas"].as_array().unwrap() {
        assert!(
            html.contains(idea.as_str().unwrap()),
            "{idea} missing: {html}"
        );
    }
    assert!(
        html.contains("id=\"approve\"") && html.contains("name=\"comment\""),
        "{html}"
    );
    // The page's form posts its fields, the comment among them.
    let approved = t
        .client
        .http
        .post(&url)
        .header("accept", "text/html")
        .form(&[("comment", "more crunch, less glitter")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    assert!(approved
        .text()
        .await
        .unwrap()
        .contains("more crunch, less glitter"));
    let again: Value = t
        .client
        .http
        .post(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["decided_now"], false, "a link decides once");
    let tampered = url.replace("ideate", "prepublish");
    assert_eq!(
        t.client.http.post(&tampered).send().await.unwrap().status(),
        403
    );

    // prepublish: with the API key, as the CLI does.
    let e = t.wait_for_gate(&id, "prepublish").await;
    assert_eq!(count(&e, "kieai.clip"), 12, "aismr makes 12 clips");
    assert_eq!(count(&e, "render.url"), 1);
    assert_eq!(count(&e, "publish.url"), 0, "Quinn waits behind the gate");
    // The comment reached the next persona: Riley's model was given it.
    let riley_saw_it = e.spans.iter().any(|s| {
        let span = serde_json::to_string(s).unwrap();
        span.contains("\"riley\"") && span.contains("more crunch, less glitter")
    });
    assert!(riley_saw_it, "the ideate comment is in Riley's context");
    // The prepublish gate shows the rendered video and its clips.
    let (status, gate) = t
        .client
        .get(&format!("/v1/hitl/approve/{id}/prepublish"))
        .await;
    assert_eq!(status, 200, "{gate}");
    let render = e
        .artifacts
        .iter()
        .find(|a| a.artifact_type.as_str() == "render.url")
        .and_then(|a| a.url.clone())
        .unwrap();
    assert_eq!(gate["review"]["render_url"], render.as_str());
    assert_eq!(gate["review"]["clips"].as_array().unwrap().len(), 12);
    assert_eq!(gate["review"]["next"], json!(["quinn"]));
    let html = t
        .client
        .get_text(&format!("/v1/hitl/approve/{id}/prepublish"), "text/html")
        .await;
    assert!(
        html.contains(&format!(
            "<video id=\"video\" controls preload=\"metadata\" src=\"{render}\">"
        )),
        "{html}"
    );
    let (status, body) = t
        .client
        .post(
            &format!("/v1/hitl/approve/{id}/prepublish"),
            json!({ "by": "tester" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let e = t.wait_for_status(&id, RunStatus::Published).await;
    assert_eq!(count(&e, "hitl.approval"), 2);
    assert_eq!(count(&e, "publish.url"), 2);
    let by: Vec<_> = e
        .hitl_requests
        .iter()
        .map(|g| g.decided_by.clone().unwrap())
        .collect();
    // What the credential proves: the link, or the API key with its holder's label.
    assert_eq!(by, ["link", "api-key:tester"]);
    assert_eq!(
        e.hitl_requests[0].comment.as_deref(),
        Some("more crunch, less glitter")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_gate_ends_the_run_rejected() {
    let t = TestStack::start(&[]).await;
    let id = run_id(&t.start_run("aismr").await);
    t.wait_for_gate(&id, "ideate").await;
    let (status, body) = t
        .client
        .post(
            &format!("/v1/hitl/reject/{id}/ideate"),
            json!({ "comment": "not on brand" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let e = t.wait_for_status(&id, RunStatus::Rejected).await;
    assert_eq!(e.run.result.as_ref().unwrap()["error"], "Hitl.Rejected");
    assert_eq!(
        count(&e, "kieai.job"),
        0,
        "nothing after a rejected gate ran"
    );
    // An outcome, not a failure: the execution ends in the Succeed state
    // `Rejected`, which no failed-executions alarm counts.
    let ended = loop {
        let history = t.evidence(&id).await.history;
        match history.last() {
            Some(last) if last.event_type.starts_with("Execution") && last.id > 1 => break history,
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let last = ended.last().unwrap();
    assert_eq!(last.event_type, "ExecutionSucceeded", "{last:?}");
    assert!(
        ended
            .iter()
            .any(|e| e.event_type == "SucceedStateEntered" && e.details["name"] == "Rejected"),
        "{ended:?}"
    );
    let (status, _) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 200, "a later approval finds the gate decided");
    assert_eq!(t.evidence(&id).await.run.status, RunStatus::Rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_can_be_cancelled_mid_run() {
    let t = TestStack::start(&[]).await;
    let id = run_id(&t.start_run("aismr").await);
    t.wait_for_gate(&id, "ideate").await;
    let (status, run) = t
        .client
        .post(&format!("/v1/runs/{id}/cancel"), json!({ "by": "tester" }))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "cancelled");
    let e = t.evidence(&id).await;
    assert_eq!(count(&e, "run.cancelled"), 1);
    assert_eq!(e.history.last().unwrap().event_type, "ExecutionAborted");
    let (status, _) = t
        .client
        .post(&format!("/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409, "a finished run cannot be cancelled again");
    let (status, body) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        t.evidence(&id).await.run.status,
        RunStatus::Cancelled,
        "nothing revives a cancelled run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_clear_errors() {
    let t = TestStack::start(&[]).await;
    let (status, body) = t
        .client
        .post("/v1/runs", json!({ "project": "nope" }))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("project nope"));
    let (status, body) = t
        .client
        .post("/v1/runs", json!({ "project": "Not A Slug" }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = t.client.get("/v1/runs/TVG-AAA000").await;
    assert_eq!(status, 404);
    let (status, _) = t.client.get("/v1/runs/garbage").await;
    assert_eq!(status, 422);
    let no_key = reqwest::Client::new()
        .get(format!("{}/v1/runs", t.client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let health = reqwest::get(format!("{}/health", t.client.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health needs no key");
    let (status, body) = t.client.post("/v1/webhooks/acme", json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = t
        .client
        .post("/v1/webhooks/kieai", json!({ "not": "a callback" }))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_waiting_on_a_run_hears_of_each_status_change() {
    let t = TestStack::start(&[]).await;
    let id = run_id(&t.start_run("aismr").await);
    t.wait_for_gate(&id, "ideate").await;

    // A status other than the one the run has: answered at once.
    let (status, run) = t
        .client
        .get(&format!("/v1/runs/{id}?status=running&wait=20"))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "awaiting_approval");

    // Nothing changes: answered after the wait, with the run as it is.
    let asked = std::time::Instant::now();
    let (status, run) = t
        .client
        .get(&format!("/v1/runs/{id}?status=awaiting_approval&wait=0.3"))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "awaiting_approval");
    assert!(asked.elapsed() >= std::time::Duration::from_millis(300));

    // The gate approved while a request waits: that request answers with
    // the new status, long before its wait is over.
    let client = t.client.clone();
    let path = format!("/v1/runs/{id}?status=awaiting_approval&wait=20");
    let waiting = tokio::spawn(async move {
        let asked = std::time::Instant::now();
        let (status, run) = client.get(&path).await;
        (status, run, asked.elapsed())
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "nothing has changed yet");
    let (status, body) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, run, took) = waiting.await.unwrap();
    assert_eq!(status, 200, "{run}");
    assert_ne!(run["status"], "awaiting_approval", "{run}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");

    for (query, why) in [
        ("wait=1", "a wait without the status seen"),
        ("status=running", "a status without a wait"),
        ("status=running&wait=soon", "a wait that is not seconds"),
        ("status=running&wait=21", "a wait over 20 s"),
        ("status=running&wait=-1", "a negative wait"),
        ("status=sleeping&wait=1", "a status that does not exist"),
    ] {
        let (status, body) = t.client.get(&format!("/v1/runs/{id}?{query}")).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body["error"]["message"].as_str().is_some(), "{why}: {body}");
    }
}

/// A start sent again with its `Idempotency-Key` (its first answer lost)
/// answers the run the first one made; the key reused for another start is
/// refused, and a malformed one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_sent_again_with_its_idempotency_key_makes_one_run() {
    let t = TestStack::start(&[]).await;
    let body = json!({ "project": "test-video-gen", "message": "a glass apple" });
    let (status, first) = t
        .client
        .try_post_once("/v1/runs", body.clone(), Some("start-1"))
        .await
        .unwrap();
    assert_eq!(status, 201, "{first}");
    let (status, again) = t
        .client
        .try_post_once("/v1/runs", body.clone(), Some("start-1"))
        .await
        .unwrap();
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["job_code"], first["job_code"]);
    let (status, other) = t
        .client
        .try_post_once("/v1/runs", body.clone(), Some("start-2"))
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert_ne!(other["run_id"], first["run_id"], "another key, another run");
    let (status, refused) = t
        .client
        .try_post_once(
            "/v1/runs",
            json!({ "project": "aismr", "message": "a glass apple" }),
            Some("start-1"),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("Idempotency-Key"), "{refused}");
    let (status, _) = t
        .client
        .try_post_once("/v1/runs", body, Some("has space"))
        .await
        .unwrap();
    assert!(status == 400 || status == 422, "{status}");
    let id = first["run_id"].as_str().unwrap();
    t.wait_for_status(id, RunStatus::Published).await;
    let runs = t.client.get("/v1/runs?limit=10").await.1;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
}
