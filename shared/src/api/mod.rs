//! The HTTP API as axum routers: served by `mw serve` on one port, and by the
//! `chat`, `webhook`, `hitl` and `runs` Lambda functions behind API Gateway
//! (the `runs` function also serves the dashboard at `/ui`).
//! Handlers extract, call the pipeline core, map the result.
mod auth;
mod chat;
mod error;
mod gate_page;
mod hitl;
mod json;
mod openapi;
mod runs;
pub mod server;
mod system;
mod ui;
mod webhooks;

use axum::{middleware, Router};
use secrecy::SecretString;

use crate::pipeline::Pipeline;

pub use error::ApiError;
pub use json::JsonBody;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    pub api_key: SecretString,
}

/// `/v1/runs…` (API key).
pub fn runs_router(state: AppState) -> Router {
    runs::router()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .with_state(state)
}

/// `/v1/chat/brendan` (API key).
pub fn chat_router(state: AppState) -> Router {
    chat::router()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .with_state(state)
}

/// `/v1/hitl/…` (API key for links; the link's token or the API key to decide).
pub fn hitl_router(state: AppState) -> Router {
    hitl::router(state.clone()).with_state(state)
}

/// `/health`, `/openapi.json` (open).
pub fn system_router(state: AppState) -> Router {
    system::router().with_state(state)
}

/// `/ui`, the run dashboard (open: the page asks for the API key and sends
/// it with each request it makes).
pub fn ui_router(state: AppState) -> Router {
    ui::router().with_state(state)
}

/// `/v1/webhooks/{provider}` (signatures instead of the API key).
pub fn webhooks_router(state: AppState) -> Router {
    webhooks::router().with_state(state)
}

/// Every route on one router: what `mw serve` serves.
pub fn router(state: AppState) -> Router {
    json_errors(
        Router::new()
            .merge(system_router(state.clone()))
            .merge(runs_router(state.clone()))
            .merge(chat_router(state.clone()))
            .merge(hitl_router(state.clone()))
            .merge(ui_router(state.clone()))
            .merge(webhooks_router(state)),
    )
}

/// `router`, answering an unknown route (404) or method (405) in the one
/// JSON error shape, like every other refusal.
pub fn json_errors(router: Router) -> Router {
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
}
