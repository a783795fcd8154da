//! The API key on every route but `/health`, the webhooks (signatures
//! instead) and the signed approval link (its token instead): in
//! `x-api-key`, or as `Authorization: Bearer <key>` (what Prometheus
//! scrapers and most HTTP clients send).
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use secrecy::ExposeSecret;

use super::{ApiError, AppState};

/// Compares in constant time, so the key cannot be guessed byte by byte.
pub fn key_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries the right API key, in `x-api-key` or as a
/// bearer token.
pub fn has_api_key(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = header(axum::http::header::AUTHORIZATION.as_str()).and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    header("x-api-key")
        .or(bearer)
        .is_some_and(|given| key_matches(given, state.api_key.expose_secret()))
}

pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if has_api_key(&state, request.headers()) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::unauthorized(
            "missing or wrong API key (x-api-key, or Authorization: Bearer)",
        ))
    }
}
