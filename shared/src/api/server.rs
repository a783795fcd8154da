//! Serving the API on a socket so that slow, idle or too many clients cannot
//! take it down: a client must send its request's headers within
//! `header_read_timeout` (an idle connection is closed then, its descriptor
//! freed), at most `max_connections` are open at once (past that new ones
//! wait in the listen queue until one closes, so the process never runs out
//! of descriptors), a request gets `request_timeout` (then 503), and past
//! `max_in_flight` requests at once the rest are shed at once with 503 and
//! `Retry-After` instead of queueing without bound.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use super::ApiError;

/// How much the server takes on (`MAX_CONNECTIONS`, `MAX_IN_FLIGHT`,
/// `HEADER_READ_TIMEOUT_SECS`, `REQUEST_TIMEOUT_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
}

impl ServerLimits {
    /// 256 requests at once, 10 s for a request's headers, 60 s for a
    /// request (the longest long-poll waits 20 s); the connections as
    /// `connections_for_this_process` says.
    pub const DEFAULT: Self = Self {
        max_connections: 480,
        max_in_flight: 256,
        header_read_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
    };

    /// The default, with as many connections as half this process's open-file
    /// limit allows (the rest is for the store, the providers and the
    /// queues), between 32 and 1,024.
    pub fn for_this_process() -> Self {
        Self {
            max_connections: open_file_limit()
                .map_or(Self::DEFAULT.max_connections, |n| {
                    (n / 2).saturating_sub(32)
                })
                .clamp(32, 1_024),
            ..Self::DEFAULT
        }
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self::for_this_process()
    }
}

/// The soft limit on open files (`/proc/self/limits`, Linux), if known.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// The answer to a shed or timed-out request: 503, in the JSON error shape,
/// with `Retry-After`.
async fn overloaded(error: BoxError) -> Response {
    let message = if error.is::<tower::timeout::error::Elapsed>() {
        "the request took too long"
    } else {
        "the server is busy"
    };
    let mut response =
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).into_response();
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    response
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes,
/// then lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    // Around the whole router (not each route): one count of the requests
    // in flight, shed past `max_in_flight`, each with its timeout.
    let service = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(limits.max_in_flight)
        .timeout(limits.request_timeout)
        .service(router);
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A place first: at the limit, new connections wait in the queue.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(service.clone().map_request(
            |request: hyper::Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
        ));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish (within the request timeout); idle
    // keep-alive connections are closed.
    let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
}
