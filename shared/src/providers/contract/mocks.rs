//! The mocks answer and call back only in documented shapes.
use std::time::Duration;

use serde_json::{json, Value};

use super::assert_documented;
use crate::providers::mock::testing::{self, Receiver, LATENCY};
use crate::providers::mock::{MockFaults, MockProviders};

const WAIT: Duration = Duration::from_secs(5);

/// The mocks with `faults`, and a plain HTTP client to read their raw answers.
async fn start(faults: MockFaults) -> (MockProviders, reqwest::Client) {
    let mut config = testing::config();
    config.faults = faults;
    config.slow_delay = Duration::from_millis(1);
    (
        MockProviders::start(config).await.expect("mocks start"),
        reqwest::Client::new(),
    )
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the mock answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Faults that refuse every request with the rate-limit answer.
fn throttled() -> MockFaults {
    MockFaults {
        throttle: 1.0,
        ..MockFaults::default()
    }
}

/// The answer to `request`, checked against `provider`'s documented
/// `exchange`.
async fn documented(provider: &str, exchange: &str, request: reqwest::RequestBuilder) -> Value {
    let (status, body) = answer(request).await;
    assert_documented(provider, exchange, Some(status), &body);
    body
}

fn bearer() -> &'static str {
    "Bearer test-kieai-key"
}

#[tokio::test]
async fn mock_kieai_speaks_the_documented_shapes() {
    for nulls in [0.0, 1.0] {
        let (mocks, http) = start(MockFaults {
            nulls,
            ..MockFaults::default()
        })
        .await;
        let mut receiver = Receiver::start(0).await;
        let mut task_ids = Vec::new();
        for prompt in ["a cat", "[fail] a cat"] {
            let body = documented("kieai", "POST /api/v1/veo/generate", http.post(format!("{}/api/v1/veo/generate", mocks.kieai_url))
                    .header("authorization", bearer())
                    .json(&json!({ "prompt": prompt, "aspect_ratio": "9:16", "callBackUrl": receiver.url })),).await;
            task_ids.push(body["data"]["taskId"].as_str().unwrap().to_owned());
        }
        let record = |id: &str| {
            http.get(format!(
                "{}/api/v1/veo/record-info?taskId={id}",
                mocks.kieai_url
            ))
            .header("authorization", bearer())
        };
        for id in &task_ids {
            let (status, body) = answer(record(id)).await;
            assert_eq!(body["data"]["successFlag"], 0);
            assert_documented("kieai", "GET /api/v1/veo/record-info", Some(status), &body);
        }
        for _ in &task_ids {
            let delivered = receiver.next(WAIT).await;
            let body: Value = serde_json::from_slice(&delivered.body).unwrap();
            assert_documented("kieai", "callback", None, &body);
        }
        tokio::time::sleep(LATENCY).await;
        for (id, flag) in task_ids.iter().zip([1, 3]) {
            let (status, body) = answer(record(id)).await;
            assert_eq!(body["data"]["successFlag"], flag, "{body}");
            assert_documented("kieai", "GET /api/v1/veo/record-info", Some(status), &body);
            if nulls == 1.0 && flag == 1 {
                // Real answers: epoch milliseconds and `originUrls: null`.
                assert!(body["data"]["completeTime"].is_i64(), "{body}");
                assert!(body["data"]["response"]["originUrls"].is_null(), "{body}");
            }
        }
        documented(
            "kieai",
            "GET /api/v1/veo/record-info",
            record("no-such-task"),
        )
        .await;
        documented(
            "kieai",
            "GET /api/v1/chat/credit",
            http.get(format!("{}/api/v1/chat/credit", mocks.kieai_url))
                .header("authorization", bearer()),
        )
        .await;
        mocks.shutdown().await;
    }

    // Refused before it is handled: the documented rate-limit answer.
    let (mocks, http) = start(throttled()).await;
    let (status, body) = answer(
        http.post(format!("{}/api/v1/veo/generate", mocks.kieai_url))
            .header("authorization", bearer())
            .json(&json!({ "prompt": "a cat" })),
    )
    .await;
    assert_eq!(status, 429);
    assert_documented("kieai", "POST /api/v1/veo/generate", Some(status), &body);
    assert_eq!(mocks.kieai.snapshot().accepted, 0, "nothing was created");
    mocks.shutdown().await;
}

#[tokio::test]
async fn mock_shotstack_speaks_the_documented_shapes() {
    let (mocks, http) = start(MockFaults::default()).await;
    let mut receiver = Receiver::start(0).await;
    let key = |r: reqwest::RequestBuilder| r.header("x-api-key", "test-shotstack-key");
    let edit = |src: &str| {
        json!({ "timeline": { "tracks": [{ "clips": [{ "asset": { "type": "video", "src": src },
                "start": 0, "length": 8 }] }] },
                "output": { "format": "mp4", "resolution": "hd", "aspectRatio": "9:16" },
                "callback": receiver.url })
    };
    let mut ids = Vec::new();
    for src in [
        "https://cdn.example/a.mp4",
        "https://cdn.example/[fail].mp4",
    ] {
        let body = documented(
            "shotstack",
            "POST /edit/{stage}/render",
            key(http.post(format!("{}/edit/v1/render", mocks.shotstack_url))).json(&edit(src)),
        )
        .await;
        ids.push(body["response"]["id"].as_str().unwrap().to_owned());
    }
    documented(
        "shotstack",
        "POST /edit/{stage}/render",
        key(http.post(format!("{}/edit/v1/render", mocks.shotstack_url))).json(&json!({})),
    )
    .await;
    // Every status on the way, then done and failed.
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        for id in &ids {
            let body = documented(
                "shotstack",
                "GET /edit/{stage}/render/{id}",
                key(http.get(format!(
                    "{}/edit/v1/render/{id}?data=false",
                    mocks.shotstack_url
                ))),
            )
            .await;
            seen.insert(body["response"]["status"].as_str().unwrap().to_owned());
        }
        if seen.contains("done") && seen.contains("failed") || std::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(LATENCY / 10).await;
    }
    assert!(seen.len() >= 4, "{seen:?}");
    // With `data`, the edit as submitted, its callback URL included.
    let body = documented(
        "shotstack",
        "GET /edit/{stage}/render/{id}",
        key(http.get(format!(
            "{}/edit/v1/render/{}?data=true",
            mocks.shotstack_url, ids[0]
        ))),
    )
    .await;
    assert_eq!(body["response"]["data"]["callback"], json!(receiver.url));
    // Three callbacks: the good render's two, the failed render's one.
    for _ in 0..3 {
        let delivered = receiver.next(WAIT).await;
        let body: Value = serde_json::from_slice(&delivered.body).unwrap();
        assert_documented("shotstack", "callback", None, &body);
    }
    let body = documented(
        "shotstack",
        "GET /serve/{stage}/assets/render/{id}",
        key(http.get(format!(
            "{}/serve/v1/assets/render/{}",
            mocks.shotstack_url, ids[0]
        ))),
    )
    .await;
    assert_eq!(body["data"][0]["attributes"]["status"], "ready", "{body}");
    documented(
        "shotstack",
        "GET /edit/{stage}/templates",
        key(http.get(format!("{}/edit/stage/templates", mocks.shotstack_url))),
    )
    .await;
    mocks.shutdown().await;

    let (mocks, http) = start(throttled()).await;
    let (status, body) = answer(key(
        http.get(format!("{}/edit/v1/render/{}", mocks.shotstack_url, ids[0]))
    ))
    .await;
    assert_eq!(status, 429);
    assert_documented("shotstack", "any", Some(status), &body);
    mocks.shutdown().await;
}

#[tokio::test]
async fn mock_upload_post_speaks_the_documented_shapes() {
    for nulls in [0.0, 1.0] {
        let (mocks, http) = start(MockFaults {
            nulls,
            ..MockFaults::default()
        })
        .await;
        let receiver = Receiver::start(0).await;
        let mut receiver = receiver;
        let key =
            |r: reqwest::RequestBuilder| r.header("authorization", "Apikey test-upload-post-key");
        documented("upload_post", "POST /api/uploadposts/users/notifications", key(http.post(format!("{}/api/uploadposts/users/notifications", mocks.upload_post_url)))
                .json(&json!({ "channels": { "webhook": true, "telegram": false }, "webhook_url": receiver.url,
                               "webhook_events": { "upload_completed": true, "social_account_connected": false,
                                                   "social_account_disconnected": false, "social_account_reauth_required": false } })),).await;
        let form = |title: &str, request_id: &str| {
            reqwest::multipart::Form::new()
                .text("user", "brand")
                .text("title", title.to_owned())
                .text("video", "https://cdn.example/v.mp4")
                .text("platform[]", "tiktok")
                .text("platform[]", "instagram")
                .text("async_upload", "true")
                .text("request_id", request_id.to_owned())
        };
        let status = |request_id: &str| {
            key(http.get(format!(
                "{}/api/uploadposts/status?request_id={request_id}",
                mocks.upload_post_url
            )))
        };
        for (title, request_id) in [("A title", "mw-1"), ("[fail] A title", "mw-2")] {
            let upload = || {
                key(http.post(format!("{}/api/upload", mocks.upload_post_url)))
                    .header("idempotency-key", request_id)
                    .multipart(form(title, request_id))
            };
            let body = documented("upload_post", "POST /api/upload", upload()).await;
            assert_eq!(body["request_id"], request_id);
            assert_eq!(body["job_id"].is_string(), nulls == 0.0, "{body}");
            // Sent again with the same key: the same upload, nothing new.
            let (_, again) = answer(upload()).await;
            assert_eq!(again, body);
            documented(
                "upload_post",
                "GET /api/uploadposts/status",
                status(request_id),
            )
            .await;
        }
        assert_eq!(mocks.upload_post.snapshot().accepted, 2);
        for _ in 0..4 {
            let delivered = receiver.next(WAIT).await;
            let body: Value = serde_json::from_slice(&delivered.body).unwrap();
            assert_documented("upload_post", "webhook", None, &body);
        }
        for request_id in ["mw-1", "mw-2", "nothing"] {
            documented(
                "upload_post",
                "GET /api/uploadposts/status",
                status(request_id),
            )
            .await;
        }
        documented(
            "upload_post",
            "GET /api/uploadposts/me",
            key(http.get(format!("{}/api/uploadposts/me", mocks.upload_post_url))),
        )
        .await;
        documented(
            "upload_post",
            "GET /api/uploadposts/me",
            http.get(format!("{}/api/uploadposts/me", mocks.upload_post_url)),
        )
        .await;
        documented(
            "upload_post",
            "POST /api/upload",
            key(http.post(format!("{}/api/upload", mocks.upload_post_url)))
                .multipart(reqwest::multipart::Form::new().text("title", "x")),
        )
        .await;
        mocks.shutdown().await;
    }

    for (faults, status) in [
        (
            MockFaults {
                throttle: 1.0,
                ..MockFaults::default()
            },
            429,
        ),
        (
            MockFaults {
                server_error: 1.0,
                ..MockFaults::default()
            },
            0,
        ),
    ] {
        let (mocks, http) = start(faults).await;
        let (got, body) = answer(
            http.get(format!("{}/api/uploadposts/me", mocks.upload_post_url))
                .header("authorization", "Apikey test-upload-post-key"),
        )
        .await;
        if status != 0 {
            assert_eq!(got, status);
            assert_documented("upload_post", "POST /api/upload", Some(got), &body);
        } else {
            assert!((500..600).contains(&got), "{got}");
            assert_documented("upload_post", "POST /api/upload", Some(500), &body);
        }
        mocks.shutdown().await;
    }
}
