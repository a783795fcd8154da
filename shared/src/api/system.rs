//! `/health` and `/openapi.json`.
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::AppState;
use crate::domain::{Project, ProvidersMode};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
}

/// The service is up, and how it is set up.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct Health {
    /// Always `ok`.
    status: &'static str,
    /// `sqlite`, `postgres` or `dynamodb`.
    store: &'static str,
    providers_mode: ProvidersMode,
    /// The projects runs can be started for.
    projects: Vec<Project>,
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    let mut projects: Vec<Project> = state.pipeline.state_machines.keys().cloned().collect();
    projects.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Json(Health {
        status: "ok",
        store: state.pipeline.store.backend(),
        providers_mode: state.pipeline.settings.providers_mode,
        projects,
    })
}

/// The API described as OpenAPI, from the handlers' own types.
async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}
