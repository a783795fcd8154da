//! The mocks' own behaviour: delivery retries, counters, shutdown.
use std::time::Duration;

use super::testing::{self, Receiver, LATENCY};
use super::*;
use crate::providers::kieai::VeoGenerate;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_failed_delivery_is_retried_with_backoff() {
    let (mocks, clients) = testing::start().await;
    let mut receiver = Receiver::start(2).await;
    clients
        .kieai
        .generate(&VeoGenerate::new("retry me", &receiver.url))
        .await
        .unwrap();
    receiver.next(WAIT).await;
    testing::eventually(|| mocks.kieai.snapshot().callbacks_sent == 1).await;
    let stats = mocks.kieai.snapshot();
    assert_eq!(
        (
            stats.callbacks_sent,
            stats.failed_attempts,
            stats.callbacks_dropped
        ),
        (1, 2, 0)
    );
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_callback_is_dropped_after_two_retries() {
    let (mocks, clients) = testing::start().await;
    let mut receiver = Receiver::start(3).await;
    clients
        .kieai
        .generate(&VeoGenerate::new("never lands", &receiver.url))
        .await
        .unwrap();
    assert!(
        !receiver
            .more_within(LATENCY + Duration::from_millis(200))
            .await
    );
    testing::eventually(|| mocks.kieai.snapshot().callbacks_dropped == 1).await;
    let stats = mocks.kieai.snapshot();
    assert_eq!(
        (
            stats.callbacks_sent,
            stats.failed_attempts,
            stats.callbacks_dropped
        ),
        (0, 3, 1)
    );
    mocks.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_then_dropped() {
    let (mocks, clients) = testing::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gone", closed.local_addr().unwrap());
    drop(closed);
    clients
        .kieai
        .generate(&VeoGenerate::new("x", &url))
        .await
        .unwrap();
    testing::eventually(|| mocks.kieai.snapshot().callbacks_dropped == 1).await;
    assert_eq!(mocks.kieai.snapshot().failed_attempts, 3);
    mocks.shutdown().await;
}

#[tokio::test]
async fn requests_are_counted_refused_ones_included() {
    let (mocks, clients) = testing::start().await;
    let anonymous = reqwest::Client::new();
    let refused = anonymous
        .post(format!("{}/edit/v1/render", mocks.shotstack_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let _ = clients
        .shotstack
        .get_render("2abd5c11-0f3d-4c6d-ba20-235fc9b8e8b7")
        .await;
    assert_eq!(mocks.shotstack.snapshot().requests, 2);
    assert_eq!(mocks.kieai.snapshot(), MockStats::default());
    mocks.shutdown().await;
}

#[tokio::test]
async fn without_expected_keys_any_key_is_accepted_but_one_is_required() {
    let secrets = testing::secrets();
    let config = MockConfig::new(LATENCY, secrets.kieai, secrets.upload_post);
    let mocks = MockProviders::start(config).await.unwrap();
    let any =
        crate::providers::KieAiClient::new(&mocks.kieai_url, SecretString::from("whatever"), WAIT);
    any.generate(&VeoGenerate::new("ok", "")).await.unwrap();
    let response = reqwest::Client::new()
        .get(format!(
            "{}{}?taskId=x",
            mocks.kieai_url,
            crate::providers::kieai::RECORD_INFO_PATH
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    mocks.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_servers_and_pending_callbacks() {
    let (mocks, clients) = testing::start().await;
    let mut receiver = Receiver::start(0).await;
    clients
        .kieai
        .generate(&VeoGenerate::new("cancelled", &receiver.url))
        .await
        .unwrap();
    let url = mocks.kieai_url.clone();
    mocks.shutdown().await;
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
    assert!(!receiver.more_within(LATENCY * 2).await);
}
