//! `/v1/runs`: start, list, show, evidence, graph, spans (the run tree),
//! cancel, redrive, replay; `/v1/traces/{trace_id}`: a chat turn's tree.
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::json::{PathParams, QueryParams};
use super::{ApiError, AppState, JsonBody};
use crate::domain::{Project, Run, RunStatus};
use crate::pipeline::{
    ChatTree, Evidence, NewRunRequest, ReplayRequest, RunGraph, RunTree, MAX_WAIT,
};
use crate::store::{RunFilter, RunPage};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", post(start).get(list))
        .route("/v1/runs/{id}", get(show))
        .route("/v1/runs/{id}/evidence", get(evidence))
        .route("/v1/runs/{id}/graph", get(graph))
        .route("/v1/runs/{id}/spans", get(spans))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/redrive", post(redrive))
        .route("/v1/runs/{id}/replay", post(replay))
        .route("/v1/traces/{trace_id}", get(trace))
        .route("/metrics", get(metrics))
}

/// `POST /v1/runs`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct StartBody {
    /// `test-video-gen` or `aismr`.
    #[schemars(length(min = 1, max = 64))]
    project: String,
    /// The creative prompt (the project's own when absent).
    #[serde(default)]
    #[schemars(length(max = 4000))]
    message: Option<String>,
    /// Whose run it is (chat users see and act on their own runs).
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    user_id: Option<String>,
}

/// The header naming a start, so that one sent again answers the same run.
pub(super) const IDEMPOTENCY_KEY: &str = "idempotency-key";

async fn start(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key is not visible ASCII"))?
                .to_owned(),
        ),
    };
    let project: Project = body
        .project
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::bad_request(e.to_string()))?;
    let run = state
        .pipeline
        .start_run(NewRunRequest {
            project,
            message: body.message,
            user_id: body.user_id,
            chat_turn: None,
            idempotency_key,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// `GET /v1/runs`'s query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct ListQuery {
    /// Only runs in this status.
    status: Option<crate::domain::RunStatus>,
    /// Only runs of this project.
    project: Option<String>,
    /// Runs per page (1-500, default 20).
    #[schemars(range(min = 1, max = 500))]
    limit: Option<u32>,
    /// The page after this run (the previous page's `next`).
    after: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let bad = |e: crate::domain::ParseError| ApiError::bad_request(e.to_string());
    let filter = RunFilter {
        status: q.status,
        project: q
            .project
            .map(|p| p.parse::<Project>())
            .transpose()
            .map_err(bad)?,
        limit: q.limit,
        after: q.after.map(|a| a.parse()).transpose().map_err(bad)?,
    };
    Ok(Json(state.pipeline.store.list_runs(&filter).await?))
}

/// `?status=S&wait=SECONDS`: answer once the run's status is no longer `S`,
/// or after `SECONDS` (at most `MAX_WAIT`), with the run as it is then.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct ShowQuery {
    /// The status you saw: answer once the run's is another.
    status: Option<String>,
    /// How long to wait for that, in seconds (at most 20); goes with `status`.
    wait: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<ShowQuery>,
) -> Result<Json<Run>, ApiError> {
    let (seen, wait) = match (q.status, q.wait) {
        (None, None) => return Ok(Json(state.pipeline.find_run(&id).await?)),
        (Some(status), Some(wait)) => (status, wait),
        _ => {
            return Err(ApiError::bad_request(
                "status and wait go together: ?status=<the status you saw>&wait=<seconds>",
            ))
        }
    };
    let seen: RunStatus = seen
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::bad_request(e.to_string()))?;
    let wait = wait
        .parse::<f64>()
        .ok()
        .filter(|w| (0.0..=MAX_WAIT.as_secs_f64()).contains(w))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "wait must be a number of seconds from 0 to {}, not {wait:?}",
                MAX_WAIT.as_secs()
            ))
        })?;
    Ok(Json(
        state
            .pipeline
            .wait_for_status_change(&id, seen, wait)
            .await?,
    ))
}

async fn evidence(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Evidence>, ApiError> {
    Ok(Json(state.pipeline.evidence(&id).await?))
}

async fn graph(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunGraph>, ApiError> {
    Ok(Json(state.pipeline.graph(&id).await?))
}

async fn spans(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RunTree>, ApiError> {
    Ok(Json(state.pipeline.run_tree(&id).await?))
}

/// A chat turn's tree, by the trace id the chat answered.
async fn trace(
    State(state): State<AppState>,
    PathParams(trace_id): PathParams<String>,
) -> Result<Json<ChatTree>, ApiError> {
    let trace_id = trace_id
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::bad_request(e.to_string()))?;
    Ok(Json(state.pipeline.chat_tree(trace_id).await?))
}

/// `POST /v1/runs/{id}/cancel`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(super) struct CancelBody {
    /// A label for who cancelled.
    #[serde(default)]
    #[schemars(length(max = 64))]
    by: Option<String>,
}

async fn cancel(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    body: Option<JsonBody<CancelBody>>,
) -> Result<Json<Run>, ApiError> {
    let by = body
        .and_then(|JsonBody(b)| b.by)
        .unwrap_or_else(|| "api".into());
    Ok(Json(state.pipeline.cancel_run(&id, &by).await?))
}

/// `POST /v1/runs/{id}/redrive`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(super) struct RedriveBody {
    /// A label for who redrove the run.
    #[serde(default)]
    #[schemars(length(max = 64))]
    by: Option<String>,
}

/// Continues a failed run from the state that failed: 409 when the run is
/// not failed.
async fn redrive(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    body: Option<JsonBody<RedriveBody>>,
) -> Result<Json<Run>, ApiError> {
    let by = body
        .and_then(|JsonBody(b)| b.by)
        .unwrap_or_else(|| "api".into());
    Ok(Json(state.pipeline.redrive_run(&id, &by).await?))
}

/// `POST /v1/runs/{id}/replay`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct ReplayBody {
    /// The state to start at (`Quinn`, `Alex`, …): one the run entered.
    #[schemars(length(min = 1, max = 80))]
    from: String,
    /// A JSON object merged over the context recorded at that state (a new
    /// `message`, a caption hint, …).
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// A new run that starts at a state of this one with its recorded context.
async fn replay(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ReplayBody>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let request = ReplayRequest {
        from: body.from,
        input: body.input,
    };
    let run = state.pipeline.replay_run(&id, request).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Prometheus text (API key: scrapers send it as a header). Queue depths
/// are read at each scrape.
async fn metrics(
    State(state): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let settings = &state.pipeline.settings;
    for (name, url) in [
        ("tasks", &settings.task_queue_url),
        ("callbacks", &settings.callback_queue_url),
    ] {
        match state.pipeline.queue.depth(url).await {
            Ok(depth) => {
                for (which, n) in [("visible", depth.visible), ("in_flight", depth.in_flight)] {
                    crate::telemetry::metrics::gauge(
                        "mw_queue_messages",
                        "Messages in the task and callback queues, waiting (visible) or being handled (in flight).",
                        &[("queue", name), ("state", which)],
                        n as f64,
                    );
                }
            }
            Err(e) => tracing::warn!(queue = name, error = %e, "queue depth unavailable"),
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::metrics::render(),
    )
}
