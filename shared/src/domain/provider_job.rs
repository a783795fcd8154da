//! Work submitted to a provider, and the task that waits for it.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{named_enum, Persona, RunId};

named_enum! {
    /// The external services a run submits work to.
    pub enum Provider: "provider" {
        KieAi => "kieai",
        Shotstack => "shotstack",
        UploadPost => "upload-post",
    }
}

named_enum! {
    /// A provider job is pending until its result arrives, then settled once.
    pub enum JobStatus: "job status" {
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

named_enum! {
    /// How a provider job was settled: by the provider's callback, or by a
    /// reconciler that asked the provider after the callback was overdue.
    pub enum SettledBy: "settled by" {
        Callback => "callback",
        Poll => "poll",
    }
}

/// A `provider_jobs` row: provider job id → run, persona and waiting task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderJob {
    pub provider: Provider,
    pub job_id: String,
    pub run_id: RunId,
    pub persona: Persona,
    /// The engine task token to complete when the persona's last job
    /// settles. A credential: never serialized (API answers, evidence).
    #[serde(skip_serializing, default)]
    pub task_token: Option<String>,
    pub status: JobStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    /// While pending: when a reconciler should next ask the provider about
    /// the job (its callback is overdue then). `None` once settled.
    pub next_check_at: Option<DateTime<Utc>>,
    /// How many times a reconciler has claimed the job.
    pub checks: u32,
    /// How the job was settled; `None` while pending.
    pub settled_by: Option<SettledBy>,
}

/// How the provider-job id of a submission intent begins (`ProviderJob::is_intent`).
pub const INTENT_JOB_PREFIX: &str = "mw-intent-";

impl ProviderJob {
    /// Whether this row stands for a submission intent (work named before it
    /// was sent, `pipeline::intents`) rather than a job a provider accepted.
    /// No provider's ids take this form.
    pub fn is_intent(&self) -> bool {
        self.job_id.starts_with(INTENT_JOB_PREFIX)
    }

    /// Whether evidence shows this row: every job, and the intents still in
    /// doubt or failed (an intent whose work was all accepted is only
    /// bookkeeping).
    pub fn is_evidence(&self) -> bool {
        !self.is_intent() || self.status != JobStatus::Succeeded
    }
}

/// A job to register right after the provider accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProviderJob {
    pub provider: Provider,
    pub job_id: String,
    pub run_id: RunId,
    pub persona: Persona,
    pub task_token: Option<String>,
    /// When a reconciler first asks the provider about the job, should its
    /// callback not have come by then: the caller's now plus the delay after
    /// which a callback counts as overdue.
    pub check_at: DateTime<Utc>,
}

impl NewProviderJob {
    /// The job as registered: pending since `at`, first due at `check_at`.
    pub fn registered_at(self, at: DateTime<Utc>) -> ProviderJob {
        ProviderJob {
            provider: self.provider,
            job_id: self.job_id,
            run_id: self.run_id,
            persona: self.persona,
            task_token: self.task_token,
            status: JobStatus::Pending,
            result: None,
            error: None,
            created_at: at,
            settled_at: None,
            next_check_at: Some(self.check_at),
            checks: 0,
            settled_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API answers and evidence show how a job is being reconciled, never
    /// its task token.
    #[test]
    fn a_job_serializes_its_checks_but_not_its_token() {
        let at = DateTime::from_timestamp(1_764_336_000, 0).unwrap();
        let job = NewProviderJob {
            provider: Provider::Shotstack,
            job_id: "render-1".into(),
            run_id: RunId::new(),
            persona: Persona::Alex,
            task_token: Some("secret-token".into()),
            check_at: at + chrono::TimeDelta::minutes(2),
        }
        .registered_at(at);
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["next_check_at"], "2025-11-28T13:22:00Z");
        assert_eq!(json["checks"], 0);
        assert_eq!(json["settled_by"], Value::Null);
        assert!(json.get("task_token").is_none(), "{json}");
        let settled = ProviderJob {
            settled_by: Some(SettledBy::Poll),
            ..job
        };
        assert_eq!(
            serde_json::to_value(&settled).unwrap()["settled_by"],
            "poll"
        );
    }
}
