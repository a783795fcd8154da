//! Mock Shotstack: `POST /edit/v1/render` and `GET /edit/v1/render/{id}`
//! with `x-api-key`, and Shotstack's two unsigned callbacks: `edit`/`render`
//! when the render ends, then (for a successful render) `serve`/`copy` when
//! the file reached the CDN.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::deliver::{deliver, Callback};
use super::{lock, reply, Shared, FAIL_MARKER, MOCK_CDN};
use crate::providers::shotstack::wire::{self, API_KEY_HEADER};
use crate::providers::shotstack::RENDER_PATH;

const OWNER: &str = "mockowner1";
const FAILURE_MESSAGE: &str = "Asset fetch failed: the first clip's source could not be downloaded";

struct Render {
    created: DateTime<Utc>,
    submitted: Instant,
    duration: f64,
    fails: bool,
}

struct Shotstack {
    shared: Shared,
    renders: Mutex<HashMap<String, Render>>,
}

pub(super) fn router(shared: Shared) -> Router {
    let state = Arc::new(Shotstack {
        shared,
        renders: Mutex::default(),
    });
    Router::new()
        .route(RENDER_PATH, post(render))
        .route(&format!("{RENDER_PATH}/{{id}}"), get(get_render))
        .with_state(state)
}

fn unauthorized() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({ "message": "Unauthorized" }),
    )
}

fn bad_request(error: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        json!({ "success": false, "message": "Bad Request", "response": { "error": error } }),
    )
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
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
            let (Some(start), Some(length)) = (clip["start"].as_f64(), clip["length"].as_f64())
            else {
                return Err("every clip needs a numeric start and length".into());
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

async fn render(State(state): State<Arc<Shotstack>>, headers: HeaderMap, body: Bytes) -> Response {
    if !state
        .shared
        .authorized(&headers, API_KEY_HEADER, "", |k| &k.shotstack)
    {
        return unauthorized();
    }
    let Ok(edit) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("body is not valid JSON");
    };
    let (duration, first_src) = match check_edit(&edit) {
        Ok(checked) => checked,
        Err(error) => return bad_request(&error),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let fails = first_src.contains(FAIL_MARKER);
    lock(&state.renders).insert(
        id.clone(),
        Render {
            created: Utc::now(),
            submitted: Instant::now(),
            duration,
            fails,
        },
    );
    if let Some(url) = edit["callback"].as_str().filter(|u| !u.is_empty()) {
        let (shared, url, id) = (state.shared.clone(), url.to_owned(), id.clone());
        state.shared.background.spawn(async move {
            let latency = shared.config.latency;
            tokio::time::sleep(latency).await;
            // The CDN copy is reported on its own, whether or not the render
            // callback got through.
            deliver(&shared, render_callback(&id, fails, &url)).await;
            if !fails {
                tokio::time::sleep(latency / 2).await;
                deliver(&shared, cdn_callback(&id, &url)).await;
            }
        });
    }
    reply(
        StatusCode::CREATED,
        json!({ "success": true, "message": "Created",
                "response": { "message": "Render Successfully Queued", "id": id } }),
    )
}

fn render_url(id: &str) -> String {
    format!("{MOCK_CDN}/shotstack/{id}.mp4")
}

fn cdn_url(id: &str) -> String {
    format!("{MOCK_CDN}/shotstack/serve/{id}.mp4")
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

fn unsigned(job_id: &str, url: &str, body: &wire::Callback) -> Callback {
    Callback {
        provider: "shotstack",
        job_id: job_id.into(),
        url: url.into(),
        body: serde_json::to_vec(body).unwrap_or_default(),
        headers: Arc::new(|_| HeaderMap::new()),
    }
}

fn render_callback(id: &str, fails: bool, url: &str) -> Callback {
    let body = wire::Callback {
        kind: "edit".into(),
        action: "render".into(),
        id: id.into(),
        render: None,
        owner: OWNER.into(),
        status: if fails { "failed" } else { "done" }.into(),
        url: (!fails).then(|| render_url(id)),
        error: fails.then(|| FAILURE_MESSAGE.to_owned()),
        completed: Some(iso(Utc::now())),
    };
    unsigned(id, url, &body)
}

fn cdn_callback(id: &str, url: &str) -> Callback {
    let body = wire::Callback {
        kind: "serve".into(),
        action: "copy".into(),
        id: asset_id(id),
        render: Some(id.into()),
        owner: OWNER.into(),
        status: "ready".into(),
        url: Some(cdn_url(id)),
        error: None,
        completed: Some(iso(Utc::now())),
    };
    unsigned(id, url, &body)
}

async fn get_render(
    State(state): State<Arc<Shotstack>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !state
        .shared
        .authorized(&headers, API_KEY_HEADER, "", |k| &k.shotstack)
    {
        return unauthorized();
    }
    let renders = lock(&state.renders);
    let Some(render) = renders.get(&id) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({ "success": false, "message": "Not Found", "response": "render not found" }),
        );
    };
    let latency = state.shared.config.latency;
    let elapsed = render.submitted.elapsed();
    let status = match (elapsed >= latency, render.fails) {
        (true, true) => "failed",
        (true, false) => "done",
        _ if elapsed < latency / 3 => "queued",
        _ if elapsed < latency * 2 / 3 => "rendering",
        _ => "saving",
    };
    let done = status == "done";
    reply(
        StatusCode::OK,
        json!({ "success": true, "message": "OK", "response": {
            "id": id,
            "owner": OWNER,
            "plan": "sandbox",
            "status": status,
            "error": if status == "failed" { FAILURE_MESSAGE } else { "" },
            "duration": render.duration,
            "renderTime": if done { json!(latency.as_secs_f64() * 1000.0) } else { json!(null) },
            "url": if done { json!(render_url(&id)) } else { json!(null) },
            "poster": null,
            "thumbnail": null,
            "created": iso(render.created),
            "updated": iso(Utc::now()),
        }}),
    )
}
