//! Mock kie.ai: `POST /api/v1/veo/generate`, `GET /api/v1/veo/record-info`
//! and `GET /api/v1/chat/credit`, Bearer auth, the `{code, msg, data}`
//! envelope, and after the latency a signed callback to `callBackUrl`.
//!
//! Answers take the documented shapes (`shared/fixtures/providers/kieai/`):
//! record-info as the docs' example writes it (times as text, URL lists as
//! arrays), or, under the `null` fault, as real answers come (epoch
//! milliseconds, `originUrls: null`, `errorMessage: null`); the success
//! callback as the callback page shows it, or a fallback model's (without
//! `originUrls`).
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
use serde_json::{json, Value};
use tokio::time::Instant;

use super::deliver::{deliver, Callback};
use super::{accepted_answer, faults, lock, reply, MockCounters, Shared, MOCK_CDN};
use crate::providers::kieai::wire;
use crate::providers::kieai::{CREDIT_PATH, GENERATE_PATH, RECORD_INFO_PATH};

/// kie.ai's message for a content-policy failure (callback code 400).
const FAILURE_MESSAGE: &str = "Your prompt was flagged by Website as violating content policies.";

struct Task {
    created: DateTime<Utc>,
    ready_at: Instant,
    param_json: String,
    aspect_ratio: String,
    fails: bool,
    /// Answer as real answers come (the `null` fault), not as the docs'
    /// example writes them.
    real_shape: bool,
}

struct KieAi {
    shared: Shared,
    tasks: Mutex<HashMap<String, Task>>,
}

pub(super) fn router(shared: Shared) -> Router {
    let state = Arc::new(KieAi {
        shared: shared.clone(),
        tasks: Mutex::default(),
    });
    let router = Router::new()
        .route(GENERATE_PATH, post(generate))
        .route(RECORD_INFO_PATH, get(record_info))
        .route(CREDIT_PATH, get(credit))
        .with_state(state);
    super::with_faults(router, &shared, refusal)
}

/// kie.ai's answer when it refuses a request before handling it: the
/// envelope without `data`, with the HTTP status.
fn refusal(status: StatusCode) -> Response {
    let msg = if status == StatusCode::TOO_MANY_REQUESTS {
        "Rate Limited - Request limit has been exceeded for this resource"
    } else {
        "Server Error - An unexpected error occurred while processing the request"
    };
    reply(status, json!({ "code": status.as_u16(), "msg": msg }))
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

/// kie.ai answers HTTP 200 with the outcome in `code`; errors have no `data`.
fn envelope(code: i64, msg: &str, data: Option<Value>) -> Response {
    let body = match data {
        Some(data) => json!({ "code": code, "msg": msg, "data": data }),
        None => json!({ "code": code, "msg": msg }),
    };
    reply(StatusCode::OK, body)
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
        json!({ "code": 401, "msg": "You do not have access permissions" }),
    )
}

async fn generate(State(state): State<Arc<KieAi>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Ok(request) = serde_json::from_slice::<Generate>(&body) else {
        return envelope(422, "request body is not valid JSON", None);
    };
    if request.prompt.trim().is_empty() {
        return envelope(422, "prompt is required", None);
    }
    let model = request.model.unwrap_or_else(|| "veo3_fast".into());
    if !matches!(model.as_str(), "veo3" | "veo3_fast") {
        return envelope(422, "model must be veo3 or veo3_fast", None);
    }
    let aspect = request.aspect_ratio.unwrap_or_else(|| "16:9".into());
    if !matches!(aspect.as_str(), "16:9" | "9:16" | "Auto") {
        return envelope(422, "aspect_ratio must be 16:9, 9:16 or Auto", None);
    }
    let config = &state.shared.config;
    let task_id = uuid::Uuid::new_v4().simple().to_string();
    let fails = state.shared.counters.fails(&request.prompt);
    // Out of order: the task is over, and its callback sent, before the
    // submission is answered.
    let early = faults::roll(config.faults.reorder);
    let latency = if early {
        std::time::Duration::ZERO
    } else {
        config.latency
    };
    let param_json = json!({ "prompt": request.prompt, "model": model, "aspectRatio": aspect,
                             "callBackUrl": request.callback_url })
    .to_string();
    let task = Task {
        created: Utc::now(),
        ready_at: Instant::now() + latency,
        param_json,
        aspect_ratio: aspect,
        fails,
        real_shape: faults::roll(config.faults.nulls),
    };
    let callback = request
        .callback_url
        .filter(|u| !u.is_empty())
        .map(|url| callback(&state.shared, &task_id, &task, url));
    lock(&state.tasks).insert(task_id.clone(), task);
    MockCounters::bump(&state.shared.counters.accepted);
    if let Some(callback) = callback {
        if early {
            deliver(&state.shared, callback).await;
        } else {
            let shared = state.shared.clone();
            state.shared.background.spawn(async move {
                tokio::time::sleep(latency).await;
                deliver(&shared, callback).await;
            });
        }
    }
    accepted_answer(
        &state.shared,
        envelope(200, "success", Some(json!({ "taskId": task_id }))),
    )
}

fn result_url(task_id: &str) -> String {
    format!("{MOCK_CDN}/kieai/{task_id}.mp4")
}

/// The un-upscaled original, which kie.ai names only when the ratio is not
/// 16:9.
fn origin_urls(task_id: &str, task: &Task) -> Vec<String> {
    if task.aspect_ratio == "16:9" {
        Vec::new()
    } else {
        vec![format!("{MOCK_CDN}/kieai/{task_id}-original.mp4")]
    }
}

/// The callback kie.ai sends when the task ends, signed per attempt.
fn callback(shared: &Shared, task_id: &str, task: &Task, url: String) -> Callback {
    let body = if task.fails {
        json!({ "code": 400, "msg": FAILURE_MESSAGE,
                "data": { "taskId": task_id, "fallbackFlag": false } })
    } else if task.real_shape {
        // A fallback model's result: no `originUrls` at all.
        json!({ "code": 200, "msg": "Veo3.1 video generated successfully (using fallback model).",
                "data": { "taskId": task_id,
                          "info": { "resultUrls": [result_url(task_id)], "resolution": "720p" },
                          "fallbackFlag": true } })
    } else {
        json!({ "code": 200, "msg": "Veo3.1 video generated successfully.",
                "data": { "taskId": task_id, "promptJson": task.param_json,
                          "info": { "resultUrls": [result_url(task_id)],
                                    "originUrls": origin_urls(task_id, task),
                                    "resolution": "1080p" },
                          "fallbackFlag": false } })
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
            let signature = crate::providers::kieai::wire::sign(&secret, &signed_task, now);
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
    let data = {
        let tasks = lock(&state.tasks);
        let Some(task) = tasks.get(&query.task_id) else {
            return envelope(422, "record is null", None);
        };
        record(&query.task_id, task, state.shared.config.latency)
    };
    envelope(200, "success", Some(data))
}

/// `data` of record-info for `task`, in the docs' shape or the real one.
fn record(task_id: &str, task: &Task, latency: std::time::Duration) -> Value {
    let done = Instant::now() >= task.ready_at;
    let completed = task.created + latency;
    let (flag, error_code) = match (done, task.fails) {
        (false, _) => (0, Value::Null),
        (true, true) => (3, json!(400)),
        (true, false) => (1, Value::Null),
    };
    let succeeded = flag == 1;
    if task.real_shape {
        let millis = |t: DateTime<Utc>| json!(t.timestamp_millis());
        let response = succeeded.then(|| {
            json!({ "taskId": task_id, "resolution": "720p", "originUrls": null,
                    "resultUrls": [result_url(task_id)], "fullResultUrls": null,
                    "hasAudioList": [true], "seeds": [61668] })
        });
        json!({
            "taskId": task_id,
            "paramJson": task.param_json,
            "response": response,
            "successFlag": flag,
            "fallbackFlag": false,
            "completeTime": if done { millis(completed) } else { Value::Null },
            "createTime": millis(task.created),
            "errorCode": error_code,
            "errorMessage": if flag == 3 { json!(FAILURE_MESSAGE) } else { Value::Null },
        })
    } else {
        let time = |t: DateTime<Utc>| json!(t.format("%Y-%m-%d %H:%M:%S").to_string());
        let response = succeeded.then(|| {
            json!({ "taskId": task_id, "resultUrls": [result_url(task_id)],
                    "originUrls": origin_urls(task_id, task), "resolution": "1080p" })
        });
        json!({
            "taskId": task_id,
            "paramJson": task.param_json,
            "completeTime": if done { time(completed) } else { Value::Null },
            "response": response,
            "successFlag": flag,
            "errorCode": error_code,
            "errorMessage": match flag { 3 => json!(FAILURE_MESSAGE), 1 => json!(""), _ => Value::Null },
            "createTime": time(task.created),
            "fallbackFlag": false,
        })
    }
}

/// The account's credits: a fixed balance.
async fn credit(State(state): State<Arc<KieAi>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    envelope(200, "success", Some(json!(100)))
}
