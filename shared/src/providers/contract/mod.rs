//! The providers' documented wire formats as the one truth: the fixtures
//! under `shared/fixtures/providers/<provider>/`, each an exchange taken
//! from the provider's public documentation (or from real answers quoted in
//! public integrations, where the docs are silent or wrong), naming the page
//! it comes from.
//!
//! Two kinds of test hold the code to them, so that a client and its mock
//! can never again agree with each other and not with the provider:
//! - the clients (and the webhook receiver) read every fixture, served over
//!   HTTP by [`FixtureServer`] as the provider would answer;
//! - the mocks answer only in documented shapes: every answer and callback
//!   a mock sends [`conforms`] to a fixture of the same exchange and status
//!   (no field the provider does not send, no field of another type).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinHandle;

mod clients;
mod mocks;

/// One documented exchange.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Fixture {
    #[serde(skip)]
    pub name: String,
    /// The page the body comes from (or `unresolved: …` for a real answer
    /// quoted where the index names no repository).
    pub source: String,
    #[serde(default)]
    pub also: Vec<String>,
    pub note: String,
    /// `POST /api/v1/veo/generate`, `callback`, …
    pub exchange: String,
    /// `request`, `response` or `callback`.
    pub direction: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Value,
    /// A multipart request's fields (upload-post's upload).
    #[serde(default)]
    pub form: Option<Value>,
}

fn dir(provider: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/providers")
        .join(provider)
}

/// Every fixture of `provider` (`kieai`, `shotstack`, `upload_post`,
/// `openai`), by name.
pub(crate) fn fixtures(provider: &str) -> Vec<Fixture> {
    let mut fixtures: Vec<Fixture> = std::fs::read_dir(dir(provider))
        .unwrap_or_else(|e| panic!("fixtures of {provider}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a fixture");
            let mut fixture: Fixture =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            fixture.name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            fixture
        })
        .collect();
    fixtures.sort_by(|a, b| a.name.cmp(&b.name));
    fixtures
}

/// The fixture `name` of `provider`.
pub(crate) fn fixture(provider: &str, name: &str) -> Fixture {
    fixtures(provider)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {provider}/{name}"))
}

/// Whether `actual` has only what `documented` has: every member of an
/// object exists in the documented object (recursively), arrays' elements
/// conform to some documented element, and values have the documented JSON
/// type; `null` conforms where the docs show `null` or a value, and the docs'
/// `null` admits any value (a field the docs show empty). Answers the first
/// difference.
pub(crate) fn conforms(actual: &Value, documented: &Value) -> Result<(), String> {
    conforms_at("$", actual, documented)
}

fn conforms_at(path: &str, actual: &Value, documented: &Value) -> Result<(), String> {
    match (actual, documented) {
        (_, Value::Null) | (Value::Null, _) => Ok(()),
        (Value::Object(actual), Value::Object(documented)) => {
            for (key, value) in actual {
                let Some(doc) = documented.get(key) else {
                    return Err(format!("{path}.{key} is not documented"));
                };
                conforms_at(&format!("{path}.{key}"), value, doc)?;
            }
            Ok(())
        }
        (Value::Array(actual), Value::Array(documented)) => {
            if documented.is_empty() {
                return Ok(());
            }
            for (i, item) in actual.iter().enumerate() {
                let path = format!("{path}[{i}]");
                documented
                    .iter()
                    .map(|doc| conforms_at(&path, item, doc))
                    .find(Result::is_ok)
                    .unwrap_or_else(|| conforms_at(&path, item, &documented[0]))?;
            }
            Ok(())
        }
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => Ok(()),
        (actual, documented) => Err(format!(
            "{path} is {} where the docs have {}",
            kind(actual),
            kind(documented)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that `actual`, sent by a mock as `exchange` with `status` (none
/// for callbacks), conforms to one of `provider`'s fixtures of that exchange
/// and status; panics naming the differences otherwise.
pub(crate) fn assert_documented(
    provider: &str,
    exchange: &str,
    status: Option<u16>,
    actual: &Value,
) {
    let candidates: Vec<Fixture> = fixtures(provider)
        .into_iter()
        .filter(|f| f.exchange == exchange && f.direction != "request" && f.status == status)
        .collect();
    assert!(
        !candidates.is_empty(),
        "{provider}: no fixture documents {exchange} answered {status:?}"
    );
    let differences: Vec<String> = candidates
        .iter()
        .map(|f| match conforms(actual, &f.body) {
            Ok(()) => String::new(),
            Err(difference) => format!("{}: {difference}", f.name),
        })
        .collect();
    assert!(
        differences.iter().any(String::is_empty),
        "{provider} mock's {exchange} ({status:?}) matches no fixture:\n{}\n{actual:#}",
        differences.join("\n")
    );
}

/// A server that answers every request with one fixture (its status, headers
/// and body), as the provider would, and keeps the requests it got.
pub(crate) struct FixtureServer {
    pub url: String,
    answer: Arc<Mutex<Fixture>>,
    pub requests: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
    server: JoinHandle<()>,
}

impl FixtureServer {
    pub(crate) async fn start(first: Fixture) -> Self {
        let answer = Arc::new(Mutex::new(first));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answer.clone(), requests.clone());
        let router = Router::new().fallback(move |request: axum::extract::Request| {
            let (answer, requests) = (a.clone(), r.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let target = parts
                    .uri
                    .path_and_query()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                requests.lock().unwrap().push((
                    format!("{} {target}", parts.method),
                    parts.headers,
                    body,
                ));
                let fixture = answer.lock().unwrap().clone();
                respond(&fixture)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url,
            answer,
            requests,
            server,
        }
    }

    /// Answers with `fixture` from now on.
    pub(crate) fn answer(&self, fixture: Fixture) {
        *self.answer.lock().unwrap() = fixture;
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn respond(fixture: &Fixture) -> Response {
    let status = StatusCode::from_u16(fixture.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    for (name, value) in &fixture.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    let body = match &fixture.body {
        Value::Null => String::new(),
        body => body.to_string(),
    };
    if !headers.contains_key("content-type") {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    (status, headers, body).into_response()
}

#[test]
fn every_fixture_names_its_page_and_says_what_it_pins() {
    for provider in ["kieai", "shotstack", "upload_post", "openai"] {
        let all = fixtures(provider);
        assert!(all.len() >= 8, "{provider}: {} fixtures", all.len());
        for f in all {
            assert!(
                f.source.starts_with("https://") || f.source.starts_with("unresolved:"),
                "{provider}/{}: source {:?}",
                f.name,
                f.source
            );
            assert!(f.note.len() > 20, "{provider}/{}: a note", f.name);
            assert!(
                ["request", "response", "callback"].contains(&f.direction.as_str()),
                "{provider}/{}: direction {}",
                f.name,
                f.direction
            );
            assert_eq!(
                f.status.is_some(),
                f.direction == "response",
                "{provider}/{}: a status goes with a response",
                f.name
            );
            for also in &f.also {
                assert!(
                    also.starts_with("https://") || also.starts_with("unresolved:"),
                    "{provider}/{}: {also}",
                    f.name
                );
            }
        }
    }
}

#[test]
fn conforming_means_nothing_undocumented_and_the_same_types() {
    let documented =
        serde_json::json!({ "a": 1, "b": { "c": "x", "d": null }, "e": [{ "f": true }] });
    for ok in [
        serde_json::json!({ "a": 2 }),
        serde_json::json!({ "b": { "c": "y", "d": [1, 2] }, "e": [{ "f": false }, {}] }),
        serde_json::json!({ "a": null }),
    ] {
        assert_eq!(conforms(&ok, &documented), Ok(()), "{ok}");
    }
    for (bad, why) in [
        (serde_json::json!({ "z": 1 }), "$.z is not documented"),
        (
            serde_json::json!({ "a": "1" }),
            "$.a is a string where the docs have a number",
        ),
        (
            serde_json::json!({ "b": { "q": 1 } }),
            "$.b.q is not documented",
        ),
        (
            serde_json::json!({ "e": [{ "f": 1 }] }),
            "$.e[0].f is a number where the docs have a boolean",
        ),
    ] {
        assert_eq!(conforms(&bad, &documented), Err(why.to_owned()), "{bad}");
    }
}
