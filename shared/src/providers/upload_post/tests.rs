//! The upload-post client against the mock, over real HTTP on loopback.
use std::time::Duration;

use secrecy::SecretString;

use super::*;
use crate::providers::mock::testing::{self, hanging_server, Receiver};
use crate::providers::ProviderClients;
use crate::webhooks::{CallbackKind, OutcomeHint};

const WAIT: Duration = Duration::from_secs(5);
const VIDEO: &str = "https://mock-cdn.myloware.local/shotstack/serve/r1.mp4";

fn upload<'a>(title: &'a str, platforms: &'a [&'a str]) -> Upload<'a> {
    Upload {
        video_url: VIDEO,
        title,
        description: Some("made by MyloWare"),
        user: "brand",
        platforms,
        async_upload: true,
        request_id: "mw-test-request",
    }
}

async fn settle(client: &UploadPostClient, request_id: &str) -> UploadStatus {
    let read = || async { client.status(UploadRef::Request(request_id)).await.unwrap() };
    testing::settle(&format!("upload {request_id}"), read, |status| {
        status.status == "completed"
    })
    .await
}

/// An asynchronous upload of "Hello" to TikTok and Instagram.
async fn upload_hello(clients: &ProviderClients) -> UploadResult {
    clients
        .upload_post
        .upload(&upload("Hello", &["tiktok", "instagram"]))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_async_upload_is_pending_then_published_per_platform() {
    let (mocks, clients) = testing::start().await;
    let result = upload_hello(&clients).await;
    let request_id = result.request_id.clone();
    assert_eq!(request_id, "mw-test-request", "our id, echoed");
    let job_id = result.job_id.clone().expect("a job id");
    assert!(result
        .platforms
        .iter()
        .all(|p| p.state == PublishState::Pending));
    assert_eq!(result.platforms.len(), 2);
    let first = clients
        .upload_post
        .status(UploadRef::Request(&request_id))
        .await
        .unwrap();
    assert_eq!(first.status, "processing");
    assert!(!first.over);
    let done = settle(&clients.upload_post, &request_id).await;
    let tiktok = done
        .platforms
        .iter()
        .find(|p| p.platform == "tiktok")
        .unwrap();
    assert_eq!(
        tiktok.state,
        PublishState::Published {
            url: Some(format!(
                "https://mock-social.myloware.local/tiktok/{job_id}"
            ))
        }
    );
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_synchronous_upload_answers_with_results() {
    let (mocks, clients) = testing::start().await;
    let mut request = upload("[fail] nope", &["youtube"]);
    request.async_upload = false;
    let result = clients.upload_post.upload(&request).await.unwrap();
    assert!(matches!(
        result.platforms[0].state,
        PublishState::Failed { .. }
    ));
    mocks.shutdown().await;
}

#[tokio::test]
async fn missing_fields_and_bad_keys_are_errors() {
    let (mocks, clients) = testing::start().await;
    let error = clients
        .upload_post
        .upload(&upload("T", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 400, .. }),
        "{error:?}"
    );
    let wrong = UploadPostClient::new(&mocks.upload_post_url, SecretString::from("nope-key"), WAIT);
    let error = wrong.upload(&upload("T", &["tiktok"])).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("nope-key"));
    // upload-post answers 404 with `{"status": "not_found"}`.
    let unknown = clients
        .upload_post
        .status(UploadRef::Request("unknown"))
        .await
        .unwrap();
    assert_eq!(unknown.status, "not_found");
    assert!(!unknown.over);
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_server_that_hangs_times_out() {
    let (url, server) = hanging_server().await;
    let client = UploadPostClient::new(&url, SecretString::from("k"), Duration::from_millis(200));
    let error = client.upload(&upload("T", &["tiktok"])).await.unwrap_err();
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
    server.abort();
}

#[tokio::test]
async fn each_platform_calls_back_signed_over_the_body() {
    let (mocks, clients) = testing::start().await;
    let mut receiver = Receiver::start(0).await;
    clients
        .upload_post
        .set_webhook(&receiver.url)
        .await
        .unwrap();
    let result = upload_hello(&clients).await;
    let job_id = result.job_id.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let delivered = receiver.next(WAIT).await;
        let received = testing::verified(crate::domain::Provider::UploadPost, &delivered);
        let callback = received.callback.unwrap();
        assert!(callback.signature_covers_body);
        assert_eq!(callback.job_id, job_id);
        assert!(
            matches!(callback.outcome_hint, OutcomeHint::Succeeded { ref urls } if urls.len() == 1)
        );
        let CallbackKind::UploadPostResult { platform } = &callback.kind else {
            panic!("unexpected kind {:?}", callback.kind);
        };
        seen.push(platform.clone());
        assert_eq!(
            received.idempotency_key,
            format!("upload-post:{job_id}:{platform}")
        );
    }
    seen.sort();
    assert_eq!(seen, ["instagram", "tiktok"]);
    testing::eventually(|| mocks.upload_post.snapshot().callbacks_sent == 2).await;
    mocks.shutdown().await;
}
