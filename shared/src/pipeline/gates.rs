//! Human-in-the-loop gates: a gate task records a `hitl.request` and the run
//! waits `awaiting_approval`; a human approves (the task succeeds and the run
//! goes on) or rejects (the task fails with `Hitl.Rejected` and the state
//! machine ends the run `rejected`). Approval links are signed; the engine's
//! task token never leaves the server.
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use super::{Pipeline, PipelineError};
use crate::domain::SpanEnd;
use crate::domain::{ArtifactType, Gate, HitlDecision, HitlRequest, NewArtifact, RunId, RunStatus};
use crate::engine::EngineError;
use crate::hitl::DEFAULT_LINK_TTL;
use crate::store::{Decided, Decision, StoreError, Transition};

/// The error name a rejected gate fails its task with (caught by the ASL).
pub const REJECTED_ERROR: &str = "Hitl.Rejected";

/// An approval link and until when it works.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApprovalLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub run_id: String,
    pub gate: Gate,
}

/// How a decision went.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GateDecision {
    pub request: HitlRequest,
    /// False when the gate had been decided before.
    pub decided_now: bool,
    /// True when an earlier decision, stored but never confirmed by the
    /// engine (the process stopped, or the engine call failed, in between),
    /// was sent to the engine again by this call.
    pub resent: bool,
}

/// How long the gate waited for its decision, in seconds.
fn waited_s(request: &HitlRequest) -> Option<f64> {
    request
        .decided_at
        .map(|d| (d - request.requested_at).num_milliseconds() as f64 / 1000.0)
}

impl Pipeline {
    /// The waiting request of `gate` on run `key`, or why there is none.
    pub(super) async fn waiting_gate(
        &self,
        key: &str,
        gate: &Gate,
    ) -> Result<(crate::domain::Run, HitlRequest), PipelineError> {
        let run = self.find_run(key).await?;
        let request = self
            .store
            .list_hitl_requests(run.run_id)
            .await?
            .into_iter()
            .find(|r| &r.gate == gate)
            .ok_or_else(|| {
                PipelineError::not_found(format!(
                    "gate {gate} on run {} (it has not been reached)",
                    run.job_code
                ))
            })?;
        Ok((run, request))
    }

    /// A signed approval link for a gate that waits.
    pub async fn approval_link(
        &self,
        key: &str,
        gate: &Gate,
    ) -> Result<ApprovalLink, PipelineError> {
        let (run, request) = self.waiting_gate(key, gate).await?;
        if let Some(decision) = request.decision {
            return Err(PipelineError::Conflict(format!(
                "gate {gate} of run {} is already {decision}",
                run.job_code
            )));
        }
        Ok(self.signed_link(run.run_id, gate))
    }

    /// A fresh signed approval link for `gate` of `run_id`.
    pub(crate) fn signed_link(&self, run_id: RunId, gate: &Gate) -> ApprovalLink {
        let expires_at = Utc::now() + DEFAULT_LINK_TTL;
        ApprovalLink {
            url: self
                .hitl
                .link(&self.settings.public_base_url, run_id, gate, expires_at),
            expires_at,
            run_id: run_id.to_string(),
            gate: gate.clone(),
        }
    }

    /// Checks a signed approval token for `gate` of run `key`.
    pub async fn check_link(
        &self,
        key: &str,
        gate: &Gate,
        token: &str,
    ) -> Result<(), PipelineError> {
        let run = self.find_run(key).await?;
        self.hitl
            .verify(token, run.run_id, gate, Utc::now())
            .map_err(|e| PipelineError::Forbidden(e.to_string()))
    }

    /// Approves or rejects `gate` of run `key` once; later calls report the
    /// first decision and change nothing. `by` is who the credential proves
    /// decided; `claimed_by` a name the decider gave that nothing proves,
    /// kept apart in the `hitl.approval` record.
    pub async fn decide_gate(
        &self,
        key: &str,
        gate: &Gate,
        decision: HitlDecision,
        by: &str,
        claimed_by: Option<&str>,
        comment: Option<String>,
    ) -> Result<GateDecision, PipelineError> {
        let (run, request) = self.waiting_gate(key, gate).await?;
        let span = crate::telemetry::run_span(&run.labels());
        span.record("gate", gate.as_str());
        self.decide_waiting_gate(run, request, gate, decision, (by, claimed_by), comment)
            .instrument(span)
            .await
    }

    async fn decide_waiting_gate(
        &self,
        run: crate::domain::Run,
        request: HitlRequest,
        gate: &Gate,
        decision: HitlDecision,
        (by, claimed_by): (&str, Option<&str>),
        comment: Option<String>,
    ) -> Result<GateDecision, PipelineError> {
        if run.status.is_terminal() && request.decision.is_none() {
            return Err(PipelineError::Conflict(format!(
                "run {} is {}; its gate {gate} can no longer be decided",
                run.job_code, run.status
            )));
        }
        let decided = self
            .store
            .decide_hitl(
                run.run_id,
                gate,
                Decision {
                    decision,
                    decided_by: by.to_owned(),
                    comment: comment.clone(),
                },
            )
            .await?;
        let request = match decided {
            Decided::Already(request) if request.delivered_at.is_some() => {
                return Ok(GateDecision {
                    request,
                    decided_now: false,
                    resent: false,
                })
            }
            // Decided, but the engine never confirmed it: the first decision
            // (not this one) is sent again.
            Decided::Already(request) => {
                tracing::warn!(gate = %gate, "a stored decision the engine never confirmed is sent again");
                let request = self.deliver_decision(&run, request, None).await?;
                return Ok(GateDecision {
                    request,
                    decided_now: false,
                    resent: true,
                });
            }
            Decided::Now(request) => request,
        };
        crate::telemetry::metrics::observe_seconds(
            "mw_gate_wait_seconds",
            "How long gates waited for a human.",
            &[("gate", gate.as_str())],
            waited_s(&request).unwrap_or_default(),
        );
        tracing::info!(decision = %decision, by, "gate decided");
        let request = self.deliver_decision(&run, request, claimed_by).await?;
        Ok(GateDecision {
            request,
            decided_now: true,
            resent: false,
        })
    }

    /// Hands a stored decision to the engine and notes that it took it:
    /// the `hitl.approval` record (once), the gate's span closed, the run
    /// back to `running` on approval, the task completed (or failed with
    /// `Hitl.Rejected`). Every step is idempotent, so a decision whose
    /// delivery was interrupted is delivered again the same way; a task the
    /// engine no longer knows (completed before, or timed out) counts as
    /// delivered. `claimed_by`, a name the decider gave that nothing proves,
    /// is known only to the call that decided.
    pub(crate) async fn deliver_decision(
        &self,
        run: &crate::domain::Run,
        request: HitlRequest,
        claimed_by: Option<&str>,
    ) -> Result<HitlRequest, PipelineError> {
        let gate = &request.gate;
        let (Some(decision), Some(by)) = (request.decision, request.decided_by.as_deref()) else {
            return Err(PipelineError::Conflict(format!(
                "gate {gate} of run {} is not decided",
                run.job_code
            )));
        };
        let waited_s = waited_s(&request);
        let comment = &request.comment;
        self.store
            .append_artifact_once(
                NewArtifact::new(
                    run.run_id,
                    ArtifactType::HITL_APPROVAL,
                    json!({ "gate": gate, "decision": decision, "by": by, "comment": comment, "waited_s": waited_s,
                            "claimed_by": claimed_by.map(|name| format!("{name} (self-declared, not verified)")) }),
                ),
                &format!("hitl.approval:{gate}"),
            )
            .await?;
        let token = request.task_token.clone().ok_or_else(|| {
            PipelineError::Conflict(format!(
                "gate {gate} of run {} has no waiting task",
                run.job_code
            ))
        })?;
        let end = match decision {
            HitlDecision::Approved => SpanEnd::ok(Some(
                json!({ "decision": decision, "by": by, "comment": comment }),
            )),
            HitlDecision::Rejected => SpanEnd::error(match comment {
                Some(comment) => format!("rejected by {by}: {comment}"),
                None => format!("rejected by {by}"),
            }),
        };
        self.close_gate_span(run.run_id, gate, end.attr("myloware.decided_by", by))
            .await;
        let sent = match decision {
            HitlDecision::Approved => {
                match self
                    .transition_run(Transition::new(
                        run.run_id,
                        RunStatus::AwaitingApproval,
                        RunStatus::Running,
                    ))
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                self.engine
                    .send_task_success(
                        &token,
                        &json!({ "gate": gate, "decision": "approved", "by": by, "comment": comment }),
                    )
                    .await
            }
            HitlDecision::Rejected => {
                let cause = json!({ "gate": gate, "by": by, "comment": comment }).to_string();
                self.engine
                    .send_task_failure(&token, Some(REJECTED_ERROR), Some(&cause))
                    .await
            }
        };
        match sent {
            Ok(()) => {}
            Err(
                EngineError::TaskDoesNotExist
                | EngineError::TaskTimedOut
                | EngineError::InvalidToken,
            ) => {
                tracing::info!(gate = %gate, "the gate's task had ended already; the decision counts as delivered");
            }
            Err(e) => return Err(e.into()),
        }
        self.store.mark_hitl_delivered(run.run_id, gate).await?;
        Ok(HitlRequest {
            delivered_at: Some(Utc::now()),
            ..request
        })
    }

    /// Sends again every decision stored at least `settle` ago that the
    /// engine never confirmed (at most `limit`): run at start-up and by the
    /// reconciler, so a decision interrupted by a crash or a failed engine
    /// call still moves its run. Answers how many were delivered.
    pub async fn redeliver_decisions(&self, settle: std::time::Duration, limit: usize) -> usize {
        let before = Utc::now() - chrono::Duration::from_std(settle).unwrap_or_default();
        let pending = match self.store.undelivered_hitl_decisions(before, limit).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for undelivered gate decisions");
                return 0;
            }
        };
        let mut delivered = 0;
        for request in pending {
            let run = match self.store.get_run(request.run_id).await {
                Ok(Some(run)) => run,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(run_id = %request.run_id, error = %e, "could not read a run with an undelivered decision");
                    continue;
                }
            };
            let span = crate::telemetry::run_span(&run.labels());
            span.record("gate", request.gate.as_str());
            let gate = request.gate.clone();
            match self
                .deliver_decision(&run, request, None)
                .instrument(span)
                .await
            {
                Ok(_) => {
                    tracing::info!(run_id = %run.run_id, gate = %gate, "an undelivered gate decision was delivered");
                    delivered += 1;
                }
                Err(e) => {
                    tracing::warn!(run_id = %run.run_id, gate = %gate, error = %e, "an undelivered gate decision could not be delivered yet");
                }
            }
        }
        delivered
    }
}
