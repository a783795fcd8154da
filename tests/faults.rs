//! A fault-injecting HTTP proxy for the AWS path: it sits between our code
//! (`AWS_ENDPOINT_URL` pointed at it) and moto's server, forwards every
//! call, and — at the rates its rules set, per operation — answers instead:
//!
//! - `throttle`: a 400 `ThrottlingException` (DynamoDB's, SQS's or Step
//!   Functions' shape), without forwarding: the call did not happen;
//! - `5xx`: a 500 `InternalFailure` or 503 `ServiceUnavailable`, without
//!   forwarding;
//! - `lost`: the call is forwarded and takes effect, then its answer is lost
//!   — half the time a 502 in its place, half the time the connection
//!   dropped midway through the response. Only a success is lost (a call
//!   that failed upstream took no effect to lose): the caller's try after
//!   it meets what the first one did.
//!
//! Operations are named by `X-Amz-Target` (`AWSStepFunctions.StartExecution`,
//! `DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`), or by the
//! query protocol's `Action`. moto's own API (`/moto-api/`) is never faulted.
//!
//! Rules (`FaultRules::parse`): comma-separated `[scope:]kind=rate`, where
//! scope is an operation (`StartExecution`, or `sfn:StartExecution`), a
//! service (`sfn`, `sqs`, `dynamodb`, or `sfn:*` …) or everything (`*`, the
//! default), kind is `throttle`,
//! `5xx` or `lost`, and the most specific scope naming a kind wins:
//! `throttle=0.2,lost=0.05,dynamodb:lost=0` throttles a fifth of every call,
//! and loses the answer of one in twenty, except DynamoDB's.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What a call can be made to suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Throttle,
    ServerError,
    Lost,
}

impl Fault {
    const ALL: [Fault; 3] = [Fault::Throttle, Fault::ServerError, Fault::Lost];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "5xx",
            Fault::Lost => "lost",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// The rates, by scope and fault.
#[derive(Debug, Clone, Default)]
pub struct FaultRules {
    rules: Vec<(String, Fault, f64)>,
}

impl FaultRules {
    /// Parses `[scope:]kind=rate,…` (see the module's doc).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (lhs, rate) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected [scope:]kind=rate"))?;
            let (scope, kind) = match lhs.rsplit_once(':') {
                Some((scope, kind)) => (scope.to_owned(), kind),
                None => ("*".to_owned(), lhs),
            };
            let fault = Fault::parse(kind)
                .ok_or_else(|| format!("{item:?}: the kind is throttle, 5xx or lost"))?;
            let rate: f64 = rate
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("{item:?}: the rate is a number from 0 to 1"))?;
            rules.push((scope, fault, rate));
        }
        Ok(Self { rules })
    }

    /// The rate of `fault` for `service`'s `operation`: the most specific
    /// rule's (operation, then `service:*`, then `*`), 0 when none names it.
    pub fn rate(&self, service: &str, operation: &str, fault: Fault) -> f64 {
        let service_scope = format!("{service}:*");
        let specificity = |scope: &str| {
            if scope == operation || scope == format!("{service}:{operation}") {
                Some(3)
            } else if scope == service_scope || scope == service {
                Some(2)
            } else if scope == "*" {
                Some(1)
            } else {
                None
            }
        };
        self.rules
            .iter()
            .filter(|(_, f, _)| *f == fault)
            .filter_map(|(scope, _, rate)| specificity(scope).map(|s| (s, *rate)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, rate)| rate)
            .unwrap_or(0.0)
    }

    /// The fault to inflict on one call, if any, drawn at the rules' rates.
    fn draw(&self, service: &str, operation: &str) -> Option<Fault> {
        let roll: f64 = rand::random();
        let mut edge = 0.0;
        for fault in Fault::ALL {
            edge += self.rate(service, operation, fault);
            if roll < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// How many calls each operation saw, and the faults inflicted on them.
#[derive(Debug, Clone, Default)]
pub struct FaultCounts {
    /// `service:Operation` → (calls, faults by kind).
    pub by_operation: BTreeMap<String, (u64, BTreeMap<Fault, u64>)>,
}

impl FaultCounts {
    pub fn total(&self, fault: Fault) -> u64 {
        self.by_operation
            .values()
            .map(|(_, f)| f.get(&fault).copied().unwrap_or(0))
            .sum()
    }

    pub fn calls(&self) -> u64 {
        self.by_operation.values().map(|(n, _)| n).sum()
    }

    /// One line per operation that saw calls: calls and faults by kind.
    pub fn print(&self) {
        println!(
            "faults injected: {} throttles, {} 5xx, {} lost answers in {} calls",
            self.total(Fault::Throttle),
            self.total(Fault::ServerError),
            self.total(Fault::Lost),
            self.calls()
        );
        for (operation, (calls, faults)) in &self.by_operation {
            let f = |k| faults.get(&k).copied().unwrap_or(0);
            println!(
                "    {operation:<40} calls {calls:>6}  throttled {:>5}  5xx {:>4}  lost {:>4}",
                f(Fault::Throttle),
                f(Fault::ServerError),
                f(Fault::Lost)
            );
        }
    }
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    rules: Mutex<FaultRules>,
    enabled: AtomicBool,
    counts: Mutex<FaultCounts>,
}

/// A running proxy.
#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .finish()
    }
}

impl FaultProxy {
    /// Serves on `listener`, forwarding to `upstream` (moto's URL), with
    /// faults off until `enable`.
    pub fn start(listener: std::net::TcpListener, upstream: &str, rules: FaultRules) -> Self {
        let addr: SocketAddr = listener.local_addr().expect("bound");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("an HTTP client"),
            rules: Mutex::new(rules),
            enabled: AtomicBool::new(false),
            counts: Mutex::default(),
        });
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Starts (or stops) inflicting faults.
    pub fn enable(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::SeqCst);
    }

    pub fn set_rules(&self, rules: FaultRules) {
        *self.shared.rules.lock().expect("lock") = rules;
    }

    pub fn counts(&self) -> FaultCounts {
        self.shared.counts.lock().expect("lock").clone()
    }
}

/// `(service, operation)` of a call: from `X-Amz-Target`, else the query
/// protocol's `Action`.
fn operation_of(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, op) = target.split_once('.').unwrap_or(("", target));
        let service = if prefix.starts_with("DynamoDB") {
            "dynamodb"
        } else if prefix.starts_with("AmazonSQS") {
            "sqs"
        } else if prefix.starts_with("AWSStepFunctions") {
            "sfn"
        } else {
            "other"
        };
        return (service.to_owned(), op.to_owned());
    }
    let text = String::from_utf8_lossy(body);
    let action = text
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown");
    ("query".to_owned(), action.to_owned())
}

/// The error body a service answers, in its JSON protocol's shape.
fn error_response(service: &str, status: StatusCode, code: &str, message: &str) -> Response {
    let kind = match service {
        "dynamodb" => format!("com.amazonaws.dynamodb.v20120810#{code}"),
        "sqs" => format!("com.amazonaws.sqs#{code}"),
        _ => code.to_owned(),
    };
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-errortype", v);
    }
    if service == "sqs" {
        if let Ok(v) = HeaderValue::from_str(&format!("{code};Sender")) {
            headers.insert("x-amzn-query-error", v);
        }
    }
    response
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let faultable = !path.starts_with("/moto-api");
    let (service, operation) = operation_of(&parts.headers, &body);
    let fault = if faultable && shared.enabled.load(Ordering::SeqCst) {
        let drawn = shared
            .rules
            .lock()
            .expect("lock")
            .draw(&service, &operation);
        let mut counts = shared.counts.lock().expect("lock");
        let entry = counts
            .by_operation
            .entry(format!("{service}:{operation}"))
            .or_default();
        entry.0 += 1;
        if let Some(f) = drawn {
            *entry.1.entry(f).or_default() += 1;
        }
        drawn
    } else {
        None
    };
    match fault {
        Some(Fault::Throttle) => {
            return error_response(
                &service,
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded (injected by the fault proxy)",
            )
        }
        Some(Fault::ServerError) => {
            return if rand::random::<bool>() {
                error_response(
                    &service,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    "injected by the fault proxy",
                )
            } else {
                error_response(
                    &service,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "injected by the fault proxy",
                )
            }
        }
        _ => {}
    }
    let url = format!("{}{path}", shared.upstream);
    let mut upstream = shared.http.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answered = upstream.body(body).send().await;
    let answered = match answered {
        Ok(a) => a,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("upstream: {e}")).into_response();
        }
    };
    let status = answered.status();
    let headers = answered.headers().clone();
    let bytes = answered.bytes().await.unwrap_or_default();
    if fault == Some(Fault::Lost) && !status.is_success() {
        // Nothing took effect: the answer goes through, and is not counted
        // as lost.
        if let Some(entry) = shared
            .counts
            .lock()
            .expect("lock")
            .by_operation
            .get_mut(&format!("{service}:{operation}"))
        {
            if let Some(lost) = entry.1.get_mut(&Fault::Lost) {
                *lost = lost.saturating_sub(1);
            }
        }
    } else if fault == Some(Fault::Lost) {
        // It happened upstream; the caller never learns it.
        return if rand::random::<bool>() {
            (
                StatusCode::BAD_GATEWAY,
                "the answer was lost (injected by the fault proxy)",
            )
                .into_response()
        } else {
            // Headers, then the connection breaks before the body.
            let broken = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected: connection dropped",
                ))
            });
            let mut response = Response::new(Body::from_stream(broken));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response.headers_mut().insert(
                "content-length",
                HeaderValue::from(bytes.len().max(1) as u64),
            );
            response
        };
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_rule_wins() {
        let rules =
            FaultRules::parse("throttle=0.2,lost=0.05,dynamodb:lost=0,StartExecution:throttle=0.5")
                .unwrap();
        assert_eq!(rules.rate("sfn", "StartExecution", Fault::Throttle), 0.5);
        assert_eq!(rules.rate("sfn", "SendTaskSuccess", Fault::Throttle), 0.2);
        assert_eq!(rules.rate("dynamodb", "PutItem", Fault::Lost), 0.0);
        assert_eq!(rules.rate("sqs", "SendMessage", Fault::Lost), 0.05);
        let rules =
            FaultRules::parse("lost=0.05,sqs:*:lost=0.1,sfn:SendTaskSuccess:lost=1").unwrap();
        assert_eq!(rules.rate("sqs", "SendMessage", Fault::Lost), 0.1);
        assert_eq!(rules.rate("sfn", "SendTaskSuccess", Fault::Lost), 1.0);
        assert_eq!(rules.rate("sfn", "SendTaskFailure", Fault::Lost), 0.05);
        assert_eq!(rules.rate("sqs", "SendMessage", Fault::ServerError), 0.0);
        assert!(FaultRules::parse("throttle=2").is_err());
        assert!(FaultRules::parse("slow=0.1").is_err());
    }
}
