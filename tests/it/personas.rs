//! Personas through the OpenAI-compatible port, and Brendan through the
//! runbook's own curl.
use axum::routing::post;
use axum::{Json, Router};
use myloware::domain::RunStatus;
use myloware_tests::TestStack;
use serde_json::{json, Value};

/// A chat-completions server whose model always asks for `publish_video`.
async fn rogue_model() -> String {
    async fn complete(Json(_request): Json<Value>) -> Json<Value> {
        Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "rogue",
            "choices": [{ "index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{ "id": "call_1", "type": "function", "function": {
                    "name": "publish_video",
                    "arguments": "{\"video_url\":\"https://x/v.mp4\",\"caption\":\"hi\",\"platforms\":[\"tiktok\"]}" } }] } }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 }
        }))
    }
    let app = Router::new()
        .route("/chat/completions", post(complete))
        .route("/v1/chat/completions", post(complete));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tool_outside_the_allowlist_fails_the_run_naming_persona_and_tool() {
    let llm = rogue_model().await;
    let t = TestStack::start(&[("LLM_BASE_URL", &llm), ("LLM_MODEL", "rogue")]).await;
    let run = t.start_run("test-video-gen").await;
    let id = run["run_id"].as_str().unwrap();
    let e = t.wait_for_status(id, RunStatus::Failed).await;
    let error = e.run.error.clone().unwrap();
    assert!(
        error.contains("iggy") && error.contains("publish_video"),
        "{error}"
    );
    assert!(error.contains("allowlist"), "{error}");
    let failed = e
        .artifacts
        .iter()
        .find(|a| a.artifact_type.as_str() == "run.failed")
        .expect("run.failed");
    assert_eq!(
        failed.persona.map(|p| p.to_string()).as_deref(),
        Some("iggy")
    );
    assert_eq!(failed.metadata["error"], "Agent.ToolNotAllowed");
    assert!(e.provider_jobs.is_empty(), "the refused tool never ran");
    assert_eq!(e.history.last().unwrap().event_type, "ExecutionFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brendan_answers_the_runbook_curl_and_remembers_the_run() {
    let t = TestStack::start(&[]).await;
    // The runbook's call: `curl -H "x-api-key: …" -X POST …/v1/chat/brendan -d '{…}'`
    // sends form encoding, not JSON; it must work as written.
    let say = |message: &str| {
        let body = json!({ "user_id": "dev", "message": message }).to_string();
        t.client
            .http
            .post(format!("{}/v1/chat/brendan", t.client.base))
            .header("x-api-key", "test-api-key-0123456789")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let answer: Value = say("Start a test video gen run")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = answer["response"].as_str().unwrap();
    assert!(response.contains("TVG-"), "{answer}");
    let run_id = answer["run_ids"][0].as_str().unwrap().to_owned();
    t.wait_for_status(&run_id, RunStatus::Published).await;

    let answer: Value = say("what's the status of it?")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["response"].as_str().unwrap().contains("published"),
        "{answer}"
    );
    assert_eq!(
        answer["run_ids"][0],
        run_id.as_str(),
        "Brendan remembered which run"
    );

    let answer: Value = say("make an aismr video about a glass apple")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aismr = answer["run_ids"][0].as_str().unwrap().to_owned();
    let e = t.wait_for_gate(&aismr, "ideate").await;
    assert_eq!(e.run.input["message"], "a glass apple");
    assert_eq!(e.run.user_id.as_deref(), Some("dev"));
    let answer: Value = say("approve the ideate gate")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["response"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("approved"),
        "{answer}"
    );
    t.wait_for_gate(&aismr, "prepublish").await;

    let no_key = t
        .client
        .http
        .post(format!("{}/v1/chat/brendan", t.client.base))
        .body(json!({ "user_id": "dev", "message": "hi" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
}
