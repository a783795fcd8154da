//! A JSON body extractor that does not insist on `Content-Type:
//! application/json`: the runbook's own `curl -d '{…}'` sends form encoding,
//! and it must work as written. Bad JSON is a 400 that says what is wrong.
use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use serde::de::DeserializeOwned;

use super::ApiError;

#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("a JSON body is required"));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
    }
}

impl<T, S> OptionalFromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(|v| Some(JsonBody(v)))
            .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
    }
}
