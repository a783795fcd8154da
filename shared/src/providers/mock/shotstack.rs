//! Mock Shotstack: the Edit API (`POST /edit/{stage}/render`,
//! `GET /edit/{stage}/render/{id}`, `GET /edit/{stage}/templates`) and the
//! Serve API's look-up of a render's hosted copies
//! (`GET /serve/{stage}/assets/render/{id}`), for both stages, with
//! `x-api-key`; and Shotstack's two unsigned callbacks: `edit`/`render` when
//! the render ends, then (for a successful render) `serve`/`copy` when its
//! hosted copy is ready. Answers take the documented shapes
//! (`shared/fixtures/providers/shotstack/`).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::deliver::{deliver, Callback};
use super::{accepted_answer, faults, lock, reply, MockCounters, Shared, MOCK_CDN};
use crate::providers::shotstack::wire::API_KEY_HEADER;

const OWNER: &str = "mockowner1";
const FAILURE_MESSAGE: &str = "Asset fetch failed: the first clip's source could not be downloaded";

struct Render {
    stage: String,
    created: DateTime<Utc>,
    submitted: Instant,
    duration: f64,
    fails: bool,
    /// Show the documented quirk of a `url` before the render is done.
    early_url: bool,
    /// The edit as submitted: `data` of the render's status.
    edit: Value,
}

struct Shotstack {
    shared: Shared,
    renders: Mutex<HashMap<String, Render>>,
}

pub(super) fn router(shared: Shared) -> Router {
    let state = Arc::new(Shotstack {
        shared: shared.clone(),
        renders: Mutex::default(),
    });
    let router = Router::new()
        .route("/edit/{stage}/render", post(render))
        .route("/edit/{stage}/render/{id}", get(get_render))
        .route("/edit/{stage}/templates", get(templates))
        .route("/serve/{stage}/assets/render/{id}", get(hosted_assets))
        .with_state(state);
    super::with_faults(router, &shared, refusal)
}

/// Shotstack's refusals come from its API gateway: a 429 with
/// `x-amzn-ErrorType` and no documented body, a 5xx with a gateway message.
fn refusal(status: StatusCode) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (
            status,
            [
                ("content-type", "application/json"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
            ],
            Body::empty(),
        )
            .into_response();
    }
    reply(status, json!({ "message": "Internal server error" }))
}

fn unauthorized() -> Response {
    reply(StatusCode::FORBIDDEN, json!({ "message": "Forbidden" }))
}

fn bad_request(error: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        json!({ "success": false, "message": "Bad Request", "response": error }),
    )
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The docs show no 404 body; the gateway's is assumed.
fn not_found() -> Response {
    reply(StatusCode::NOT_FOUND, json!({ "message": "Not Found" }))
}

/// Whether a request path's stage is one of Shotstack's.
fn known_stage(stage: &str) -> bool {
    matches!(stage, "v1" | "stage")
}

/// Checks the Edit the way Shotstack's schema requires it and returns the
/// timeline's length and the first clip's source.
fn check_edit(edit: &Value) -> Result<(f64, String), String> {
    let tracks = edit["timeline"]["tracks"]
        .as_array()
        .filter(|t| !t.is_empty())
        .ok_or("timeline.tracks must be a non-empty array")?;
    if edit["output"]["format"].as_str().is_none() {
        return Err("output.format is required".into());
    }
    let mut end: f64 = 0.0;
    let mut first = None;
    for track in tracks {
        let clips = track["clips"].as_array().filter(|c| !c.is_empty());
        for clip in clips.ok_or("every track needs clips")? {
            // Numbers, or the smart-clip words `auto` and `end`.
            let seconds = |field: &str| match &clip[field] {
                Value::Number(n) => n.as_f64(),
                Value::String(word) if word == "auto" || word == "end" => Some(0.0),
                _ => None,
            };
            let (Some(start), Some(length)) = (seconds("start"), seconds("length")) else {
                return Err("every clip needs a start and a length".into());
            };
            if clip["asset"]["type"].as_str().is_none() {
                return Err("every clip needs an asset with a type".into());
            }
            first.get_or_insert_with(|| {
                clip["asset"]["src"].as_str().unwrap_or_default().to_owned()
            });
            end = end.max(start + length);
        }
    }
    Ok((end, first.unwrap_or_default()))
}

/// The answer to a request for an unknown stage (404) or without the key
/// (401), if it is one of those.
fn refused(state: &Shotstack, stage: &str, headers: &HeaderMap) -> Option<Response> {
    if !known_stage(stage) {
        Some(not_found())
    } else if !state
        .shared
        .authorized(headers, API_KEY_HEADER, "", |k| &k.shotstack)
    {
        Some(unauthorized())
    } else {
        None
    }
}

async fn render(
    State(state): State<Arc<Shotstack>>,
    Path(stage_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refused(&state, &stage_name, &headers) {
        return refusal;
    }
    let Ok(edit) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("body is not valid JSON");
    };
    let (duration, first_src) = match check_edit(&edit) {
        Ok(checked) => checked,
        Err(error) => return bad_request(&error),
    };
    let config = &state.shared.config;
    let id = uuid::Uuid::new_v4().to_string();
    let fails = state.shared.counters.fails(&first_src);
    lock(&state.renders).insert(
        id.clone(),
        Render {
            stage: stage_name.clone(),
            created: Utc::now(),
            submitted: Instant::now(),
            duration,
            fails,
            early_url: faults::roll(config.faults.nulls),
            edit: edit.clone(),
        },
    );
    MockCounters::bump(&state.shared.counters.accepted);
    if let Some(url) = edit["callback"].as_str().filter(|u| !u.is_empty()) {
        let (shared, url, id) = (state.shared.clone(), url.to_owned(), id.clone());
        // Out of order: the hosted copy's callback before the render's.
        let swapped = faults::roll(config.faults.reorder);
        state.shared.background.spawn(async move {
            let latency = shared.config.latency;
            tokio::time::sleep(latency).await;
            let render = render_callback(&id, fails, &url);
            let copy = (!fails).then(|| cdn_callback(&id, &stage_name, &url));
            match (swapped, copy) {
                (true, Some(copy)) => {
                    tokio::time::sleep(hosting_delay(latency)).await;
                    deliver(&shared, copy).await;
                    deliver(&shared, render).await;
                }
                (false, Some(copy)) => {
                    // The hosted copy is reported on its own, whether or not
                    // the render callback got through.
                    deliver(&shared, render).await;
                    tokio::time::sleep(hosting_delay(latency)).await;
                    deliver(&shared, copy).await;
                }
                (_, None) => {
                    deliver(&shared, render).await;
                }
            }
        });
    }
    accepted_answer(
        &state.shared,
        reply(
            StatusCode::CREATED,
            json!({ "success": true, "message": "Created",
                    "response": { "message": "Render Successfully Queued", "id": id } }),
        ),
    )
}

/// How long after the render its hosted copy is ready.
fn hosting_delay(latency: Duration) -> Duration {
    latency / 2
}

/// The temporary output file (deleted after 24 hours, the docs say).
fn render_url(id: &str) -> String {
    format!("{MOCK_CDN}/shotstack-output/{OWNER}/{id}.mp4")
}

/// The lasting copy, shaped like Shotstack's CDN URLs
/// (`cdn.shotstack.io/{region}/{stage}/{owner}/{file}`).
fn cdn_url(id: &str, stage: &str) -> String {
    format!("{MOCK_CDN}/au/{stage}/{OWNER}/{id}.mp4")
}

/// The serve asset id, derived from the render id like a UUID.
fn asset_id(render: &str) -> String {
    let hex = hex::encode(&Sha256::digest(render.as_bytes())[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn unsigned(job_id: &str, url: &str, body: Value) -> Callback {
    Callback {
        provider: "shotstack",
        job_id: job_id.into(),
        url: url.into(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
        headers: Arc::new(|_| HeaderMap::new()),
    }
}

fn render_callback(id: &str, fails: bool, url: &str) -> Callback {
    let body = json!({
        "type": "edit", "action": "render", "id": id, "owner": OWNER,
        "status": if fails { "failed" } else { "done" },
        "url": if fails { Value::Null } else { json!(render_url(id)) },
        "error": if fails { json!(FAILURE_MESSAGE) } else { Value::Null },
        "completed": iso(Utc::now()),
    });
    unsigned(id, url, body)
}

fn cdn_callback(id: &str, stage: &str, url: &str) -> Callback {
    let body = json!({
        "type": "serve", "action": "copy", "id": asset_id(id), "render": id, "owner": OWNER,
        "status": "ready", "url": cdn_url(id, stage), "error": null,
        "completed": iso(Utc::now()),
    });
    unsigned(id, url, body)
}

async fn get_render(
    State(state): State<Arc<Shotstack>>,
    Path((stage_name, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&state, &stage_name, &headers) {
        return refusal;
    }
    let renders = lock(&state.renders);
    let Some(render) = renders.get(&id).filter(|r| r.stage == stage_name) else {
        return not_found();
    };
    let latency = state.shared.config.latency;
    let elapsed = render.submitted.elapsed();
    let status = match (elapsed >= latency, render.fails) {
        (true, true) => "failed",
        (true, false) => "done",
        _ if elapsed < latency / 5 => "queued",
        _ if elapsed < latency * 2 / 5 => "fetching",
        _ if elapsed < latency * 3 / 5 => "preprocessing",
        _ if elapsed < latency * 4 / 5 => "rendering",
        _ => "saving",
    };
    let mut response = json!({
        "status": status, "id": id, "owner": OWNER,
        "created": iso(render.created), "updated": iso(Utc::now()),
    });
    match status {
        "done" => {
            let extra = json!({
                "plan": "basic", "error": "", "duration": render.duration,
                "renderTime": latency.as_secs_f64() * 1000.0, "url": render_url(&id),
                "poster": null, "thumbnail": null,
            });
            merge(&mut response, extra);
        }
        "failed" => merge(
            &mut response,
            json!({ "plan": "basic", "error": FAILURE_MESSAGE }),
        ),
        "rendering" if render.early_url => {
            merge(&mut response, json!({ "url": render_url(&id) }));
        }
        _ => {}
    }
    // `data`: the edit as submitted, unless `data=false` (the docs: true by
    // default for now, a default about to change).
    if query.get("data").map(String::as_str) != Some("false") {
        merge(&mut response, json!({ "data": render.edit }));
    }
    reply(
        StatusCode::OK,
        json!({ "success": true, "message": "OK", "response": response }),
    )
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}

async fn hosted_assets(
    State(state): State<Arc<Shotstack>>,
    Path((stage_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&state, &stage_name, &headers) {
        return refusal;
    }
    let renders = lock(&state.renders);
    let latency = state.shared.config.latency;
    let data: Vec<Value> = renders
        .get(&id)
        .filter(|r| r.stage == stage_name && !r.fails)
        .filter(|r| r.submitted.elapsed() >= latency)
        .map(|r| {
            let ready = r.submitted.elapsed() >= latency + hosting_delay(latency);
            json!({ "type": "asset", "attributes": {
                "id": asset_id(&id), "owner": OWNER, "region": "au", "renderId": id,
                "filename": format!("{id}.mp4"), "url": cdn_url(&id, &stage_name),
                "status": if ready { "ready" } else { "importing" },
                "created": iso(r.created), "updated": iso(Utc::now()),
            }})
        })
        .into_iter()
        .collect();
    reply(StatusCode::OK, json!({ "data": data }))
}

async fn templates(
    State(state): State<Arc<Shotstack>>,
    Path(stage_name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&state, &stage_name, &headers) {
        return refusal;
    }
    reply(
        StatusCode::OK,
        json!({ "success": true, "message": "OK",
                "response": { "owner": OWNER, "templates": [] } }),
    )
}
