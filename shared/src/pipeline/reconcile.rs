//! The reconciler: asks the providers about jobs whose callback is overdue.
//!
//! Callbacks get lost (a receiver that was down past the provider's retries,
//! a throttled webhook route, an upload-post account without webhooks), so a
//! job is never left to its callback alone. Each job is registered with a
//! first check due a while after submission (`RECONCILE_AFTER`, 2 minutes by
//! default); a sweep every `RECONCILE_INTERVAL` claims the jobs that are due
//! (a lease, so two reconcilers never ask about one job at once, and one that
//! dies mid-way leaves the job due again), asks the provider — kie.ai's
//! record-info, Shotstack's render and its hosted copy, upload-post's status
//! — and either settles the job exactly as its callback would have, marked
//! `settled_by = poll`, or sets its next check further out (doubling, up to
//! an hour). A callback that comes after all finds the job settled and
//! changes nothing; one that comes first leaves the poll nothing to do: the
//! store settles a job once.
//!
//! Each sweep also sends again the gate decisions that were stored but never
//! confirmed by the engine (a process stopped, or the engine call failed,
//! between the two), so a decided gate always moves its run; the first
//! sweep runs at start-up.
//!
//! Locally the stack runs the sweep on a timer; on AWS an EventBridge
//! schedule invokes the callbacks function with a scheduled event, and
//! `mw worker` runs it beside its queue polling.
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::callbacks::{result_artifact, Confirmed};
use super::{Pipeline, PipelineError};
use crate::domain::{JobStatus, Provider, ProviderJob, SettledBy};
use crate::providers::kieai::VeoState;
use crate::store::{JobOutcome, Settled};

/// When and how often the reconciler asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// From a job's submission to its first check (`RECONCILE_AFTER_SECS`).
    pub after: Duration,
    /// Between sweeps (`RECONCILE_INTERVAL_SECS`).
    pub interval: Duration,
    /// How long work whose submission was cut short waits for a callback
    /// naming it before it is submitted again (`RECONCILE_IN_DOUBT_SECS`):
    /// longer than a provider takes to finish and call back.
    pub in_doubt: Duration,
}

impl ReconcileSettings {
    pub const DEFAULT: Self = Self {
        after: Duration::from_secs(120),
        interval: Duration::from_secs(15),
        in_doubt: Duration::from_secs(600),
    };
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Jobs claimed per sweep, at most.
const BATCH: u32 = 50;
/// How old an unconfirmed gate decision must be before a sweep sends it
/// again: younger ones are most likely still being sent by the call that
/// made them (sending twice is harmless, only noisy).
const DECISION_SETTLE: Duration = Duration::from_secs(5);
/// How long a claimed job is left alone by other reconcilers.
const LEASE: chrono::Duration = chrono::Duration::minutes(2);
/// The longest wait between two checks of a job.
const MAX_BACKOFF: Duration = Duration::from_secs(3_600);
/// Checks after which a Shotstack render that is done but hosted nowhere
/// settles with its temporary URL (an account that hosts nothing).
const HOSTING_CHECKS: u32 = 3;
/// Checks after which an upload that upload-post has no record of fails.
const NOT_FOUND_CHECKS: u32 = 5;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Jobs claimed and asked about.
    pub checked: u32,
    /// Jobs settled by this sweep's answers.
    pub settled: u32,
    /// Jobs found settled meanwhile (their callback came first).
    pub already_settled: u32,
    /// Jobs still running at the provider, or whose provider could not be
    /// asked: checked again later.
    pub deferred: u32,
    /// Gate decisions stored but never confirmed by the engine, delivered
    /// now (`Pipeline::redeliver_decisions`).
    pub decisions_delivered: u32,
}

impl Pipeline {
    /// One sweep: every job due for a check at `now` is asked about, settled
    /// or deferred. Safe beside other reconcilers and beside callbacks.
    pub async fn reconcile_due_jobs(
        &self,
        now: DateTime<Utc>,
    ) -> Result<ReconcileReport, PipelineError> {
        let jobs = self
            .store
            .claim_due_provider_jobs(now, now + LEASE, BATCH)
            .await?;
        let mut report = ReconcileReport::default();
        for job in jobs {
            report.checked += 1;
            match self.check_job(&job, now).await {
                Ok(Checked::Settled) => report.settled += 1,
                Ok(Checked::AlreadySettled) => report.already_settled += 1,
                Ok(Checked::Deferred) => report.deferred += 1,
                Err(error) => {
                    report.deferred += 1;
                    tracing::warn!(provider = %job.provider, provider_job_id = %job.job_id,
                        run_id = %job.run_id, error = %error, "reconciler could not check the job");
                    self.defer_check(&job, now).await?;
                }
            }
        }
        report.decisions_delivered = self
            .redeliver_decisions(DECISION_SETTLE, BATCH as usize)
            .await as u32;
        if report.checked > 0 || report.decisions_delivered > 0 {
            tracing::info!(
                decisions_delivered = report.decisions_delivered,
                checked = report.checked,
                settled = report.settled,
                already_settled = report.already_settled,
                deferred = report.deferred,
                "reconciler swept overdue jobs"
            );
        }
        Ok(report)
    }

    /// Sweeps at start-up, then every `settings.reconcile.interval` until
    /// `stop` turns true (the overdue jobs, undelivered gate decisions, then
    /// the queued runs: `start_queued_runs`): what a local stack and
    /// `mw worker` run in the background.
    pub async fn run_reconciler(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval = self.settings.reconcile.interval;
        // The first sweep at start-up: what a stopped process left owed
        // (a decision the engine never took, jobs overdue meanwhile).
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            wait = interval;
            if let Err(error) = self.reconcile_due_jobs(Utc::now()).await {
                tracing::warn!(error = %error, "reconciler sweep failed; trying again at the next one");
            }
            if let Err(error) = self.start_queued_runs(Utc::now()).await {
                tracing::warn!(error = %error, "starting queued runs failed; trying again at the next sweep");
            }
        }
    }

    /// Asks the job's provider and acts on the answer.
    async fn check_job(
        &self,
        job: &ProviderJob,
        now: DateTime<Utc>,
    ) -> Result<Checked, PipelineError> {
        if job.is_intent() {
            return self.check_intent(job, now).await;
        }
        let asked = match job.provider {
            Provider::KieAi => self.kieai_outcome(&job.job_id).await,
            Provider::Shotstack => {
                self.shotstack_outcome(&job.job_id, job.checks >= HOSTING_CHECKS)
                    .await
            }
            Provider::UploadPost => self.upload_post_outcome(job).await,
        };
        let outcome = match asked? {
            Confirmed::Settle(outcome) => outcome,
            Confirmed::Progress(note)
                if job.provider == Provider::UploadPost
                    && note.contains("not_found")
                    && job.checks >= NOT_FOUND_CHECKS =>
            {
                JobOutcome::Failed(format!(
                    "upload-post has no record of the upload after {} checks",
                    job.checks
                ))
            }
            Confirmed::Progress(note) => {
                tracing::info!(provider = %job.provider, provider_job_id = %job.job_id,
                    run_id = %job.run_id, checks = job.checks, %note, "overdue job still running");
                self.defer_check(job, now).await?;
                return Ok(Checked::Deferred);
            }
        };
        let artifact = result_artifact(job, &outcome);
        let settled = self
            .store
            .settle_provider_job(
                job.provider,
                &job.job_id,
                outcome,
                artifact,
                SettledBy::Poll,
            )
            .await?;
        let (Settled::Now(job) | Settled::Already(job)) = &settled;
        if let Some(token) = &job.task_token {
            self.complete_persona_if_done(job.run_id, job.persona, token)
                .await?;
        }
        Ok(match settled {
            Settled::Now(job) => {
                tracing::info!(provider = %job.provider, provider_job_id = %job.job_id,
                    run_id = %job.run_id, status = %job.status, settled_by = "poll",
                    "overdue job settled from the provider's answer");
                self.count_job_spend(&job).await;
                crate::telemetry::metrics::count(
                    "mw_jobs_settled_by_poll_total",
                    "Provider jobs the reconciler settled because their callback was overdue.",
                    &[
                        ("provider", job.provider.as_str()),
                        ("status", job.status.as_str()),
                    ],
                );
                Checked::Settled
            }
            Settled::Already(_) => Checked::AlreadySettled,
        })
    }

    /// A due intent job: settled once nothing of it is in doubt, deferred
    /// while a callback may still name its work (`Pipeline::resolve_intent`).
    async fn check_intent(
        &self,
        job: &ProviderJob,
        now: DateTime<Utc>,
    ) -> Result<Checked, PipelineError> {
        if let Some(at) = self.resolve_intent(job, now).await? {
            self.store
                .schedule_provider_job_check(job.provider, &job.job_id, at)
                .await?;
            return Ok(Checked::Deferred);
        }
        let Some(job) = self
            .store
            .find_provider_job(job.provider, &job.job_id)
            .await?
        else {
            return Ok(Checked::Settled);
        };
        if let Some(token) = &job.task_token {
            self.complete_persona_if_done(job.run_id, job.persona, token)
                .await?;
        }
        Ok(Checked::Settled)
    }

    async fn kieai_outcome(&self, task_id: &str) -> Result<Confirmed, PipelineError> {
        let task = self
            .providers
            .kieai
            .record_info(task_id)
            .await
            .map_err(|e| PipelineError::Provider(e.to_string()))?;
        Ok(match task.state {
            VeoState::Pending => Confirmed::Progress("kie.ai is still generating".into()),
            state => super::callbacks::kieai_settlement(state),
        })
    }

    /// The job's next check, further out after each one.
    async fn defer_check(
        &self,
        job: &ProviderJob,
        now: DateTime<Utc>,
    ) -> Result<(), PipelineError> {
        if job.status != JobStatus::Pending {
            return Ok(());
        }
        let wait = backoff(self.settings.reconcile.after, job.checks);
        let at = now + chrono::Duration::from_std(wait).unwrap_or(LEASE);
        self.store
            .schedule_provider_job_check(job.provider, &job.job_id, at)
            .await?;
        Ok(())
    }
}

/// What checking one job did.
enum Checked {
    Settled,
    AlreadySettled,
    Deferred,
}

/// The wait before a job's next check after `checks` checks: the first
/// delay, doubled per check, at most an hour.
fn backoff(after: Duration, checks: u32) -> Duration {
    after
        .saturating_mul(2u32.saturating_pow(checks.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_back_off_to_an_hour() {
        let after = Duration::from_secs(120);
        assert_eq!(backoff(after, 1), Duration::from_secs(120));
        assert_eq!(backoff(after, 2), Duration::from_secs(240));
        assert_eq!(backoff(after, 3), Duration::from_secs(480));
        assert_eq!(backoff(after, 30), MAX_BACKOFF);
    }
}
