//! The Shotstack client against the mock, over real HTTP on loopback.
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;

use super::*;
use crate::domain::{Provider, SignatureStatus};
use crate::providers::mock::testing::{self, hanging_server, Receiver, LATENCY};
use crate::webhooks::{self, CallbackKind, OutcomeHint};

const WAIT: Duration = Duration::from_secs(5);

fn edit<'a>(clips: &[ClipSource<'a>], callback: Option<&'a str>) -> RenderRequest<'a> {
    RenderRequest {
        timeline: Timeline::sequence(clips),
        output: Output::mp4("1080", "9:16"),
        callback,
    }
}

async fn settle(client: &ShotstackClient, id: &str) -> RenderStatus {
    let read = || async { client.get_render(id).await.unwrap() };
    testing::settle(&format!("render {id}"), read, |status| {
        matches!(status.status, RenderState::Done | RenderState::Failed)
    })
    .await
}

const CLIPS: [ClipSource<'static>; 2] = [
    ClipSource {
        url: "https://mock-cdn.myloware.local/kieai/a.mp4",
        length: 8.0,
    },
    ClipSource {
        url: "https://mock-cdn.myloware.local/kieai/b.mp4",
        length: 8.0,
    },
];

#[test]
fn the_edit_is_shotstack_json_with_clips_back_to_back() {
    let json = serde_json::to_value(edit(&CLIPS, Some("https://hook.example/s"))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "timeline": { "tracks": [{ "clips": [
                { "asset": { "type": "video", "src": CLIPS[0].url }, "start": 0.0, "length": 8.0 },
                { "asset": { "type": "video", "src": CLIPS[1].url }, "start": 8.0, "length": 8.0 },
            ]}]},
            "output": { "format": "mp4", "resolution": "1080", "aspectRatio": "9:16" },
            "callback": "https://hook.example/s",
        })
    );
}

#[tokio::test]
async fn a_render_goes_from_queued_to_done_with_a_url() {
    let (mocks, clients) = testing::start().await;
    let id = clients.shotstack.render(&edit(&CLIPS, None)).await.unwrap();
    let first = clients.shotstack.get_render(&id).await.unwrap();
    assert_eq!((first.status, first.url), (RenderState::Queued, None));
    let done = settle(&clients.shotstack, &id).await;
    assert_eq!(done.status, RenderState::Done);
    assert_eq!(
        done.url.as_deref(),
        Some(
            format!("https://mock-cdn.myloware.local/shotstack-output/mockowner1/{id}.mp4")
                .as_str()
        )
    );
    assert_eq!(done.error, None);
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_fail_marker_in_the_first_clip_fails_the_render() {
    let (mocks, clients) = testing::start().await;
    let clips = [ClipSource {
        url: "https://x.example/[fail].mp4",
        length: 4.0,
    }];
    let id = clients.shotstack.render(&edit(&clips, None)).await.unwrap();
    let failed = settle(&clients.shotstack, &id).await;
    assert_eq!(failed.status, RenderState::Failed);
    assert!(failed.error.is_some());
    assert_eq!(failed.url, None);
    mocks.shutdown().await;
}

#[tokio::test]
async fn bad_edits_unknown_renders_and_bad_keys_are_errors() {
    let (mocks, clients) = testing::start().await;
    let error = clients
        .shotstack
        .render(&edit(&[], None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 400, .. }),
        "{error:?}"
    );
    let error = clients
        .shotstack
        .get_render("2abd5c11-0f3d-4c6d-ba20-235fc9b8e8b7")
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 404, .. }),
        "{error:?}"
    );
    // Not a render id at all: refused before any request.
    let error = clients.shotstack.get_render("nope").await.unwrap_err();
    assert!(matches!(error, ProviderError::Decode { .. }), "{error:?}");
    let wrong = ShotstackClient::new(&mocks.shotstack_url, SecretString::from("wrong"), WAIT);
    let error = wrong.render(&edit(&CLIPS, None)).await.unwrap_err();
    // Shotstack's gateway refuses a wrong key with 403.
    assert!(
        matches!(error, ProviderError::Unauthorized { status: 403, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong"));
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_server_that_hangs_times_out() {
    let (url, server) = hanging_server().await;
    let client = ShotstackClient::new(&url, SecretString::from("k"), Duration::from_millis(200));
    let error = client.render(&edit(&CLIPS, None)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
    server.abort();
}

#[tokio::test]
async fn a_render_calls_back_twice_unsigned_render_then_cdn_copy() {
    let (mocks, clients) = testing::start().await;
    let mut receiver = Receiver::start(0).await;
    let id = clients
        .shotstack
        .render(&edit(&CLIPS, Some(&receiver.url)))
        .await
        .unwrap();
    let mut received = Vec::new();
    for _ in 0..2 {
        let delivered = receiver.next(WAIT).await;
        let parsed = webhooks::receive(
            Provider::Shotstack,
            &delivered.headers,
            &delivered.body,
            &testing::secrets(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(parsed.signature_status, SignatureStatus::Unsigned);
        assert_eq!(parsed.provider_job_id.as_deref(), Some(id.as_str()));
        received.push(parsed.callback.unwrap().into_inner());
    }
    assert_eq!(received[0].kind, CallbackKind::ShotstackRender);
    assert_eq!(received[1].kind, CallbackKind::ShotstackCdnCopy);
    assert_eq!(
        received[1].outcome_hint,
        OutcomeHint::Succeeded {
            urls: vec![format!(
                "https://mock-cdn.myloware.local/au/v1/mockowner1/{id}.mp4"
            )]
        }
    );
    // Unsigned, so the consumer confirms with the API: it agrees.
    let status = clients.shotstack.get_render(&id).await.unwrap();
    assert_eq!(status.status, RenderState::Done);
    assert!(!receiver.more_within(LATENCY).await);
    testing::eventually(|| mocks.shotstack.snapshot().callbacks_sent == 2).await;
    mocks.shutdown().await;
}
