//! Request bodies and query strings, read so that every refusal is the one
//! JSON error shape: a body over its limit is 413, bad JSON or a bad query
//! string 400 saying what is wrong.
//!
//! The JSON body extractor does not insist on `Content-Type:
//! application/json`: the runbook's own `curl -d '{…}'` sends form encoding,
//! and it must work as written.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::pipeline::limits::{JSON_BODY_MAX_BYTES, WEBHOOK_BODY_MAX_BYTES};

#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

/// The whole body, refused with 413 past `limit` bytes (by its declared
/// length before anything is read, or as it arrives).
pub async fn read_body(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|e| {
            let mut source: Option<&dyn std::error::Error> = Some(&e);
            while let Some(error) = source {
                if error.to_string().contains("length limit") {
                    return too_large(limit);
                }
                source = error.source();
            }
            ApiError::bad_request(format!("could not read the body: {e}"))
        })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, JSON_BODY_MAX_BYTES).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("a JSON body is required"));
        }
        parse(&bytes).map(JsonBody)
    }
}

impl<T, S> OptionalFromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Option<Self>, ApiError> {
        let bytes = read_body(request, JSON_BODY_MAX_BYTES).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&bytes).map(|v| Some(JsonBody(v)))
    }
}

/// An optional body: JSON, or the fields of an HTML form (a browser posting
/// a page's `<form>` sends `application/x-www-form-urlencoded`). A form-typed
/// body that is JSON (the runbook's `curl -d '{…}'`) is read as JSON.
#[derive(Debug, Clone, Default)]
pub struct JsonOrForm<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrForm<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = read_body(request, JSON_BODY_MAX_BYTES).await?;
        let body = bytes.trim_ascii();
        if body.is_empty() {
            return Ok(Self(T::default()));
        }
        if form && !body.starts_with(b"{") {
            return serde_urlencoded::from_bytes(body)
                .map(JsonOrForm)
                .map_err(|e| {
                    ApiError::bad_request(format!("the form's fields are not as expected: {e}"))
                });
        }
        parse(body).map(JsonOrForm)
    }
}

/// A provider callback's raw body, up to `WEBHOOK_BODY_MAX_BYTES`.
#[derive(Debug, Clone)]
pub struct WebhookBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for WebhookBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        read_body(request, WEBHOOK_BODY_MAX_BYTES)
            .await
            .map(WebhookBody)
    }
}

/// A query string read into `T`; a bad one is a 400 in the JSON error shape.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| QueryParams(q))
            .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
    }
}

/// Path parameters read into `T`; a bad one is a 400 in the JSON error shape.
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathParams(p))
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
    }
}
