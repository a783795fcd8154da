//! Test helpers for the provider tests: the mocks with test keys, a local
//! callback receiver, and a server that accepts connections and never
//! answers (for client timeouts).
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{MockConfig, MockProviders};
use crate::domain::{Provider, SignatureStatus};
use crate::providers::{ProviderClients, ProviderKeys};
use crate::webhooks::{self, Received, WebhookSecrets};

pub(crate) const LATENCY: Duration = Duration::from_millis(150);

pub(crate) fn keys() -> ProviderKeys {
    ProviderKeys {
        kieai: SecretString::from("test-kieai-key"),
        shotstack: SecretString::from("test-shotstack-key"),
        upload_post: SecretString::from("test-upload-post-key"),
    }
}

pub(crate) fn secrets() -> WebhookSecrets {
    WebhookSecrets {
        kieai: SecretString::from("test-kieai-webhook-secret"),
        upload_post: SecretString::from("test-upload-post-webhook-secret"),
    }
}

pub(crate) fn config() -> MockConfig {
    let secrets = secrets();
    let mut config = MockConfig::new(LATENCY, secrets.kieai, secrets.upload_post);
    config.api_keys = Some(keys());
    config.retry_backoff = Duration::from_millis(20);
    config
}

/// The mocks (requiring the test keys) and clients pointed at them.
pub(crate) async fn start() -> (MockProviders, ProviderClients) {
    let mocks = MockProviders::start(config()).await.expect("mocks start");
    let clients = ProviderClients::new(&mocks.urls(), keys(), Duration::from_secs(5));
    (mocks, clients)
}

/// A callback as the receiver got it.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A local webhook endpoint (`POST /callback`) that records what it gets and
/// answers 500 to the first `fail_first` requests.
pub(crate) struct Receiver {
    pub url: String,
    received: mpsc::UnboundedReceiver<Delivered>,
    server: JoinHandle<()>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: u32) -> Self {
        let (sender, received) = mpsc::unbounded_channel();
        let failing = Arc::new(AtomicU32::new(fail_first));
        let router = Router::new()
            .route("/callback", post(record))
            .with_state((sender, failing));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url,
            received,
            server,
        }
    }

    /// The next callback, or a panic after `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Delivered {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .expect("a callback in time")
            .expect("receiver open")
    }

    /// Whether another callback arrives within `wait`.
    pub(crate) async fn more_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .is_ok()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type ReceiverState = (mpsc::UnboundedSender<Delivered>, Arc<AtomicU32>);

async fn record(
    State((sender, failing)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let fail = failing
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let _ = sender.send(Delivered { headers, body });
    StatusCode::OK
}

/// A server that accepts connections and never answers; abort it when done.
pub(crate) async fn hanging_server() -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, server)
}

/// Waits until `condition` holds (counters are bumped just after the
/// receiver answered, so a test may see the callback first).
pub(crate) async fn eventually(condition: impl Fn() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within 2s");
}

/// What `read` answers once `done` says it is over, read every third of the
/// mocks' latency; `what` names it when it never is.
pub(crate) async fn settle<T, F>(
    what: &str,
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: std::future::Future<Output = T>,
{
    for _ in 0..50 {
        let answer = read().await;
        if done(&answer) {
            return answer;
        }
        tokio::time::sleep(LATENCY / 3).await;
    }
    panic!("{what} never ended");
}

/// A delivered callback as the webhook route reads it, checked with the
/// test secrets now; the signature verified.
pub(crate) fn verified(provider: Provider, delivered: &Delivered) -> Received {
    let received = webhooks::receive(
        provider,
        &delivered.headers,
        &delivered.body,
        &secrets(),
        chrono::Utc::now(),
    )
    .unwrap();
    assert_eq!(received.signature_status, SignatureStatus::Verified);
    received
}
