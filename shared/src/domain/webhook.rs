//! Provider callbacks as received: the `webhook_events` rows.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{named_enum, Provider, RunId};

named_enum! {
    /// What the provider's signature scheme said about a callback.
    pub enum SignatureStatus: "signature status" {
        Verified => "verified",
        Rejected => "rejected",
        Missing => "missing",
        Unsigned => "unsigned",
    }
}

named_enum! {
    /// Where a received callback is in its processing.
    pub enum WebhookEventStatus: "webhook event status" {
        Received => "received",
        Processed => "processed",
        Failed => "failed",
        Orphaned => "orphaned",
        Ignored => "ignored",
    }
}

/// A callback as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookEvent {
    pub id: Uuid,
    pub run_id: Option<RunId>,
    pub provider: Provider,
    pub idempotency_key: String,
    pub provider_job_id: Option<String>,
    pub signature_status: SignatureStatus,
    pub headers: Value,
    pub payload: Value,
    pub status: WebhookEventStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

// `NewWebhookEvent` repeats most of `WebhookEvent`'s fields on purpose: the
// stored event is the flat API shape and row every store reads and writes.
/// A callback to record. Unique on `(provider, idempotency_key)`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhookEvent {
    pub run_id: Option<RunId>,
    pub provider: Provider,
    pub idempotency_key: String,
    pub provider_job_id: Option<String>,
    pub signature_status: SignatureStatus,
    pub headers: Value,
    pub payload: Value,
    /// `Received` for events to process; `Ignored` for rejected ones.
    pub status: WebhookEventStatus,
}

impl NewWebhookEvent {
    /// The event as first stored: a fresh id, received `at`, not processed.
    pub fn stored_at(self, at: DateTime<Utc>) -> WebhookEvent {
        WebhookEvent {
            id: Uuid::now_v7(),
            run_id: self.run_id,
            provider: self.provider,
            idempotency_key: self.idempotency_key,
            provider_job_id: self.provider_job_id,
            signature_status: self.signature_status,
            headers: self.headers,
            payload: self.payload,
            status: self.status,
            error: None,
            created_at: at,
            processed_at: None,
        }
    }
}
