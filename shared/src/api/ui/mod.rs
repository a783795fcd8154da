//! The run dashboard at `/ui`: plain HTML, CSS and JavaScript built into the
//! binary, so `mw serve` and the `runs` function serve it with nothing to
//! install and nothing fetched from elsewhere. The page holds no data: it asks
//! for the API key once, keeps it in the tab's `sessionStorage` and sends it
//! as `x-api-key` to the JSON API, so the key never appears in a URL (or in
//! the access logs that record URLs).
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::ApiError;

const INDEX_HTML: &str = include_str!("index.html");

/// The page's files under `/ui/`: `(name, content type, text)`. The scripts
/// are ES modules that import each other by these names.
const FILES: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("app.js")),
    ("dom.js", JS, include_str!("dom.js")),
    ("graph.js", JS, include_str!("graph.js")),
    ("timeline.js", JS, include_str!("timeline.js")),
    ("tree.js", JS, include_str!("tree.js")),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("app.css"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";

/// Scripts and styles only from this origin, requests only to this origin, no
/// framing: an injected string in a run's data cannot run or leak anything.
/// Videos (a gate's render) play from wherever the provider hosts them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src https: http:; base-uri 'none'; \
     form-action 'self'; \
     frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

type Headers = [(HeaderName, HeaderValue); 5];

fn headers(content_type: &'static str) -> Headers {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // Small files, and a new binary may change them: always revalidate.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

async fn index() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), INDEX_HTML)
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, text)) => (headers(content_type), *text).into_response(),
        None => ApiError::not_found(format!("/ui/{name}")).into_response(),
    }
}
