//! The run dashboard at `/ui`: plain HTML, CSS and JavaScript built into the
//! binary, so `mw serve` and the `runs` function serve it with nothing to
//! install and nothing fetched from elsewhere. The page holds no data: it asks
//! for the API key once, keeps it in the tab's `sessionStorage` and sends it
//! as `x-api-key` to the JSON API, so the key never appears in a URL (or in
//! the access logs that record URLs).
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Scripts and styles only from this origin, requests only to this origin, no
/// framing: an injected string in a run's data cannot run or leak anything.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
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

async fn app_js() -> impl IntoResponse {
    (headers("text/javascript; charset=utf-8"), APP_JS)
}

async fn app_css() -> impl IntoResponse {
    (headers("text/css; charset=utf-8"), APP_CSS)
}
