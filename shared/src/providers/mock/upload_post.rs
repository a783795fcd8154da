//! Mock upload-post: `POST /api/upload` (multipart, `Authorization: Apikey
//! …`), `GET /api/uploadposts/status`, and
//! `POST /api/uploadposts/users/notifications` to register the webhook URL.
//! After the latency each platform's result is published and, when a
//! webhook URL is registered, sent as a signed `upload_completed` event.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::deliver::{deliver, Callback};
use super::{lock, reply, Shared, FAIL_MARKER};
use crate::providers::upload_post::wire::{self, PlatformResult, UploadCompleted};
use crate::providers::upload_post::{NOTIFICATIONS_PATH, STATUS_PATH, UPLOAD_PATH};

const FAILURE_MESSAGE: &str = "The platform rejected the video";

struct Job {
    request_id: String,
    job_id: String,
    user: String,
    title: String,
    platforms: Vec<String>,
    ready_at: Instant,
    fails: bool,
}

impl Job {
    fn result(&self, platform: &str) -> PlatformResult {
        PlatformResult {
            platform: Some(platform.into()),
            success: Some(!self.fails),
            url: (!self.fails).then(|| post_url(platform, &self.job_id)),
            error: self.fails.then(|| FAILURE_MESSAGE.to_owned()),
            publish_id: (!self.fails).then(|| format!("{platform}-{}", self.job_id)),
            ..PlatformResult::default()
        }
    }
}

#[derive(Default)]
struct Tables {
    jobs: HashMap<String, Arc<Job>>,
    webhook_url: Option<String>,
}

struct UploadPost {
    shared: Shared,
    tables: Mutex<Tables>,
}

pub(super) fn router(shared: Shared) -> Router {
    let state = Arc::new(UploadPost {
        shared,
        tables: Mutex::default(),
    });
    Router::new()
        .route(UPLOAD_PATH, post(upload))
        .route(STATUS_PATH, get(status))
        .route(NOTIFICATIONS_PATH, post(notifications))
        .with_state(state)
}

fn post_url(platform: &str, job_id: &str) -> String {
    format!("https://mock-social.myloware.local/{platform}/{job_id}")
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
        return refused(StatusCode::UNAUTHORIZED, "Invalid or expired token");
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
    let (Some(user), Some(title)) = (field("user"), field("title")) else {
        return refused(StatusCode::BAD_REQUEST, "user and title are required");
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
    let asynchronous = field("async_upload").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let latency = state.shared.config.latency;
    let job = Arc::new(Job {
        request_id: uuid::Uuid::new_v4().simple().to_string(),
        job_id: uuid::Uuid::new_v4().simple().to_string(),
        user: user.to_owned(),
        title: title.to_owned(),
        platforms: form.platforms.clone(),
        ready_at: Instant::now() + latency,
        fails: title.contains(FAIL_MARKER),
    });
    let webhook_url = {
        let mut tables = lock(&state.tables);
        tables.jobs.insert(job.request_id.clone(), job.clone());
        tables.jobs.insert(job.job_id.clone(), job.clone());
        tables.webhook_url.clone()
    };
    if let Some(url) = webhook_url {
        let (shared, job) = (state.shared.clone(), job.clone());
        state.shared.background.spawn(async move {
            tokio::time::sleep(latency).await;
            for platform in &job.platforms {
                deliver(&shared, completed_callback(&shared, &job, platform, &url)).await;
            }
        });
    }
    if asynchronous {
        return reply(
            StatusCode::OK,
            json!({ "success": true, "message": "Upload initiated in background",
                    "request_id": job.request_id, "job_id": job.job_id,
                    "total_platforms": job.platforms.len() }),
        );
    }
    tokio::time::sleep(latency).await;
    let results: serde_json::Map<String, Value> = job
        .platforms
        .iter()
        .map(|p| {
            (
                p.clone(),
                serde_json::to_value(job.result(p)).unwrap_or_default(),
            )
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({ "success": true, "request_id": job.request_id, "job_id": job.job_id, "results": results }),
    )
}

/// The signed `upload_completed` event for one platform.
fn completed_callback(shared: &Shared, job: &Job, platform: &str, url: &str) -> Callback {
    let event = UploadCompleted {
        event: "upload_completed".into(),
        job_id: Some(job.job_id.clone()),
        request_id: None,
        user_email: Some("mock@myloware.local".into()),
        profile_username: Some(job.user.clone()),
        platform: Some(platform.into()),
        media_type: Some("video".into()),
        title: Some(job.title.clone()),
        caption: Some(job.title.clone()),
        result: Some(PlatformResult {
            platform: None,
            ..job.result(platform)
        }),
        created_at: Some(Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
    };
    let secret = shared.config.upload_post_webhook_secret.clone();
    let delivery = uuid::Uuid::new_v4().to_string();
    Callback {
        provider: "upload-post",
        job_id: job.job_id.clone(),
        url: url.into(),
        body: serde_json::to_vec(&event).unwrap_or_default(),
        headers: Arc::new(move |body| {
            let now = Utc::now().timestamp();
            let signature = crate::webhooks::upload_post::sign(&secret, now, body);
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
        return refused(StatusCode::UNAUTHORIZED, "Invalid or expired token");
    }
    let id = query.request_id.or(query.job_id).unwrap_or_default();
    let Some(job) = lock(&state.tables).jobs.get(&id).cloned() else {
        return refused(StatusCode::NOT_FOUND, "Request not found");
    };
    let done = Instant::now() >= job.ready_at;
    let results: serde_json::Map<String, Value> = if done {
        job.platforms
            .iter()
            .map(|p| {
                let mut result = job.result(p);
                result.post_url = result.url.take();
                (p.clone(), serde_json::to_value(result).unwrap_or_default())
            })
            .collect()
    } else {
        serde_json::Map::new()
    };
    reply(
        StatusCode::OK,
        json!({ "success": true, "status": if done { "completed" } else { "in_progress" },
                "request_id": job.request_id, "job_id": job.job_id, "results": results }),
    )
}

async fn notifications(
    State(state): State<Arc<UploadPost>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return refused(StatusCode::UNAUTHORIZED, "Invalid or expired token");
    }
    let webhook = body["channels"]["webhook"].as_bool().unwrap_or(false);
    let url = body["webhook_url"].as_str().filter(|u| !u.is_empty());
    lock(&state.tables).webhook_url = webhook.then_some(url).flatten().map(str::to_owned);
    reply(
        StatusCode::OK,
        json!({ "success": true, "notifications": body }),
    )
}
