//! One error type for every route: JSON `{error: {code, message}}` with the
//! right status. The cause is logged here, once; the answer never carries
//! internals or secrets.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::engine::EngineError;
use crate::pipeline::PipelineError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header: the request may succeed if made
    /// again then (a throttled or briefly unavailable dependency).
    pub retry_after: Option<u32>,
}

/// The `Retry-After` of an answer to a throttled or unavailable dependency.
pub const RETRY_AFTER_SECONDS: u32 = 2;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client when to try again.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code, error = %self.message, "request failed");
        }
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        let message = err.to_string();
        match err {
            PipelineError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            PipelineError::Invalid(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            PipelineError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            PipelineError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            PipelineError::Engine(EngineError::ExecutionAlreadyExists(_)) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            PipelineError::Store(e) => {
                tracing::error!(error = ?e, "store error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store failed; try again",
                )
                .retry_after(RETRY_AFTER_SECONDS)
            }
            // Throttled, failing inside or not answering, past the adapter's
            // retries: what was asked may work in a moment. What the request
            // stored (a gate's decision) stays stored.
            PipelineError::Engine(e) if e.is_transient() => {
                tracing::warn!(error = ?e, "engine throttled or unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "engine_unavailable",
                    format!(
                        "the engine is busy; try again in a moment ({})",
                        e.aws_name()
                    ),
                )
                .retry_after(RETRY_AFTER_SECONDS)
            }
            PipelineError::Engine(e) => {
                tracing::error!(error = ?e, "engine error");
                Self::new(StatusCode::BAD_GATEWAY, "engine_error", message)
            }
            PipelineError::Queue(e) => {
                tracing::error!(error = ?e, "queue error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue_unavailable",
                    "the queue failed; try again",
                )
                .retry_after(RETRY_AFTER_SECONDS)
            }
            PipelineError::Provider(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "provider_error", message)
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        PipelineError::from(err).into()
    }
}
