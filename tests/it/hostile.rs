//! Hostile input, as an attacker would send it to `mw serve`: nothing
//! unauthenticated fills the store, steers a provider call, holds the server
//! or learns what exists; inputs have limits; local files are the owner's.
use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use myloware::domain::{RunStatus, SignatureStatus};
use myloware_tests::TestStack;
use secrecy::SecretString;
use serde_json::{json, Value};

async fn post_raw(t: &TestStack, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = t
        .client
        .http
        .post(format!("{}{path}", t.client.base))
        .header("x-api-key", "test-api-key-0123456789")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A kie.ai callback with a fresh timestamp and a signature that is not
/// the secret's: answers the status.
async fn post_forged_kieai(t: &TestStack, body: &Value) -> u16 {
    t.client
        .http
        .post(format!("{}/v1/webhooks/kieai", t.client.base))
        .header("X-Webhook-Timestamp", Utc::now().timestamp().to_string())
        .header("X-Webhook-Signature", "Zm9yZ2Vk")
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_forged_callbacks_leaves_the_store_bounded() {
    let t = TestStack::start(&[]).await;
    let padding = "x".repeat(1_000_000);
    for i in 0..30 {
        let body =
            json!({ "code": 200, "msg": padding, "data": { "taskId": format!("forged-{i}") } });
        assert_eq!(post_forged_kieai(&t, &body).await, 401);
    }
    // Kept as evidence, bounded: no stored payload near the bodies' size.
    let myloware::config::DatabaseConfig::Sqlite { path } = t.config().database else {
        panic!("the test stack runs on SQLite");
    };
    let db = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let events: Vec<(String, String, String)> =
        sqlx::query_as("SELECT signature_status, payload, headers FROM webhook_events")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(events.len(), 30);
    for (signature_status, payload, headers) in &events {
        assert_eq!(signature_status, SignatureStatus::Rejected.as_str());
        let stored = payload.len() + headers.len();
        assert!(stored < 4_096, "{stored} bytes kept of a 1 MB body");
        let payload: Value = serde_json::from_str(payload).unwrap();
        assert!(payload["refused_body"]["bytes"].as_u64().unwrap() > 1_000_000);
    }
    // A forged body sent again is refused again, not a "duplicate".
    let forged = json!({ "code": 200, "msg": "x", "data": { "taskId": "forged-0" } });
    for _ in 0..2 {
        assert_eq!(post_forged_kieai(&t, &forged).await, 401);
    }
    // Over the limit, a body is refused before it is read or kept: its
    // declared length is enough.
    let mut socket = std::net::TcpStream::connect(t.stack.addr).unwrap();
    write!(
        socket,
        "POST /v1/webhooks/kieai HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        3 * 1024 * 1024
    )
    .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut socket, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_shotstack_callback_is_refused_and_never_shadows_the_genuine_one() {
    // Slow providers: the forgeries arrive before the genuine callback.
    let t = TestStack::start(&[("MOCK_LATENCY_MS", "1500")]).await;
    let id = t.start_run("test-video-gen").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t
        .wait_for(&id, 30, "the render submitted", |e| {
            e.provider_jobs
                .iter()
                .any(|j| j.provider.as_str() == "shotstack" && !j.is_intent())
        })
        .await;
    let render = e
        .provider_jobs
        .iter()
        .find(|j| j.provider.as_str() == "shotstack" && !j.is_intent())
        .unwrap()
        .job_id
        .clone();
    let forged = json!({ "type": "edit", "action": "render", "id": render, "owner": "x",
        "status": "done", "url": "https://evil.example/x.mp4", "error": null, "completed": "2026-01-01T00:00:00Z" });
    let other_run = myloware::domain::RunId::new();
    let wrong_token =
        myloware::hitl::HitlSigner::new(SecretString::from("test-hitl-secret-0123456789"))
            .callback_token("shotstack", other_run);
    for query in [
        String::new(),
        format!("?run={id}&token=bm90LWl0"),
        // A good token, for another run.
        format!("?run={other_run}&token={wrong_token}"),
    ] {
        let response = t
            .client
            .http
            .post(format!("{}/v1/webhooks/shotstack{query}", t.client.base))
            .json(&forged)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{query}");
    }
    let done = t.wait_for_status(&id, RunStatus::Published).await;
    let render_url = done
        .artifacts
        .iter()
        .find(|a| a.artifact_type.as_str() == "render.url")
        .unwrap();
    assert!(
        !render_url.url.as_deref().unwrap().contains("evil"),
        "{render_url:?}"
    );
    let genuine = done
        .webhook_events
        .iter()
        .filter(|e| e.provider.as_str() == "shotstack")
        .filter(|e| e.signature_status == SignatureStatus::Verified)
        .count();
    assert_eq!(
        genuine, 2,
        "the render's callback and its hosted copy's, both acted on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_over_the_limit_do_not_hold_the_server() {
    let t = TestStack::start(&[("MAX_CONNECTIONS", "8"), ("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let addr = t.stack.addr;
    // Twice the limit, connected and silent.
    let idle: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // A client that sends half its headers and stops.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{}/health", t.client.base))
        .send()
        .await
        .expect("/health answers");
    assert_eq!(health.status(), 200);
    let (status, _) = post_raw(&t, "/v1/webhooks/upload-post", b"{}".to_vec()).await;
    assert!(
        status == 400 || status == 401,
        "a webhook gets its answer: {status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    drop((idle, slow));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_inputs_are_refused_and_nothing_is_stored() {
    let t = TestStack::start(&[]).await;
    let cases = [
        (
            json!({ "project": "aismr", "message": "m".repeat(1_000_000) }),
            413,
        ),
        (
            json!({ "project": "aismr", "message": "m".repeat(5_000) }),
            422,
        ),
        (
            json!({ "project": "aismr", "user_id": "u".repeat(200) }),
            422,
        ),
        (json!({ "project": "aismr", "user_id": "a\nb" }), 422),
    ];
    for (body, expected) in cases {
        let (status, answer) = post_raw(&t, "/v1/runs", serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, expected, "{answer}");
        assert!(
            answer["error"]["code"].is_string(),
            "the JSON error shape: {answer}"
        );
    }
    let (status, page) = t.client.get("/v1/runs").await;
    assert_eq!(status, 200);
    assert_eq!(page["runs"], json!([]), "nothing was stored");
    // Query strings, unknown routes and methods answer in the same shape.
    for (path, expected) in [("/v1/runs?limit=many", 400), ("/v1/nothing-here", 404)] {
        let (status, answer) = t.client.get(path).await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{path}: {answer}");
    }
    let response = t
        .client
        .http
        .delete(format!("{}/v1/runs", t.client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "method_not_allowed");
    // The run's message stays with the run: the execution's input, which
    // its history copies on, does not carry it.
    let (_, run) = t
        .client
        .post(
            "/v1/runs",
            json!({ "project": "test-video-gen", "message": "a glass apple, slowly" }),
        )
        .await;
    let id = run["run_id"].as_str().unwrap();
    let e = t.wait_for_status(id, RunStatus::Published).await;
    let started = e
        .history
        .iter()
        .find(|h| h.event_type == "ExecutionStarted")
        .unwrap();
    assert!(
        !started.details.to_string().contains("a glass apple"),
        "{started:?}"
    );
    assert_eq!(e.run.input["message"], "a glass apple, slowly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_answers_a_users_mistake_and_shows_each_user_only_their_runs() {
    let t = TestStack::start(&[]).await;
    let (status, answer) = t
        .client
        .post(
            "/v1/chat/brendan",
            json!({ "user_id": "dev", "message": "what's the status of TVG-ZZZ999?" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["response"].as_str().unwrap().contains("TVG-ZZZ999"),
        "{answer}"
    );
    // Another user's run is not there for them.
    let (_, started) = t
        .client
        .post(
            "/v1/chat/brendan",
            json!({ "user_id": "alice", "message": "Start a test video gen run" }),
        )
        .await;
    let run_id = started["run_ids"][0].as_str().unwrap().to_owned();
    let (_, run) = t.client.get(&format!("/v1/runs/{run_id}")).await;
    let code = run["job_code"].as_str().unwrap();
    let (status, answer) = t
        .client
        .post(
            "/v1/chat/brendan",
            json!({ "user_id": "mallory", "message": format!("what's the status of {code}?") }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let reply = answer["response"].as_str().unwrap();
    assert!(reply.contains("no run"), "{reply}");
    assert!(
        !reply.contains("published") && !reply.contains("running"),
        "{reply}"
    );
    let (_, answer) = t
        .client
        .post(
            "/v1/chat/brendan",
            json!({ "user_id": "alice", "message": format!("what's the status of {code}?") }),
        )
        .await;
    assert!(
        !answer["response"].as_str().unwrap().contains("no run"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_proves_the_link_and_nobody_learns_which_runs_exist() {
    let t = TestStack::start(&[]).await;
    let id = t.start_run("aismr").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.wait_for_gate(&id, "ideate").await;
    // Without the key, a run that does not exist and a bad token answer alike.
    let anonymous = reqwest::Client::new();
    let mut answers = Vec::new();
    for run in [
        id.as_str(),
        "TVG-ZZZ999",
        "0195f0c8-0000-7000-8000-000000000000",
    ] {
        let response = anonymous
            .post(format!(
                "{}/v1/hitl/approve/{run}/ideate?token=bm90LWEtdG9rZW4",
                t.client.base
            ))
            .send()
            .await
            .unwrap();
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 403);

    // A name sent with a link is a claim, not who decided.
    let (_, link) = t.client.get(&format!("/v1/hitl/link/{id}/ideate")).await;
    let url = link["url"].as_str().unwrap();
    let response = anonymous
        .post(url)
        .json(&json!({ "by": "ceo@company", "comment": "ship it" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let e = t.evidence(&id).await;
    let gate = e
        .hitl_requests
        .iter()
        .find(|g| g.gate.as_str() == "ideate")
        .unwrap();
    assert_eq!(gate.decided_by.as_deref(), Some("link"));
    let approval = e
        .artifacts
        .iter()
        .find(|a| a.artifact_type.as_str() == "hitl.approval")
        .unwrap();
    assert_eq!(approval.metadata["by"], "link");
    assert_eq!(
        approval.metadata["claimed_by"],
        "ceo@company (self-declared, not verified)"
    );
}

#[cfg(unix)]
#[test]
fn local_files_with_secrets_or_links_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(".myloware");
    let out = std::process::Command::new(crate::cli::mw_binary())
        .args(["live-run", "test-video-gen"])
        .current_dir(dir.path())
        .env("MYLOWARE_HOME", &home)
        .env("MOCK_LATENCY_MS", "0")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let job_code = text
        .lines()
        .find_map(|l| l.strip_prefix("job code"))
        .map(str::trim)
        .expect("the summary names the job code")
        .to_owned();
    let bundle = dir.path().join("bundle");
    let out = std::process::Command::new(crate::cli::mw_binary())
        .args(["evidence", &job_code, "--bundle"])
        .arg(&bundle)
        .current_dir(dir.path())
        .env("MYLOWARE_HOME", &home)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&bundle), 0o700);
    for file in [
        home.join("mw.db"),
        home.join("secrets.env"),
        home.join("logs/mw.log"),
        bundle.join("evidence.json"),
        bundle.join("summary.md"),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    let evidence = std::fs::read_to_string(bundle.join("evidence.json")).unwrap();
    assert!(
        evidence.contains("[TASK TOKEN]"),
        "the history's task tokens are redacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_past_the_limit_are_shed_with_503_and_retry_after() {
    let t = TestStack::start(&[("MAX_IN_FLIGHT", "1")]).await;
    let id = t.start_run("aismr").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.wait_for_gate(&id, "ideate").await;
    // A long-poll holds the one place for a few seconds.
    let client = t.client.clone();
    let holder = tokio::spawn(async move {
        client
            .get(&format!("/v1/runs/{id}?status=awaiting_approval&wait=3"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = t
        .client
        .http
        .get(format!("{}/health", t.client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "unavailable");
    let (status, _) = holder.await.unwrap();
    assert_eq!(status, 200, "the held request finishes");
    let (status, _) = t.client.get("/health").await;
    assert_eq!(status, 200, "and the place is free again");
}

/// The API key is taken in `x-api-key` or as a bearer token (what a
/// Prometheus scraper sends to `/metrics`); a wrong or malformed one of either
/// is refused, with the answer saying both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_key_is_taken_as_a_bearer_token_too() {
    let t = TestStack::start(&[]).await;
    let get = |auth: Option<&'static str>| {
        let mut request = t.client.http.get(format!("{}/metrics", t.client.base));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move { request.send().await.unwrap() }
    };
    let scraped = get(Some("Bearer test-api-key-0123456789")).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("# TYPE"));
    assert_eq!(
        get(Some("bearer test-api-key-0123456789")).await.status(),
        200
    );
    for refused in [
        None,
        Some("Bearer wrong-key-0123456789abcdef"),
        Some("Basic dGVzdC1hcGkta2V5LTAxMjM0NTY3ODk="),
        Some("Bearer"),
    ] {
        let response = get(refused).await;
        assert_eq!(response.status(), 401, "{refused:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body.to_string().contains("Authorization: Bearer"),
            "{refused:?}: {body}"
        );
    }
}
