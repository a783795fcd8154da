//! `POST /v1/webhooks/{provider}`: verify with the provider's scheme, store
//! the event once (a repeat answers 200 `duplicate`), refuse forged ones with
//! 401, hand the verified callback to the callback queue, and answer fast.
//! The work happens in the callbacks consumer (`pipeline::callbacks`).
//!
//! Signature first, storage second: a refused callback (signature wrong or
//! missing) is kept as evidence in a bounded form only — its headers, the
//! SHA-256 and size of its body and a short preview — and at most
//! `REFUSED_PER_MINUTE` of them per provider a minute, so nobody without a
//! key can fill the store; sent again it is refused again. Shotstack signs
//! nothing: the callback URL a run gives it carries a token
//! (`?run=…&token=…`) that authenticates its callbacks instead.
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::json::{PathParams, QueryParams, WebhookBody};
use super::{ApiError, AppState};
use crate::domain::{NewWebhookEvent, Provider, RunId, SignatureStatus, WebhookEventStatus};
use crate::pipeline::callbacks::CallbackMessage;
use crate::store::Recorded;
use crate::webhooks;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{provider}", post(receive))
}

/// Refused callbacks recorded per provider a minute, at most; the rest are
/// refused and counted, not stored.
pub const REFUSED_PER_MINUTE: u32 = 120;

/// Whether one more refused callback of `provider` may be recorded this
/// minute (this process's count).
fn refused_budget(provider: Provider) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static WINDOWS: OnceLock<Mutex<HashMap<Provider, (i64, u32)>>> = OnceLock::new();
    let minute = Utc::now().timestamp() / 60;
    let mut windows = WINDOWS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let window = windows.entry(provider).or_insert((minute, 0));
    if window.0 != minute {
        *window = (minute, 0);
    }
    window.1 += 1;
    window.1 <= REFUSED_PER_MINUTE
}

/// A refused body as evidence: its SHA-256, its size and the start of it,
/// never the whole of it.
fn bounded_evidence(body: &[u8]) -> Value {
    let preview: String = String::from_utf8_lossy(&body[..body.len().min(512)])
        .chars()
        .take(200)
        .collect();
    json!({ "refused_body": {
        "sha256": hex::encode(Sha256::digest(body)),
        "bytes": body.len(),
        "preview": preview,
    }})
}

/// Headers worth keeping as evidence, bounded; credentials are never stored.
fn kept_headers(headers: &HeaderMap) -> Value {
    let mut kept = Map::new();
    for (name, value) in headers.iter().take(32) {
        let name = name.as_str();
        if matches!(
            name,
            "authorization" | "x-api-key" | "cookie" | "proxy-authorization"
        ) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            let value: String = value.chars().take(256).collect();
            kept.insert(name.to_owned(), Value::from(value));
        }
    }
    Value::Object(kept)
}

/// Shotstack's callback URL query: the run it was given for, and its token.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(super) struct CallbackQuery {
    /// The run whose callback URL this is (Shotstack).
    run: Option<String>,
    /// The run's callback token (Shotstack).
    token: Option<String>,
}

/// What became of a callback that was not refused.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct WebhookAnswer {
    /// `accepted` (queued), `duplicate` (seen before) or `ignored` (verified,
    /// but about no job: an account event).
    status: &'static str,
    event_id: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// What the token of a Shotstack callback URL proves: the run it names.
fn callback_run(
    pipeline: &crate::pipeline::Pipeline,
    query: &CallbackQuery,
) -> Result<RunId, (SignatureStatus, String)> {
    let (Some(run), Some(token)) = (&query.run, &query.token) else {
        return Err((
            SignatureStatus::Missing,
            "the callback URL carries no run token".into(),
        ));
    };
    let run_id: RunId = run.parse().map_err(|_| {
        (
            SignatureStatus::Rejected,
            "the run in the URL is not a run id".to_owned(),
        )
    })?;
    if pipeline
        .hitl
        .verify_callback_token(Provider::Shotstack.as_str(), run_id, token)
    {
        Ok(run_id)
    } else {
        Err((
            SignatureStatus::Rejected,
            "the callback URL's token does not match".into(),
        ))
    }
}

async fn receive(
    State(state): State<AppState>,
    PathParams(provider): PathParams<String>,
    QueryParams(query): QueryParams<CallbackQuery>,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let provider: Provider = provider.parse().map_err(|_| {
        ApiError::not_found(format!(
            "no webhook for provider {provider:?} (kieai, shotstack, upload-post)"
        ))
    })?;
    let pipeline = &state.pipeline;
    let received = webhooks::receive(
        provider,
        &headers,
        &body,
        &pipeline.webhook_secrets,
        Utc::now(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token_run = (provider == Provider::Shotstack).then(|| callback_run(pipeline, &query));
    // The job the callback names (its id checked as the provider's): a
    // refused callback is kept with the run's evidence too.
    let job = match &received.provider_job_id {
        Some(job_id) => pipeline.store.find_provider_job(provider, job_id).await?,
        None => None,
    };
    let received = match token_run {
        None => received,
        Some(checked) => {
            // The token must be the job's run's.
            let checked = checked.and_then(|run| match &job {
                Some(job) if job.run_id != run => Err((
                    SignatureStatus::Rejected,
                    "the callback URL's token is another run's".to_owned(),
                )),
                _ => Ok(()),
            });
            webhooks::shotstack::authenticate(received, checked, &body)
        }
    };
    let run = match &job {
        Some(job) => pipeline.store.get_run_labels(job.run_id).await?,
        None => None,
    };
    let span = match &run {
        Some(run) => crate::telemetry::run_span(run),
        None => tracing::error_span!(
            "webhook",
            provider = tracing::field::Empty,
            provider_job_id = tracing::field::Empty
        ),
    };
    span.record("provider", provider.as_str());
    if let Some(job_id) = &received.provider_job_id {
        span.record("provider_job_id", job_id.as_str());
    }
    if let Some(job) = &job {
        span.record("persona", job.persona.as_str());
    }
    store_and_enqueue(pipeline, provider, &headers, &body, received, job)
        .instrument(span)
        .await
}

/// Stores the event (once) and queues a verified callback.
async fn store_and_enqueue(
    pipeline: &crate::pipeline::Pipeline,
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    received: webhooks::Received,
    job: Option<crate::domain::ProviderJob>,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let acted_on = received.callback.is_some();
    let refused = matches!(
        received.signature_status,
        SignatureStatus::Rejected | SignatureStatus::Missing
    );
    let refusal = || {
        let why = received
            .error
            .clone()
            .unwrap_or_else(|| "the signature does not verify".into());
        ApiError::unauthorized(format!("{provider} callback refused: {why}"))
    };
    if refused && !refused_budget(provider) {
        crate::telemetry::metrics::count(
            "mw_webhooks_refused_unrecorded_total",
            "Refused callbacks not recorded: over the per-provider budget.",
            &[("provider", provider.as_str())],
        );
        return Err(refusal());
    }
    let event = NewWebhookEvent {
        run_id: job.as_ref().map(|j| j.run_id),
        provider,
        idempotency_key: received.idempotency_key.clone(),
        provider_job_id: received.provider_job_id.clone(),
        signature_status: received.signature_status,
        headers: kept_headers(headers),
        payload: if refused {
            bounded_evidence(body)
        } else {
            received.payload.clone()
        },
        status: if acted_on {
            WebhookEventStatus::Received
        } else {
            WebhookEventStatus::Ignored
        },
    };
    let event = match pipeline.store.record_webhook_event(event).await? {
        // A refused callback sent again is refused again.
        Recorded::Duplicate(_) if refused => return Err(refusal()),
        Recorded::Duplicate(existing) => {
            crate::telemetry::metrics::count(
                "mw_webhook_duplicates_total",
                "Callbacks received again under a known idempotency key.",
                &[("provider", provider.as_str())],
            );
            tracing::info!(idempotency_key = %existing.idempotency_key, "duplicate webhook");
            // Stored but never processed: the first delivery may have died
            // between storing the event and queueing it (the provider saw no
            // answer and retried). Queue it again; processing is idempotent.
            if existing.status == WebhookEventStatus::Received {
                if let Some(callback) = received.callback {
                    enqueue(pipeline, existing.id, callback.into_inner()).await?;
                }
            }
            return Ok((
                StatusCode::OK,
                Json(WebhookAnswer {
                    status: "duplicate",
                    event_id: existing.id,
                    reason: None,
                }),
            ));
        }
        Recorded::Inserted(event) => event,
    };
    crate::telemetry::metrics::count(
        "mw_webhooks_received_total",
        "Callbacks received, by provider and signature status.",
        &[
            ("provider", provider.as_str()),
            ("signature_status", event.signature_status.as_str()),
        ],
    );
    tracing::info!(signature_status = %event.signature_status, "webhook received");
    if refused {
        return Err(refusal());
    }
    let Some(callback) = received.callback else {
        return Ok((
            StatusCode::OK,
            Json(WebhookAnswer {
                status: "ignored",
                event_id: event.id,
                reason: received.error,
            }),
        ));
    };
    enqueue(pipeline, event.id, callback.into_inner()).await?;
    Ok((
        StatusCode::OK,
        Json(WebhookAnswer {
            status: "accepted",
            event_id: event.id,
            reason: None,
        }),
    ))
}

/// Hands a verified callback to the callbacks consumer.
async fn enqueue(
    pipeline: &crate::pipeline::Pipeline,
    event_id: uuid::Uuid,
    callback: crate::webhooks::ProviderCallback,
) -> Result<(), ApiError> {
    pipeline
        .hand_over_callback(&CallbackMessage::new(event_id, callback))
        .await?;
    Ok(())
}
