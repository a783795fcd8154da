//! The clients read every documented answer and callback.
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::Value;

use super::{fixture, fixtures, Fixture, FixtureServer};
use crate::domain::{Provider, SignatureStatus};
use crate::providers::kieai::{VeoGenerate, VeoState};
use crate::providers::llm::{Llm, LlmError, LlmRequest, Message, OpenAiLlm};
use crate::providers::shotstack::{AssetState, RenderState};
use crate::providers::upload_post::{PublishState, Upload, UploadRef};
use crate::providers::{ProviderClients, ProviderError, ProviderKeys, ProviderUrls, RetryPolicy};
use crate::webhooks::{self, OutcomeHint, WebhookSecrets};

/// The three clients pointed at `server`, without retries (each fixture is
/// one answer).
fn clients(server: &FixtureServer) -> ProviderClients {
    let urls = ProviderUrls {
        kieai: server.url.clone(),
        shotstack: server.url.clone(),
        shotstack_stage: Default::default(),
        upload_post: server.url.clone(),
    };
    let key = || SecretString::from("fixture-key");
    let keys = ProviderKeys {
        kieai: key(),
        shotstack: key(),
        upload_post: key(),
    };
    ProviderClients::new(&urls, keys, Duration::from_secs(5)).with_retry(RetryPolicy::NONE)
}

/// The fixtures of `provider` answering `exchange` (responses only).
fn answers(provider: &str, exchange: &str) -> Vec<Fixture> {
    fixtures(provider)
        .into_iter()
        .filter(|f| f.exchange == exchange && f.direction == "response")
        .collect()
}

/// `body` received with `headers` as `provider`'s callback: its signature
/// verified, or the fixture `name` fails.
fn verified(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: chrono::DateTime<Utc>,
    name: &str,
) -> webhooks::Received {
    let received = webhooks::receive(provider, headers, body, secrets, now)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        received.signature_status,
        SignatureStatus::Verified,
        "{name}"
    );
    received
}

#[tokio::test]
async fn the_kieai_client_reads_every_documented_answer() {
    let server = FixtureServer::start(fixture("kieai", "generate_ok")).await;
    let kieai = clients(&server).kieai;
    let mut seen = 0;
    for f in answers("kieai", "GET /api/v1/veo/record-info") {
        server.answer(f.clone());
        let outcome = kieai.record_info("veo_task_abcdef123456").await;
        let flag = f.body["data"]["successFlag"].as_i64();
        match (flag, outcome) {
            (Some(0), Ok(task)) => assert_eq!(task.state, VeoState::Pending, "{}", f.name),
            (Some(1), Ok(task)) => {
                let VeoState::Succeeded { result_urls } = task.state else {
                    panic!("{}: {task:?}", f.name)
                };
                assert_eq!(result_urls.len(), 1, "{}", f.name);
                assert!(result_urls[0].starts_with("http"), "{}", f.name);
            }
            (Some(2 | 3), Ok(task)) => {
                let VeoState::Failed { code, message } = task.state else {
                    panic!("{}: {task:?}", f.name)
                };
                assert!(code.is_some() && !message.is_empty(), "{}", f.name);
            }
            (
                None,
                Err(ProviderError::Api {
                    code: 422, message, ..
                }),
            ) => {
                assert_eq!(message, "record is null", "{}", f.name)
            }
            (flag, outcome) => panic!("{}: successFlag {flag:?} gave {outcome:?}", f.name),
        }
        seen += 1;
    }
    assert!(seen >= 6, "{seen} record-info answers");
    // The callback URL a task was given, where `paramJson` echoes it.
    server.answer(fixture("kieai", "record_info_success_param_callback"));
    let task = kieai.record_info("veo_task_abcdef123456").await.unwrap();
    assert!(
        task.callback_url.as_deref().is_some_and(
            |url| url.ends_with("?intent=mw-intent-0123456789abcdef0123456789abcdef&item=3")
        ),
        "{task:?}"
    );
    server.answer(fixture("kieai", "record_info_success"));
    let task = kieai.record_info("veo_task_abcdef123456").await.unwrap();
    assert_eq!(task.callback_url, None, "the docs' example echoes no URL");

    for f in answers("kieai", "POST /api/v1/veo/generate") {
        server.answer(f.clone());
        let outcome = kieai
            .generate(&VeoGenerate::new("a cat", "https://cb"))
            .await;
        let code = f.body["code"].as_i64().unwrap_or_default();
        match (code, outcome) {
            (200, Ok(task_id)) => assert_eq!(task_id, "veo_task_abcdef123456"),
            (401, Err(ProviderError::Unauthorized { message, .. })) => {
                assert!(message.contains("access permissions"), "{message}")
            }
            (429, Err(e @ ProviderError::Status { status: 429, .. })) => {
                assert!(e.is_transient(), "{}", f.name)
            }
            (code, Err(e @ ProviderError::Api { .. })) => {
                // The provider's words reach the error, whatever the code.
                let msg = f.body["msg"].as_str().unwrap();
                assert!(e.to_string().contains(msg), "{}: {e}", f.name);
                assert_eq!(
                    e.is_transient(),
                    matches!(code, 429 | 455 | 500),
                    "{}: {e}",
                    f.name
                );
            }
            (code, outcome) => panic!("{}: code {code} gave {outcome:?}", f.name),
        }
    }

    server.answer(fixture("kieai", "credit_ok"));
    assert_eq!(kieai.credits().await.unwrap(), 100.0);

    // The request as sent matches the documented field names.
    server.answer(fixture("kieai", "generate_ok"));
    kieai
        .generate(&VeoGenerate::new(
            "a cat",
            "https://cb.example/v1/webhooks/kieai",
        ))
        .await
        .unwrap();
    let (line, headers, body) = server.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(line, "POST /api/v1/veo/generate");
    assert_eq!(headers["authorization"], "Bearer fixture-key");
    let sent: Value = serde_json::from_slice(&body).unwrap();
    super::conforms(&sent, &fixture("kieai", "generate_request").body).unwrap();
}

#[tokio::test]
async fn kieai_callbacks_are_read_as_documented() {
    let secret = SecretString::from("kieai-hmac-key-0123456789");
    let secrets = WebhookSecrets {
        kieai: secret.clone(),
        upload_post: SecretString::from("unused-secret-0123456789"),
    };
    for f in fixtures("kieai")
        .into_iter()
        .filter(|f| f.direction == "callback")
    {
        let data = &f.body["data"];
        let task_id = data["taskId"]
            .as_str()
            .or(data["task_id"].as_str())
            .unwrap()
            .to_owned();
        let now = Utc::now();
        let mut headers = HeaderMap::new();
        headers.insert("x-webhook-timestamp", HeaderValue::from(now.timestamp()));
        headers.insert(
            "x-webhook-signature",
            HeaderValue::from_str(&webhooks::kieai::sign(&secret, &task_id, now.timestamp()))
                .unwrap(),
        );
        let body = serde_json::to_vec(&f.body).unwrap();
        let received = verified(Provider::KieAi, &headers, &body, &secrets, now, &f.name);
        let callback = received.callback.expect("acted on").into_inner();
        assert_eq!(callback.job_id, task_id);
        match (f.body["code"].as_i64(), &callback.outcome_hint) {
            // The webhook guide's generic example names no result: the
            // consumer asks record-info for it anyway.
            (Some(200), OutcomeHint::Succeeded { urls }) => assert_eq!(
                urls.is_empty(),
                data.get("info").is_none(),
                "{}: {urls:?}",
                f.name
            ),
            (Some(400 | 422 | 500 | 501), OutcomeHint::Failed { message }) => {
                assert!(!message.is_empty(), "{}", f.name)
            }
            (code, hint) => panic!("{}: code {code:?} read as {hint:?}", f.name),
        }
    }
}

#[tokio::test]
async fn the_shotstack_client_reads_every_documented_answer() {
    let server = FixtureServer::start(fixture("shotstack", "render_queued")).await;
    let shotstack = clients(&server).shotstack;
    let id = "2abd5c11-0f3d-4c6d-ba20-235fc9b8e8b7";
    for f in answers("shotstack", "GET /edit/{stage}/render/{id}") {
        server.answer(f.clone());
        let render = shotstack
            .get_render(id)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let documented: RenderState =
            serde_json::from_value(f.body["response"]["status"].clone()).unwrap();
        assert_eq!(render.status, documented, "{}", f.name);
        match render.status {
            RenderState::Done => assert!(render.url.is_some(), "{}", f.name),
            RenderState::Failed => assert!(render.error.is_some(), "{}", f.name),
            _ => {}
        }
    }
    // The callback URL a render was given, from the edit its status echoes.
    server.answer(fixture("shotstack", "render_status_done_with_data"));
    assert_eq!(
        shotstack.render_callback(id).await.unwrap().as_deref(),
        Some("https://my-server.com/callback.php")
    );
    let (line, _, _) = server.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(line, format!("GET /edit/v1/render/{id}?data=true"));
    server.answer(fixture("shotstack", "render_status_done"));
    assert_eq!(shotstack.render_callback(id).await.unwrap(), None);
    // A status this client does not know yet reads as still in progress.
    let mut later = fixture("shotstack", "render_status_queued");
    later.body["response"]["status"] = "transcoding".into();
    server.answer(later);
    assert_eq!(
        shotstack.get_render(id).await.unwrap().status,
        RenderState::Other
    );

    server.answer(fixture("shotstack", "render_queued"));
    let clips = [crate::providers::shotstack::ClipSource {
        url: "https://cdn.example/clip-1.mp4",
        length: 8.0,
    }];
    let request = crate::providers::shotstack::RenderRequest {
        timeline: crate::providers::shotstack::Timeline::sequence(&clips),
        output: crate::providers::shotstack::Output::mp4("hd", "9:16"),
        callback: Some("https://cb.example/v1/webhooks/shotstack"),
    };
    assert_eq!(shotstack.render(&request).await.unwrap(), id);
    let (line, headers, body) = server.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(line, "POST /edit/v1/render");
    assert_eq!(headers["x-api-key"], "fixture-key");
    let sent: Value = serde_json::from_slice(&body).unwrap();
    super::conforms(&sent, &fixture("shotstack", "render_request").body).unwrap();

    server.answer(fixture("shotstack", "serve_assets_by_render"));
    let assets = shotstack
        .hosted_assets("d4697b5a-4d73-4f33-822e-2f8d92db0576")
        .await
        .unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].status, AssetState::Ready);
    assert!(assets[0]
        .url
        .as_deref()
        .unwrap()
        .starts_with("https://cdn.shotstack.io/"));

    server.answer(fixture("shotstack", "templates_list"));
    shotstack.check_key().await.unwrap();

    server.answer(fixture("shotstack", "error_429"));
    let throttled = shotstack.get_render(id).await.unwrap_err();
    assert!(
        matches!(throttled, ProviderError::Status { status: 429, .. }) && throttled.is_transient()
    );
    server.answer(fixture("shotstack", "error_400_validation"));
    let refused = shotstack.get_render(id).await.unwrap_err();
    assert!(!refused.is_transient(), "{refused}");
}

#[tokio::test]
async fn shotstack_ids_are_checked_before_any_request() {
    let server = FixtureServer::start(fixture("shotstack", "render_status_done")).await;
    let shotstack = clients(&server).shotstack;
    for forged in [
        "../../../v1/templates",
        "abc",
        "2abd5c11-0f3d-4c6d-ba20-235fc9b8e8b7?x=1",
        "",
    ] {
        let error = shotstack.get_render(forged).await.unwrap_err();
        assert!(
            matches!(error, ProviderError::Decode { .. }),
            "{forged}: {error}"
        );
        assert!(shotstack.hosted_assets(forged).await.is_err());
    }
    assert!(
        server.requests.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

#[test]
fn shotstack_callbacks_are_read_as_documented() {
    let secrets = WebhookSecrets {
        kieai: SecretString::from("a-secret-0123456789"),
        upload_post: SecretString::from("b-secret-0123456789"),
    };
    for f in fixtures("shotstack")
        .into_iter()
        .filter(|f| f.direction == "callback")
    {
        let body = serde_json::to_vec(&f.body).unwrap();
        let received = webhooks::receive(
            Provider::Shotstack,
            &HeaderMap::new(),
            &body,
            &secrets,
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let callback = received.callback.expect("acted on").into_inner();
        let render = f.body["render"].as_str().or(f.body["id"].as_str()).unwrap();
        assert_eq!(callback.job_id, render, "{}: the job is the render", f.name);
        match (f.body["status"].as_str(), &callback.outcome_hint) {
            (Some("done" | "ready"), OutcomeHint::Succeeded { urls }) => assert_eq!(urls.len(), 1),
            (Some("failed"), OutcomeHint::Failed { .. }) => {}
            (status, hint) => panic!("{}: {status:?} read as {hint:?}", f.name),
        }
    }
}

#[tokio::test]
async fn the_upload_post_client_reads_every_documented_answer() {
    let server = FixtureServer::start(fixture("upload_post", "upload_async_accepted")).await;
    let upload_post = clients(&server).upload_post;
    let platforms = ["tiktok", "instagram"];
    let upload = Upload::new(
        "https://cdn.example/v.mp4",
        "A title",
        "brand",
        &platforms,
        "mw-request-1",
    );
    // The docs' async answer: the request id, no job id.
    let accepted = upload_post.upload(&upload).await.unwrap();
    assert_eq!(accepted.request_id, "1a2b3c4d5e...");
    assert_eq!(accepted.job_id, None);
    // Live answers carry the job id webhooks name.
    server.answer(fixture("upload_post", "upload_async_accepted_observed"));
    let accepted = upload_post.upload(&upload).await.unwrap();
    assert_eq!(
        accepted.job_id.as_deref(),
        Some("714b4b40855d4dad9fc7b4582de09a12")
    );
    // Our request id and the idempotency key go with the upload.
    let (line, headers, body) = server.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(line, "POST /api/upload");
    assert_eq!(headers["authorization"], "Apikey fixture-key");
    assert_eq!(headers["idempotency-key"], "mw-request-1");
    let form = String::from_utf8_lossy(&body);
    let documented = fixture("upload_post", "upload_request_async")
        .form
        .expect("the documented form");
    let sent: Vec<&str> = form
        .split("name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    for field in [
        "user",
        "title",
        "video",
        "platform[]",
        "async_upload",
        "request_id",
    ] {
        assert!(sent.contains(&field), "{field} is sent");
    }
    for field in sent {
        assert!(
            documented.get(field).is_some(),
            "{field} is a documented field"
        );
    }
    // A synchronous answer's per-platform results, partial failure included.
    server.answer(fixture("upload_post", "upload_sync_partial_failure"));
    let platforms2 = ["instagram", "linkedin"];
    let sync = upload_post
        .upload(&Upload {
            platforms: &platforms2,
            ..upload.clone()
        })
        .await
        .unwrap();
    assert!(matches!(
        sync.platforms[0].state,
        PublishState::Published { .. }
    ));
    assert_eq!(
        sync.platforms[1].state,
        PublishState::Failed {
            error: "Expired access token".into()
        }
    );
    // Quotas are final; the rate limit is a throttle with the window's end.
    for (name, quota) in [
        ("error_429_monthly_limit", true),
        ("error_429_daily_cap", true),
        ("error_429_rate_limit", false),
    ] {
        server.answer(fixture("upload_post", name));
        let error = upload_post.upload(&upload).await.unwrap_err();
        assert_eq!(
            matches!(error, ProviderError::Quota { .. }),
            quota,
            "{name}: {error}"
        );
        assert_eq!(error.is_transient(), !quota, "{name}: {error}");
    }
    server.answer(fixture("upload_post", "error_403_plan"));
    let plan = upload_post.upload(&upload).await.unwrap_err();
    assert!(plan.to_string().contains("Free plan"), "{plan}");

    for f in answers("upload_post", "GET /api/uploadposts/status") {
        server.answer(f.clone());
        let outcome = upload_post.status(UploadRef::Request("mw-request-1")).await;
        if f.status == Some(400) {
            assert!(outcome.is_err(), "{}", f.name);
            continue;
        }
        let status = outcome.unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let documented = f.body["status"].as_str().unwrap();
        assert_eq!(status.status, documented, "{}", f.name);
        assert_eq!(
            status.over,
            matches!(documented, "completed" | "failed"),
            "{}",
            f.name
        );
        for row in &status.platforms {
            match documented {
                // In progress, a row's `success` says nothing yet.
                "pending" | "in_progress" | "processing" => {
                    assert_eq!(row.state, PublishState::Pending, "{}", f.name)
                }
                _ => assert_ne!(row.state, PublishState::Pending, "{}", f.name),
            }
            if let PublishState::Failed { error } = &row.state {
                assert!(
                    error.len() > 10,
                    "{}: the platform's words: {error}",
                    f.name
                );
            }
        }
    }
    server.answer(fixture(
        "upload_post",
        "status_completed_platform_failed_observed",
    ));
    let status = upload_post.status(UploadRef::Request("x")).await.unwrap();
    assert_eq!(
        status.job_id.as_deref(),
        Some("714b4b40855d4dad9fc7b4582de09a12")
    );

    server.answer(fixture("upload_post", "me_ok"));
    assert_eq!(
        upload_post.me().await.unwrap().plan.as_deref(),
        Some("Professional")
    );
    server.answer(fixture("upload_post", "notifications_response"));
    let registration = upload_post
        .set_webhook("https://cb.example/v1/webhooks/upload-post")
        .await
        .unwrap();
    assert!(registration.webhook_secret.is_none());
    let (_, _, body) = server.requests.lock().unwrap().last().cloned().unwrap();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    super::conforms(&sent, &fixture("upload_post", "notifications_request").body).unwrap();
    server.answer(fixture("upload_post", "error_401"));
    assert!(matches!(
        upload_post.me().await.unwrap_err(),
        ProviderError::Unauthorized { status: 401, .. }
    ));
}

#[test]
fn upload_post_webhooks_are_read_as_documented() {
    let secret = SecretString::from("upload-post-secret-0123456789");
    let secrets = WebhookSecrets {
        kieai: SecretString::from("unused-secret-0123456789"),
        upload_post: secret.clone(),
    };
    for f in fixtures("upload_post")
        .into_iter()
        .filter(|f| f.direction == "callback")
    {
        let now = Utc::now();
        let body = serde_json::to_vec(&f.body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-upload-post-timestamp",
            HeaderValue::from(now.timestamp()),
        );
        headers.insert(
            "x-upload-post-signature",
            HeaderValue::from_str(&webhooks::upload_post::sign(
                &secret,
                now.timestamp(),
                &body,
            ))
            .unwrap(),
        );
        let received = verified(
            Provider::UploadPost,
            &headers,
            &body,
            &secrets,
            now,
            &f.name,
        );
        let is_result = f.body["event"] == "upload_completed" && f.body["job_id"].is_string();
        assert_eq!(received.callback.is_some(), is_result, "{}", f.name);
        if let Some(callback) = received.callback {
            let success = f.body["result"]["success"].as_bool().unwrap();
            assert_eq!(
                matches!(callback.outcome_hint, OutcomeHint::Succeeded { .. }),
                success,
                "{}",
                f.name
            );
        }
        // Unsigned, the same delivery is recorded but not acted on.
        let unsigned = webhooks::receive(
            Provider::UploadPost,
            &HeaderMap::new(),
            &body,
            &secrets,
            now,
        )
        .unwrap();
        assert_eq!(
            unsigned.signature_status,
            SignatureStatus::Missing,
            "{}",
            f.name
        );
        assert!(unsigned.callback.is_none());
    }
}

#[tokio::test]
async fn the_llm_client_reads_every_documented_answer() {
    let server = FixtureServer::start(fixture("openai", "response_text")).await;
    let llm = OpenAiLlm::new(
        &format!("{}/v1", server.url),
        Some(SecretString::from("sk-fixture")),
        "gpt-4o-mini",
        Duration::from_secs(5),
    )
    .unwrap()
    .with_retry(RetryPolicy::NONE);
    let request = LlmRequest {
        messages: vec![Message::user("hello")],
        tools: Vec::new(),
    };
    for f in answers("openai", "POST /v1/chat/completions") {
        server.answer(f.clone());
        let outcome = llm.chat(&request).await;
        let finish = f.body["choices"][0]["finish_reason"].as_str();
        let refused = f.body["choices"][0]["message"]["refusal"].is_string();
        match (f.status, outcome) {
            (Some(200), Ok(response)) => {
                assert!(
                    !refused && matches!(finish, Some("stop" | "tool_calls")),
                    "{}",
                    f.name
                );
                let calls = f.body["choices"][0]["message"]["tool_calls"]
                    .as_array()
                    .map_or(0, Vec::len);
                assert_eq!(response.message.tool_calls.len(), calls, "{}", f.name);
                for call in &response.message.tool_calls {
                    assert!(call.arguments.is_object(), "{}: {call:?}", f.name);
                }
                assert!(
                    response.usage.is_some_and(|u| u.prompt_tokens > 0),
                    "{}",
                    f.name
                );
                if calls == 0 {
                    assert!(response.message.content.is_some(), "{}", f.name);
                }
            }
            (Some(200), Err(LlmError::Unusable(why))) => {
                assert!(
                    refused || matches!(finish, Some("length" | "content_filter")),
                    "{}: {why}",
                    f.name
                );
            }
            (Some(status), Err(error @ LlmError::Status { .. })) => {
                let LlmError::Status {
                    status: got,
                    ref message,
                    ..
                } = error
                else {
                    unreachable!()
                };
                assert_eq!(got, status, "{}", f.name);
                assert!(!message.is_empty());
                let quota = f.body["error"]["code"] == "insufficient_quota";
                assert_eq!(
                    error.is_transient(),
                    matches!(status, 429 | 500 | 503) && !quota,
                    "{}: {error}",
                    f.name
                );
                if f.name == "error_429_rate_limit" {
                    assert_eq!(error.retry_after(), Some(Duration::from_millis(19_200)));
                }
            }
            (status, outcome) => panic!("{}: {status:?} gave {outcome:?}", f.name),
        }
    }
    // The request as sent matches the documented shape.
    server.answer(fixture("openai", "response_text"));
    llm.chat(&request).await.unwrap();
    let (line, headers, body) = server.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(line, "POST /v1/chat/completions");
    assert_eq!(headers["authorization"], "Bearer sk-fixture");
    let sent: Value = serde_json::from_slice(&body).unwrap();
    super::conforms(&sent, &fixture("openai", "request_with_tools").body).unwrap();
}
