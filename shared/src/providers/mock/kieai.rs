//! Mock kie.ai: `POST /api/v1/veo/generate` and
//! `GET /api/v1/veo/record-info`, Bearer auth, the `{code, msg, data}`
//! envelope, and after the latency a signed callback to `callBackUrl`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::deliver::{deliver, Callback};
use super::{lock, reply, Shared, FAIL_MARKER, MOCK_CDN};
use crate::providers::kieai::wire::{self, CallbackData, CallbackInfo};
use crate::providers::kieai::{GENERATE_PATH, RECORD_INFO_PATH};

/// kie.ai's message for a content-policy failure (callback code 400).
const FAILURE_MESSAGE: &str = "Your prompt was flagged by Website as violating content policies";

struct Task {
    created: DateTime<Utc>,
    ready_at: Instant,
    param_json: String,
    fails: bool,
}

struct KieAi {
    shared: Shared,
    tasks: Mutex<HashMap<String, Task>>,
}

pub(super) fn router(shared: Shared) -> Router {
    let state = Arc::new(KieAi {
        shared,
        tasks: Mutex::default(),
    });
    Router::new()
        .route(GENERATE_PATH, post(generate))
        .route(RECORD_INFO_PATH, get(record_info))
        .with_state(state)
}

/// The generate body, read the way kie.ai documents it (older docs spelled
/// the ratio `aspectRatio`; both are accepted).
#[derive(Deserialize)]
struct Generate {
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, alias = "aspectRatio")]
    aspect_ratio: Option<String>,
    #[serde(default, rename = "callBackUrl")]
    callback_url: Option<String>,
}

/// kie.ai answers HTTP 200 with the outcome in `code`.
fn envelope(code: i64, msg: &str, data: serde_json::Value) -> Response {
    reply(
        StatusCode::OK,
        json!({ "code": code, "msg": msg, "data": data }),
    )
}

fn authorized(state: &KieAi, headers: &HeaderMap) -> bool {
    state
        .shared
        .authorized(headers, header::AUTHORIZATION.as_str(), "Bearer", |k| {
            &k.kieai
        })
}

fn unauthorized() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({ "code": 401, "msg": "You do not have access permissions", "data": null }),
    )
}

async fn generate(State(state): State<Arc<KieAi>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Ok(request) = serde_json::from_slice::<Generate>(&body) else {
        return envelope(422, "request body is not valid JSON", json!(null));
    };
    if request.prompt.trim().is_empty() {
        return envelope(422, "prompt is required", json!(null));
    }
    let model = request.model.unwrap_or_else(|| "veo3_fast".into());
    if !matches!(model.as_str(), "veo3" | "veo3_fast") {
        return envelope(422, "model must be veo3 or veo3_fast", json!(null));
    }
    let aspect = request.aspect_ratio.unwrap_or_else(|| "16:9".into());
    if !matches!(aspect.as_str(), "16:9" | "9:16" | "Auto") {
        return envelope(422, "aspect_ratio must be 16:9, 9:16 or Auto", json!(null));
    }
    let task_id = uuid::Uuid::new_v4().simple().to_string();
    let fails = request.prompt.contains(FAIL_MARKER);
    let latency = state.shared.config.latency;
    let param_json =
        json!({ "prompt": request.prompt, "model": model, "aspectRatio": aspect }).to_string();
    lock(&state.tasks).insert(
        task_id.clone(),
        Task {
            created: Utc::now(),
            ready_at: Instant::now() + latency,
            param_json,
            fails,
        },
    );
    if let Some(url) = request.callback_url.filter(|u| !u.is_empty()) {
        let callback = callback(&state.shared, &task_id, fails, url);
        let shared = state.shared.clone();
        state.shared.background.spawn(async move {
            tokio::time::sleep(latency).await;
            deliver(&shared, callback).await;
        });
    }
    envelope(200, "success", json!({ "taskId": task_id }))
}

fn result_url(task_id: &str) -> String {
    format!("{MOCK_CDN}/kieai/{task_id}.mp4")
}

/// The callback kie.ai sends when the task ends, signed per attempt.
fn callback(shared: &Shared, task_id: &str, fails: bool, url: String) -> Callback {
    let body = if fails {
        wire::Callback {
            code: 400,
            msg: FAILURE_MESSAGE.into(),
            data: Some(CallbackData {
                task_id: task_id.into(),
                info: None,
                fallback_flag: Some(false),
            }),
        }
    } else {
        wire::Callback {
            code: 200,
            msg: "Veo3.1 video generated successfully.".into(),
            data: Some(CallbackData {
                task_id: task_id.into(),
                info: Some(CallbackInfo {
                    result_urls: vec![result_url(task_id)],
                    origin_urls: Vec::new(),
                    resolution: Some("1080p".into()),
                }),
                fallback_flag: Some(false),
            }),
        }
    };
    let secret = shared.config.kieai_webhook_secret.clone();
    let signed_task = task_id.to_owned();
    Callback {
        provider: "kieai",
        job_id: task_id.into(),
        url,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        headers: Arc::new(move |_body| {
            let now = Utc::now().timestamp();
            let signature = crate::webhooks::kieai::sign(&secret, &signed_task, now);
            let mut headers = HeaderMap::new();
            headers.insert(wire::TIMESTAMP_HEADER, HeaderValue::from(now));
            if let Ok(value) = HeaderValue::from_str(&signature) {
                headers.insert(wire::SIGNATURE_HEADER, value);
            }
            headers
        }),
    }
}

#[derive(Deserialize)]
struct RecordQuery {
    #[serde(rename = "taskId", default)]
    task_id: String,
}

async fn record_info(
    State(state): State<Arc<KieAi>>,
    headers: HeaderMap,
    Query(query): Query<RecordQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let tasks = lock(&state.tasks);
    let Some(task) = tasks.get(&query.task_id) else {
        return envelope(404, "task not found", json!(null));
    };
    let done = Instant::now() >= task.ready_at;
    let completed = task.created + state.shared.config.latency;
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let (flag, response, error_code, error_message) = match (done, task.fails) {
        (false, _) => (0, json!(null), json!(null), ""),
        (true, true) => (3, json!(null), json!(400), FAILURE_MESSAGE),
        (true, false) => (
            1,
            json!({
                "taskId": query.task_id,
                "resultUrls": [result_url(&query.task_id)],
                "originUrls": [],
                "resolution": "1080p",
            }),
            json!(null),
            "",
        ),
    };
    envelope(
        200,
        "success",
        json!({
            "taskId": query.task_id,
            "paramJson": task.param_json,
            "completeTime": if done { json!(time(completed)) } else { json!(null) },
            "response": response,
            "successFlag": flag,
            "errorCode": error_code,
            "errorMessage": error_message,
            "createTime": time(task.created),
            "fallbackFlag": false,
        }),
    )
}
