//! Following a run: what changed since the last look, as lines a person can
//! read — persona steps, provider jobs submitted and settled, gates — shared
//! by `mw live-run` and `mw runs watch`.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use myloware::domain::{HitlDecision, JobStatus, RunStatus};
use myloware::pipeline::Evidence;
use serde_json::Value;

#[derive(Debug)]
pub struct Follower {
    started: Instant,
    artifacts: HashSet<uuid::Uuid>,
    jobs: HashMap<(String, String), JobStatus>,
    gates: HashMap<String, Option<HitlDecision>>,
    status: Option<RunStatus>,
}

impl Follower {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            artifacts: HashSet::new(),
            jobs: HashMap::new(),
            gates: HashMap::new(),
            status: None,
        }
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The lines describing what is new in `evidence`, in the order it
    /// happened, each at its time since the run was created: following a run
    /// live and replaying a finished one read the same.
    pub fn changes(&mut self, evidence: &Evidence) -> Vec<String> {
        let run = &evidence.run;
        let mut events: Vec<(DateTime<Utc>, String, String)> = Vec::new();
        let mut event = |at: DateTime<Utc>, who: &str, what: String| {
            events.push((at, who.to_owned(), what));
        };
        if self.status != Some(run.status) {
            self.status = Some(run.status);
            event(run.updated_at, "run", format!("status {}", run.status));
        }
        for a in &evidence.artifacts {
            if !self.artifacts.insert(a.id) {
                continue;
            }
            let who = a
                .persona
                .map_or_else(|| "run".to_owned(), |p| p.to_string());
            let detail = a
                .url
                .clone()
                .or_else(|| a.metadata.get("error").map(|e| e.to_string()))
                .or_else(|| {
                    a.metadata
                        .get("gate")
                        .and_then(Value::as_str)
                        .map(|g| format!("gate {g}"))
                })
                .unwrap_or_default();
            event(
                a.created_at,
                &who,
                format!("{:<20} {detail}", a.artifact_type),
            );
        }
        for j in &evidence.provider_jobs {
            let key = (j.provider.to_string(), j.job_id.clone());
            let before = self.jobs.insert(key, j.status);
            if before == Some(j.status) {
                continue;
            }
            let who = j.persona.as_str();
            if before.is_none() {
                event(
                    j.created_at,
                    who,
                    format!("{} job {} submitted", j.provider, j.job_id),
                );
            }
            let settled = j.settled_at.unwrap_or(j.created_at);
            match j.status {
                JobStatus::Pending => {}
                JobStatus::Succeeded => event(
                    settled,
                    who,
                    format!("{} job {} succeeded", j.provider, j.job_id),
                ),
                JobStatus::Failed => event(
                    settled,
                    who,
                    format!(
                        "{} job {} FAILED: {}",
                        j.provider,
                        j.job_id,
                        j.error.as_deref().unwrap_or("-")
                    ),
                ),
            }
        }
        for g in &evidence.hitl_requests {
            let before = self.gates.insert(g.gate.to_string(), g.decision);
            if before == Some(g.decision) {
                continue;
            }
            match (g.decision, g.decided_at) {
                (Some(d), Some(at)) => {
                    if before.is_none() {
                        event(g.requested_at, "hitl", format!("gate {} waits", g.gate));
                    }
                    event(
                        at,
                        "hitl",
                        format!(
                            "gate {} {d} by {}",
                            g.gate,
                            g.decided_by.as_deref().unwrap_or("-")
                        ),
                    );
                }
                _ if run.status.is_terminal() => event(
                    g.requested_at,
                    "hitl",
                    format!("gate {} waited; never decided (the run ended)", g.gate),
                ),
                _ => event(
                    g.requested_at,
                    "hitl",
                    format!("gate {} waits for approval", g.gate),
                ),
            }
        }
        events.sort_by_key(|(at, _, _)| *at);
        events
            .into_iter()
            .map(|(at, who, what)| {
                let t = (at - run.created_at).num_milliseconds().max(0) as f64 / 1000.0;
                format!("{t:>6.1}s  {who:<8} {what}")
            })
            .collect()
    }
}

pub fn artifact_counts(evidence: &Evidence) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for a in &evidence.artifacts {
        *counts.entry(a.artifact_type.to_string()).or_insert(0) += 1;
    }
    counts
}

/// The gates that were approved.
pub fn approved_gates(evidence: &Evidence) -> Vec<String> {
    evidence
        .hitl_requests
        .iter()
        .filter(|g| g.decision == Some(HitlDecision::Approved))
        .map(|g| g.gate.to_string())
        .collect()
}

/// The publish URLs in the run's result.
pub fn publish_urls(evidence: &Evidence) -> Vec<String> {
    evidence
        .run
        .result
        .as_ref()
        .and_then(|r| r.get("publish_urls"))
        .and_then(Value::as_array)
        .map(|urls| {
            urls.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
