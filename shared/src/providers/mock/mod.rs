//! Mock kie.ai, Shotstack and upload-post: real HTTP servers on loopback
//! ephemeral ports that speak each provider's API (same paths, bodies and
//! auth headers) and call back exactly as the real services do, after a
//! configured latency. `PROVIDERS_MODE=mock` runs the whole pipeline against
//! them, so the clients, the webhook receiver and the callback consumer are
//! exercised for real even offline.
//!
//! Their answers and callbacks have the shapes the providers document (and,
//! where the docs are silent, the shapes live answers show): the fixtures
//! under `shared/fixtures/providers/`, which tests hold each mock to.
//!
//! Results are fake but well-formed and deterministic from the job id
//! (`https://mock-cdn.myloware.local/kieai/{taskId}.mp4`, …). Failure
//! injection: a kie.ai prompt, a Shotstack first clip URL or an upload-post
//! title containing `[fail]` ends that job failed; `MOCK_FAULTS` adds the
//! faults of real services (see [`faults`]). Counters of received requests,
//! work accepted and callbacks sent are there for tests, `mw doctor` and
//! the soak command.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use super::mock_faults as faults;
use super::{ProviderKeys, ProviderUrls};
pub use faults::MockFaults;

mod deliver;
mod kieai;
mod shotstack;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod upload_post;

/// The host of every fake result URL.
pub const MOCK_CDN: &str = "https://mock-cdn.myloware.local";
/// The marker that makes a mock job fail.
pub const FAIL_MARKER: &str = "[fail]";

/// How the mocks behave.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Time from submission to the result (and its callback).
    pub latency: Duration,
    /// Signs kie.ai callbacks, as kie.ai's webhook HMAC key does.
    pub kieai_webhook_secret: SecretString,
    /// Signs upload-post callbacks.
    pub upload_post_webhook_secret: SecretString,
    /// The keys each mock requires. `None` accepts any non-empty key; a
    /// request without the auth header is refused (401) either way.
    pub api_keys: Option<ProviderKeys>,
    /// Per-attempt timeout of a callback delivery.
    pub callback_timeout: Duration,
    /// Wait before the first retry of a failed delivery; doubled after.
    pub retry_backoff: Duration,
    /// The faults to inject (`MOCK_FAULTS`); none by default.
    pub faults: MockFaults,
    /// How late a `slow` answer is.
    pub slow_delay: Duration,
    /// How late a `late` callback is.
    pub late_delay: Duration,
}

impl MockConfig {
    pub fn new(
        latency: Duration,
        kieai_webhook_secret: SecretString,
        upload_post_webhook_secret: SecretString,
    ) -> Self {
        Self {
            latency,
            kieai_webhook_secret,
            upload_post_webhook_secret,
            api_keys: None,
            callback_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(200),
            faults: MockFaults::default(),
            slow_delay: faults::DEFAULT_SLOW_DELAY,
            late_delay: faults::DEFAULT_LATE_DELAY,
        }
    }
}

/// What one mock received and sent, and the switch that makes it fail
/// every job it accepts from then on (`fail_every_job`): a fault that is
/// "fixed" mid-test by switching it off again, as an operator fixes a
/// provider's outage and then redrives the runs it failed.
#[derive(Debug, Default)]
pub struct MockCounters {
    fail_every_job: std::sync::atomic::AtomicBool,
    requests: AtomicU64,
    accepted: AtomicU64,
    refused_on_purpose: AtomicU64,
    callbacks_sent: AtomicU64,
    failed_attempts: AtomicU64,
    callbacks_dropped: AtomicU64,
    callbacks_lost: AtomicU64,
    callbacks_repeated: AtomicU64,
    unanswered: AtomicU64,
}

impl MockCounters {
    pub fn snapshot(&self) -> MockStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MockStats {
            requests: load(&self.requests),
            accepted: load(&self.accepted),
            refused_on_purpose: load(&self.refused_on_purpose),
            callbacks_sent: load(&self.callbacks_sent),
            failed_attempts: load(&self.failed_attempts),
            callbacks_dropped: load(&self.callbacks_dropped),
            callbacks_lost: load(&self.callbacks_lost),
            callbacks_repeated: load(&self.callbacks_repeated),
            unanswered: load(&self.unanswered),
        }
    }

    /// From now on every job this mock accepts ends failed (`true`), or
    /// only those whose input carries `FAIL_MARKER` do (`false`).
    pub fn fail_every_job(&self, on: bool) {
        self.fail_every_job.store(on, Ordering::Relaxed);
    }

    /// Whether a job with `input` ends failed.
    fn fails(&self, input: &str) -> bool {
        input.contains(FAIL_MARKER) || self.fail_every_job.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of one mock's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockStats {
    /// HTTP requests received, refused ones included.
    pub requests: u64,
    /// Pieces of work accepted and created (clips, renders, uploads); a
    /// repeated upload with the same idempotency key creates none.
    pub accepted: u64,
    /// Requests refused by an injected `429` or `5xx` fault.
    pub refused_on_purpose: u64,
    /// Callbacks the receiver accepted (2xx).
    pub callbacks_sent: u64,
    /// Delivery attempts that failed (and were retried or given up).
    pub failed_attempts: u64,
    /// Callbacks given up after every retry.
    pub callbacks_dropped: u64,
    /// Callbacks not sent at all: a `lost` fault.
    pub callbacks_lost: u64,
    /// Callbacks sent a second time: a `duplicate` fault.
    pub callbacks_repeated: u64,
    /// Work accepted whose answer was lost: an `unanswered` fault.
    pub unanswered: u64,
}

/// The three running mocks. Dropping it stops the servers; `shutdown` also
/// waits for them and cancels callbacks not yet sent.
#[derive(Debug)]
pub struct MockProviders {
    pub kieai_url: String,
    pub shotstack_url: String,
    pub upload_post_url: String,
    pub kieai: Arc<MockCounters>,
    pub shotstack: Arc<MockCounters>,
    pub upload_post: Arc<MockCounters>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    background: Arc<Background>,
}

impl MockProviders {
    /// Starts the three servers on `127.0.0.1:0`.
    pub async fn start(config: MockConfig) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.callback_timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let background = Arc::new(Background::default());
        let (stop, stopped) = watch::channel(false);
        let shared = |counters: &Arc<MockCounters>| Shared {
            config: config.clone(),
            counters: counters.clone(),
            http: http.clone(),
            background: background.clone(),
        };
        let counters = [(); 3].map(|_| Arc::new(MockCounters::default()));
        let routers = [
            kieai::router(shared(&counters[0])),
            shotstack::router(shared(&counters[1])),
            upload_post::router(shared(&counters[2])),
        ];
        let mut urls = Vec::new();
        let mut servers = Vec::new();
        for (router, counters) in routers.into_iter().zip(&counters) {
            let (url, server) = serve(router, counters.clone(), stopped.clone()).await?;
            urls.push(url);
            servers.push(server);
        }
        let [kieai_url, shotstack_url, upload_post_url] =
            <[String; 3]>::try_from(urls).expect("three servers");
        let [kieai, shotstack, upload_post] = counters;
        tracing::info!(%kieai_url, %shotstack_url, %upload_post_url, "mock providers listening");
        Ok(Self {
            kieai_url,
            shotstack_url,
            upload_post_url,
            kieai,
            shotstack,
            upload_post,
            stop,
            servers,
            background,
        })
    }

    /// The base URLs to build `ProviderClients` with.
    pub fn urls(&self) -> ProviderUrls {
        ProviderUrls {
            kieai: self.kieai_url.clone(),
            shotstack: self.shotstack_url.clone(),
            shotstack_stage: super::shotstack::ShotstackStage::Production,
            upload_post: self.upload_post_url.clone(),
        }
    }

    /// Stops accepting requests, cancels pending callbacks and waits for the
    /// servers to finish the requests in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.background.abort_all();
        for server in self.servers {
            let _ = server.await;
        }
    }
}

async fn serve(
    router: Router,
    counters: Arc<MockCounters>,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<(String, JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = router.layer(middleware::from_fn(move |request: Request, next: Next| {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        next.run(request)
    }));
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // Ends on `shutdown` and when `MockProviders` is dropped.
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    Ok((url, server))
}

/// What each mock's handlers share.
#[derive(Debug, Clone)]
struct Shared {
    config: MockConfig,
    counters: Arc<MockCounters>,
    http: reqwest::Client,
    background: Arc<Background>,
}

impl Shared {
    /// Whether `headers` carry `scheme key` in `name` (the key itself when
    /// `scheme` is empty) and the key is the expected one, if one is set.
    fn authorized(
        &self,
        headers: &HeaderMap,
        name: &str,
        scheme: &str,
        expected: impl Fn(&ProviderKeys) -> &SecretString,
    ) -> bool {
        let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let key = if scheme.is_empty() {
            Some(value)
        } else {
            value
                .split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case(scheme))
                .map(|(_, key)| key)
        };
        match (
            key.map(str::trim).filter(|k| !k.is_empty()),
            &self.config.api_keys,
        ) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(key), Some(keys)) => key == expected(keys).expose_secret(),
        }
    }
}

/// Wraps a mock's API routes with the front-door faults: a `429` or `5xx`
/// fault answers with `refusal` (the provider's own shape for that status)
/// before the request is handled; a `slow` one answers late.
fn with_faults(router: Router, shared: &Shared, refusal: fn(StatusCode) -> Response) -> Router {
    let shared = shared.clone();
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let shared = shared.clone();
        async move {
            let faults = shared.config.faults;
            let refused = if faults::roll(faults.throttle) {
                Some(StatusCode::TOO_MANY_REQUESTS)
            } else if faults::roll(faults.server_error) {
                Some(faults::server_error_status())
            } else {
                None
            };
            if let Some(status) = refused {
                MockCounters::bump(&shared.counters.refused_on_purpose);
                return refusal(status);
            }
            if faults::roll(faults.slow) {
                tokio::time::sleep(shared.config.slow_delay).await;
            }
            next.run(request).await
        }
    }))
}

/// Callback tasks not finished yet, so `shutdown` can cancel them.
#[derive(Debug, Default)]
struct Background(Mutex<JoinSet<()>>);

impl Background {
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    fn abort_all(&self) {
        self.lock().abort_all();
    }

    fn lock(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A JSON answer.
fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// The answer to work just accepted, or, at the `unanswered` fault's rate,
/// an answer lost: the status and headers go out, then the connection ends
/// mid-body, so the client cannot tell whether the work was taken.
fn accepted_answer(shared: &Shared, answer: Response) -> Response {
    if !faults::roll(shared.config.faults.unanswered) {
        return answer;
    }
    MockCounters::bump(&shared.counters.unanswered);
    let lost = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("the answer is lost on purpose"))
    });
    let mut response = Response::new(axum::body::Body::from_stream(lost));
    *response.status_mut() = answer.status();
    *response.headers_mut() = answer.headers().clone();
    response
        .headers_mut()
        .remove(axum::http::header::CONTENT_LENGTH);
    response
}

/// Locks a mock's job table, surviving a panicked holder.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
