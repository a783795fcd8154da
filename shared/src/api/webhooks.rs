//! `POST /v1/webhooks/{provider}`: verify with the provider's scheme, store
//! the event once (a repeat answers 200 `duplicate`), refuse forged ones with
//! 401 (stored as `rejected`, never acted on), hand the verified callback to
//! the callback queue, and answer fast. The work happens in the callbacks
//! consumer (`pipeline::callbacks`).
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::{ApiError, AppState};
use crate::domain::{NewWebhookEvent, Provider, SignatureStatus, WebhookEventStatus};
use crate::pipeline::callbacks::CallbackMessage;
use crate::store::Recorded;
use crate::webhooks;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{provider}", post(receive))
}

/// Headers worth keeping as evidence; credentials are never stored.
fn kept_headers(headers: &HeaderMap) -> Value {
    let mut kept = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if matches!(
            name,
            "authorization" | "x-api-key" | "cookie" | "proxy-authorization"
        ) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            kept.insert(name.to_owned(), Value::from(value));
        }
    }
    Value::Object(kept)
}

async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let job = match &received.provider_job_id {
        Some(job_id) => pipeline.store.find_provider_job(provider, job_id).await?,
        None => None,
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
    store_and_enqueue(pipeline, provider, &headers, received, job)
        .instrument(span)
        .await
}

/// Stores the event (once) and queues a verified callback.
async fn store_and_enqueue(
    pipeline: &crate::pipeline::Pipeline,
    provider: Provider,
    headers: &HeaderMap,
    received: webhooks::Received,
    job: Option<crate::domain::ProviderJob>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let acted_on = received.callback.is_some();
    let event = NewWebhookEvent {
        run_id: job.as_ref().map(|j| j.run_id),
        provider,
        idempotency_key: received.idempotency_key.clone(),
        provider_job_id: received.provider_job_id.clone(),
        signature_status: received.signature_status,
        headers: kept_headers(headers),
        payload: received.payload.clone(),
        status: if acted_on {
            WebhookEventStatus::Received
        } else {
            WebhookEventStatus::Ignored
        },
    };
    let event = match pipeline.store.record_webhook_event(event).await? {
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
                Json(json!({ "status": "duplicate", "event_id": existing.id })),
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
    if matches!(
        received.signature_status,
        SignatureStatus::Rejected | SignatureStatus::Missing
    ) {
        let why = received
            .error
            .unwrap_or_else(|| "the signature does not verify".into());
        return Err(ApiError::unauthorized(format!(
            "{provider} callback refused: {why}"
        )));
    }
    let Some(callback) = received.callback else {
        return Ok((
            StatusCode::OK,
            Json(json!({ "status": "ignored", "event_id": event.id, "reason": received.error })),
        ));
    };
    enqueue(pipeline, event.id, callback.into_inner()).await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "status": "accepted", "event_id": event.id })),
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
