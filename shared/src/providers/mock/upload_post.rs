//! Mock upload-post: `POST /api/upload` (multipart, `Authorization: Apikey
//! …`, our `request_id` and `Idempotency-Key`), `GET /api/uploadposts/status`
//! (by `request_id` or `job_id`), `GET /api/uploadposts/me`, and
//! `POST /api/uploadposts/users/notifications` to register the webhook URL.
//! After the latency each platform's result is published and, when a
//! webhook URL is registered, sent as a signed `upload_completed` event.
//!
//! Answers take the documented shapes
//! (`shared/fixtures/providers/upload_post/`): an asynchronous upload is
//! answered with its `request_id` and, as live answers are, the `job_id`
//! webhooks carry (without it under the `null` fault, as the docs promise);
//! status rows are a list with each row's own `status`. An upload sent again
//! with the same idempotency key returns the job already made.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::deliver::{deliver, Callback};
use super::{accepted_answer, faults, lock, reply, MockCounters, Shared};
use crate::providers::upload_post::wire;
use crate::providers::upload_post::{
    IDEMPOTENCY_HEADER, ME_PATH, NOTIFICATIONS_PATH, STATUS_PATH, UPLOAD_PATH,
};

const FAILURE_MESSAGE: &str = "The platform rejected the video";

struct Job {
    request_id: String,
    job_id: String,
    user: String,
    title: String,
    platforms: Vec<String>,
    created: DateTime<Utc>,
    ready_at: Instant,
    fails: bool,
    /// Answer the upload as the docs promise it: without the `job_id`.
    without_job_id: bool,
}

impl Job {
    fn done(&self) -> bool {
        Instant::now() >= self.ready_at
    }

    fn post_url(&self, platform: &str) -> String {
        format!(
            "https://mock-social.myloware.local/{platform}/{}",
            self.job_id
        )
    }

    /// A platform's row of the status answer.
    fn row(&self, platform: &str) -> Value {
        if self.fails {
            json!({ "platform": platform, "status": "failed", "success": false,
                    "platform_post_id": null, "post_url": null,
                    "error_code": "platform_rejected", "failure_stage": "upload",
                    "error_message": FAILURE_MESSAGE,
                    "request_id": self.request_id, "job_id": self.job_id })
        } else {
            json!({ "platform": platform, "status": "completed", "success": true,
                    "platform_post_id": format!("{platform}-{}", self.job_id),
                    "post_url": self.post_url(platform), "error_message": null,
                    "request_id": self.request_id, "job_id": self.job_id })
        }
    }

    /// A platform's result as webhooks and synchronous answers carry it.
    fn result(&self, platform: &str) -> Value {
        if self.fails {
            json!({ "success": false, "url": null, "error": FAILURE_MESSAGE })
        } else {
            let id = format!("{platform}-{}", self.job_id);
            json!({ "success": true, "url": self.post_url(platform), "publish_id": id,
                    "post_id": id, "error": null })
        }
    }

    /// The answer to the upload (and to the same upload sent again).
    fn accepted(&self) -> Value {
        let mut answer = json!({ "success": true,
            "message": "Upload initiated successfully in background.",
            "request_id": self.request_id, "total_platforms": self.platforms.len() });
        if !self.without_job_id {
            answer["job_id"] = json!(self.job_id);
        }
        answer
    }
}

#[derive(Default)]
struct Tables {
    /// Jobs by request id, job id and idempotency key.
    jobs: HashMap<String, Arc<Job>>,
    webhook_url: Option<String>,
}

struct UploadPost {
    shared: Shared,
    tables: Mutex<Tables>,
}

pub(super) fn router(shared: Shared) -> Router {
    let state = Arc::new(UploadPost {
        shared: shared.clone(),
        tables: Mutex::default(),
    });
    let router = Router::new()
        .route(UPLOAD_PATH, post(upload))
        .route(STATUS_PATH, get(status))
        .route(ME_PATH, get(me))
        .route(NOTIFICATIONS_PATH, post(notifications))
        .with_state(state);
    super::with_faults(router, &shared, refusal)
}

/// upload-post's refusals: the rate limit (429, with the end of its window
/// in `X-RateLimit-Reset`) or a server error (`{success, error}`).
fn refusal(status: StatusCode) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let reset = (Utc::now().timestamp() + 1).to_string();
        let mut response = refused(status, "Too many requests");
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("100"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        if let Ok(reset) = HeaderValue::from_str(&reset) {
            headers.insert("x-ratelimit-reset", reset);
        }
        return response;
    }
    reply(
        status,
        json!({ "success": false, "error": "Internal server error" }),
    )
}

fn authorized(state: &UploadPost, headers: &HeaderMap) -> bool {
    let name = header::AUTHORIZATION.as_str();
    state
        .shared
        .authorized(headers, name, wire::AUTH_SCHEME, |k| &k.upload_post)
}

fn refused(status: StatusCode, message: &str) -> Response {
    reply(status, json!({ "success": false, "message": message }))
}

fn unauthorized() -> Response {
    refused(StatusCode::UNAUTHORIZED, "Invalid or expired token")
}

/// The form fields the upload takes.
#[derive(Default)]
struct Form {
    fields: HashMap<String, String>,
    platforms: Vec<String>,
    video_file: bool,
}

async fn read_form(mut multipart: Multipart) -> Result<Form, String> {
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "video" && field.file_name().is_some() {
            form.video_file = !field.bytes().await.map_err(|e| e.to_string())?.is_empty();
            continue;
        }
        let text = field.text().await.map_err(|e| e.to_string())?;
        match name.as_str() {
            "platform[]" | "platform" => form.platforms.push(text),
            _ => {
                form.fields.insert(name, text);
            }
        }
    }
    Ok(form)
}

async fn upload(
    State(state): State<Arc<UploadPost>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let form = match read_form(multipart).await {
        Ok(form) => form,
        Err(error) => return refused(StatusCode::BAD_REQUEST, &error),
    };
    let field = |name: &str| {
        form.fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(user) = field("user") else {
        return refused(StatusCode::BAD_REQUEST, "Username required in form data");
    };
    let Some(title) = field("title") else {
        return refused(StatusCode::BAD_REQUEST, "title is required");
    };
    if field("video").is_none() && !form.video_file {
        return refused(
            StatusCode::BAD_REQUEST,
            "video is required (a file or a URL)",
        );
    }
    if form.platforms.is_empty() {
        return refused(StatusCode::BAD_REQUEST, "platform[] is required");
    }
    let key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| field("request_id").map(str::to_owned));
    let asynchronous = field("async_upload").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let config = &state.shared.config;
    // Out of order: published, and the webhooks sent, before the answer.
    let early = faults::roll(config.faults.reorder);
    let latency = if early {
        std::time::Duration::ZERO
    } else {
        config.latency
    };
    let job = Arc::new(Job {
        request_id: field("request_id")
            .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned),
        job_id: uuid::Uuid::new_v4().simple().to_string(),
        user: user.to_owned(),
        title: title.to_owned(),
        platforms: form.platforms.clone(),
        created: Utc::now(),
        ready_at: Instant::now() + latency,
        fails: state.shared.counters.fails(title),
        without_job_id: faults::roll(config.faults.nulls),
    });
    let (job, webhook_url) = {
        let mut tables = lock(&state.tables);
        if let Some(existing) = key.as_ref().and_then(|k| tables.jobs.get(k)) {
            // The same upload again: the job already made, nothing new.
            return reply(StatusCode::OK, existing.accepted());
        }
        for id in [&job.request_id, &job.job_id].into_iter().chain(&key) {
            tables.jobs.insert(id.clone(), job.clone());
        }
        (job, tables.webhook_url.clone())
    };
    MockCounters::bump(&state.shared.counters.accepted);
    if let Some(url) = webhook_url {
        let (shared, job) = (state.shared.clone(), job.clone());
        let send = async move {
            tokio::time::sleep(latency).await;
            for platform in &job.platforms {
                deliver(&shared, completed_callback(&shared, &job, platform, &url)).await;
            }
        };
        if early {
            send.await;
        } else {
            state.shared.background.spawn(send);
        }
    }
    if asynchronous {
        return accepted_answer(&state.shared, reply(StatusCode::OK, job.accepted()));
    }
    tokio::time::sleep(latency).await;
    let results: serde_json::Map<String, Value> = job
        .platforms
        .iter()
        .map(|p| (p.clone(), job.result(p)))
        .collect();
    accepted_answer(
        &state.shared,
        reply(
            StatusCode::OK,
            json!({ "success": true, "results": results,
                    "usage": { "count": 1, "limit": 100, "last_reset": iso(job.created) } }),
        ),
    )
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The signed `upload_completed` event for one platform.
fn completed_callback(shared: &Shared, job: &Job, platform: &str, url: &str) -> Callback {
    let event = json!({
        "event": "upload_completed",
        "job_id": job.job_id,
        "user_email": "mock@myloware.local",
        "profile_username": job.user,
        "platform": platform,
        "media_type": "video",
        "title": job.title,
        "caption": job.title,
        "result": job.result(platform),
        "created_at": Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    });
    let secret = shared.config.upload_post_webhook_secret.clone();
    let delivery = uuid::Uuid::new_v4().to_string();
    Callback {
        provider: "upload-post",
        job_id: job.job_id.clone(),
        url: url.into(),
        body: serde_json::to_vec(&event).unwrap_or_default(),
        headers: Arc::new(move |body| {
            let now = Utc::now().timestamp();
            let signature = crate::providers::upload_post::wire::sign(&secret, now, body);
            let mut headers = HeaderMap::new();
            headers.insert(wire::TIMESTAMP_HEADER, HeaderValue::from(now));
            headers.insert(
                wire::EVENT_HEADER,
                HeaderValue::from_static("upload_completed"),
            );
            for (name, value) in [
                (wire::SIGNATURE_HEADER, &signature),
                (wire::DELIVERY_HEADER, &delivery),
            ] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            }
            headers
        }),
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    request_id: Option<String>,
    job_id: Option<String>,
}

async fn status(
    State(state): State<Arc<UploadPost>>,
    headers: HeaderMap,
    Query(query): Query<StatusQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let id = query.request_id.or(query.job_id).unwrap_or_default();
    let Some(job) = lock(&state.tables).jobs.get(&id).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "status": "not_found" })),
        )
            .into_response();
    };
    let done = job.done();
    let rows: Vec<Value> = if done {
        job.platforms.iter().map(|p| job.row(p)).collect()
    } else {
        Vec::new()
    };
    let status = match (done, job.fails) {
        (false, _) => "processing",
        (true, true) => "failed",
        (true, false) => "completed",
    };
    reply(
        StatusCode::OK,
        json!({ "request_id": job.request_id, "status": status,
                "completed": rows.len(), "total": job.platforms.len(),
                "results": rows, "last_update": iso(Utc::now()) }),
    )
}

async fn me(State(state): State<Arc<UploadPost>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    reply(
        StatusCode::OK,
        json!({ "success": true, "message": "Token is valid", "email": "mock@myloware.local",
                "plan": "Professional", "preferences": { "weekStartDay": 1 } }),
    )
}

async fn notifications(
    State(state): State<Arc<UploadPost>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let webhook = body["channels"]["webhook"].as_bool().unwrap_or(false);
    let url = body["webhook_url"].as_str().filter(|u| !u.is_empty());
    lock(&state.tables).webhook_url = webhook.then_some(url).flatten().map(str::to_owned);
    reply(
        StatusCode::OK,
        json!({ "success": true, "notifications": body }),
    )
}
