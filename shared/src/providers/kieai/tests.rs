//! The kie.ai client against the mock, over real HTTP on loopback.
use std::time::Duration;

use secrecy::SecretString;

use super::*;
use crate::providers::mock::testing::{self, hanging_server, Receiver};
use crate::webhooks::{CallbackKind, OutcomeHint};

const WAIT: Duration = Duration::from_secs(5);

async fn settle(client: &KieAiClient, task_id: &str) -> VeoTask {
    let read = || async { client.record_info(task_id).await.unwrap() };
    testing::settle(&format!("task {task_id}"), read, |task| {
        task.state != VeoState::Pending
    })
    .await
}

#[tokio::test]
async fn a_clip_is_pending_then_succeeds_with_a_deterministic_url() {
    let (mocks, clients) = testing::start().await;
    let request = VeoGenerate::new("a cat in a garden", "");
    let task_id = clients.kieai.generate(&request).await.unwrap();
    let first = clients.kieai.record_info(&task_id).await.unwrap();
    assert_eq!(first.state, VeoState::Pending);
    let done = settle(&clients.kieai, &task_id).await;
    assert_eq!(
        done.state,
        VeoState::Succeeded {
            result_urls: vec![format!(
                "https://mock-cdn.myloware.local/kieai/{task_id}.mp4"
            )]
        }
    );
    assert!(mocks.kieai.snapshot().requests >= 3);
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_fail_marker_ends_the_task_failed_with_kieai_error() {
    let (mocks, clients) = testing::start().await;
    let task_id = clients
        .kieai
        .generate(&VeoGenerate::new("[fail] forbidden scene", ""))
        .await
        .unwrap();
    let VeoState::Failed { code, message } = settle(&clients.kieai, &task_id).await.state else {
        panic!("expected a failure");
    };
    assert_eq!(code, Some(400));
    assert!(message.contains("content policies"));
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_unauthorized_and_not_echoed() {
    let (mocks, _) = testing::start().await;
    let secret = "wrong-key-that-must-not-leak";
    let client = KieAiClient::new(&mocks.kieai_url, SecretString::from(secret), WAIT);
    let error = client
        .generate(&VeoGenerate::new("x", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(secret));
    let empty = KieAiClient::new(&mocks.kieai_url, SecretString::from(""), WAIT);
    let error = empty.record_info("anything").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_eq!(mocks.kieai.snapshot().requests, 2);
    mocks.shutdown().await;
}

#[tokio::test]
async fn an_error_code_in_the_envelope_is_an_api_error_with_its_message() {
    let (mocks, clients) = testing::start().await;
    let error = clients
        .kieai
        .generate(&VeoGenerate::new(" ", ""))
        .await
        .unwrap_err();
    let ProviderError::Api { code, message, .. } = error else {
        panic!("expected an API error, got {error:?}");
    };
    assert_eq!((code, message.as_str()), (422, "prompt is required"));
    // An unknown task: kie.ai's documented `422 record is null`.
    let error = clients.kieai.record_info("no-such-task").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Api { code: 422, ref message, .. } if message == "record is null"),
        "{error:?}"
    );
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_server_that_hangs_times_out() {
    let (url, server) = hanging_server().await;
    let timeout = Duration::from_millis(200);
    let client = KieAiClient::new(&url, SecretString::from("k"), timeout);
    let started = std::time::Instant::now();
    let error = client.record_info("t").await.unwrap_err();
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    server.abort();
}

#[tokio::test]
async fn a_submission_calls_back_signed_and_the_signature_verifies() {
    let (mocks, clients) = testing::start().await;
    let mut receiver = Receiver::start(0).await;
    let mut request = VeoGenerate::new("a dog surfing", &receiver.url);
    request.aspect_ratio = "9:16";
    let task_id = clients.kieai.generate(&request).await.unwrap();

    let delivered = receiver.next(WAIT).await;
    let received = testing::verified(crate::domain::Provider::KieAi, &delivered);
    assert_eq!(received.idempotency_key, format!("kieai:{task_id}:200"));
    let callback = received.callback.unwrap();
    assert_eq!(callback.job_id, task_id);
    assert_eq!(callback.kind, CallbackKind::KieAiResult);
    assert!(
        matches!(callback.outcome_hint, OutcomeHint::Succeeded { ref urls } if urls.len() == 1)
    );
    // The callback time is the task's end: record-info agrees.
    let task = clients.kieai.record_info(&task_id).await.unwrap();
    assert!(matches!(task.state, VeoState::Succeeded { .. }));
    testing::eventually(|| mocks.kieai.snapshot().callbacks_sent == 1).await;
    mocks.shutdown().await;
}

#[test]
fn the_request_uses_kieai_field_names() {
    let images = ["https://img.example/1.png"];
    let mut request = VeoGenerate::new("p", "https://hook.example/k");
    request.image_urls = &images;
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "prompt": "p", "model": "veo3_fast", "aspect_ratio": "16:9",
            "callBackUrl": "https://hook.example/k", "imageUrls": ["https://img.example/1.png"],
        })
    );
}
