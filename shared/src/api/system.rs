//! `/health` and `/openapi.json`.
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let store = state.pipeline.store.backend();
    Json(json!({
        "status": "ok",
        "store": store,
        "providers_mode": state.pipeline.settings.providers_mode,
        "projects": state.pipeline.state_machines.keys().map(|p| p.as_str()).collect::<Vec<_>>(),
    }))
}

/// The API described as OpenAPI 3.1, by hand: small enough to keep in step
/// with the routers, and tested against them.
async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

pub fn openapi_document() -> Value {
    let op = |summary: &str, secured: bool| {
        let mut o = json!({ "summary": summary, "responses": { "200": { "description": "OK" } } });
        if secured {
            o["security"] = json!([{ "apiKey": [] }]);
        }
        o
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "MyloWare API", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": { "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" } } },
        "paths": {
            "/health": { "get": op("Liveness and configuration summary", false) },
            "/v1/chat/brendan": { "post": op("Talk to Brendan: {user_id, message} → {response, run_ids, trace_id}", true) },
            "/v1/runs": { "post": op("Start a run: {project, message?, user_id?}", true), "get": op("List runs (status, project, limit, after)", true) },
            "/v1/runs/{id}": { "get": op("A run by id or job code; with ?status=S&wait=SECONDS (at most 20), once its status is no longer S or the wait is over", true) },
            "/v1/runs/{id}/evidence": { "get": op("The run with artifacts, webhook events, provider jobs, gates and history", true) },
            "/v1/runs/{id}/graph": { "get": op("The run's state machine definition, its steps from the execution history, and its current states", true) },
            "/v1/runs/{id}/spans": { "get": op("The run tree: {run, trace_id, spans} with every span open or closed, by start time", true) },
            "/v1/runs/{id}/cancel": { "post": op("Cancel a live run", true) },
            "/v1/hitl/link/{id}/{gate}": { "get": op("A signed approval link for a waiting gate", true) },
            "/v1/hitl/approve/{id}/{gate}": { "get": op("The gate's page (HTML) or status (JSON); ?token= or x-api-key", false), "post": op("Approve; ?token= or x-api-key", false) },
            "/v1/hitl/reject/{id}/{gate}": { "post": op("Reject; ?token= or x-api-key", false) },
            "/v1/webhooks/{provider}": { "post": op("Provider callbacks (kieai, shotstack, upload-post); signed per provider", false) },
            "/metrics": { "get": op("Prometheus metrics: runs, webhooks, provider jobs, gates, persona steps", true) },
            "/openapi.json": { "get": op("This document", false) },
            "/ui": { "get": op("The run dashboard (HTML; it asks for the API key and sends it as x-api-key)", false) }
        }
    })
}
