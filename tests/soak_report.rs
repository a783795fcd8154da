//! What came of a soak's runs, read from the store and the mock providers,
//! counted and printed as `bin/soak.rs` does (the embedded soak), for the
//! soaks that share it (`bin/soak_aws.rs`):
//! - published;
//! - failed, each with its cause (a run that failed without naming one is
//!   counted apart, as a defect);
//! - stuck: not ended by the deadline;
//! - duplicated effects: work the providers accepted more often than the
//!   store registered it (a clip, render or upload paid for twice, counted
//!   by the mocks), and results recorded twice (a clip, a render or a
//!   platform's post settled twice, counted in the store).
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use myloware::domain::{ArtifactType, Provider, RunId, RunStatus};
use myloware::providers::mock::MockProviders;
use myloware::store::Store;
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Report {
    pub runs: usize,
    pub published: usize,
    pub failed: usize,
    pub failed_without_cause: usize,
    pub causes: BTreeMap<String, usize>,
    pub stuck: usize,
    pub stuck_where: Vec<String>,
    /// Provider-side: work accepted by a mock beyond what the store holds.
    pub extra_accepted: BTreeMap<&'static str, i64>,
    /// Store-side: results recorded twice.
    pub settled_twice: usize,
    pub settled_by_poll: usize,
    pub settled_by_callback: usize,
}

impl Report {
    pub fn duplicated(&self) -> usize {
        self.settled_twice
            + self
                .extra_accepted
                .values()
                .map(|n| (*n).max(0) as usize)
                .sum::<usize>()
    }

    /// Whether the soak met its bar: nothing stuck, every failure with a
    /// cause, nothing done twice.
    pub fn ok(&self) -> bool {
        self.stuck == 0 && self.failed_without_cause == 0 && self.duplicated() == 0
    }

    pub fn print(&self) {
        println!("runs                 {}", self.runs);
        println!("published            {}", self.published);
        println!(
            "failed with a cause  {}",
            self.failed - self.failed_without_cause
        );
        for (cause, n) in &self.causes {
            println!("    {n:>4} × {cause}");
        }
        println!("failed, no cause     {}", self.failed_without_cause);
        println!("stuck                {}", self.stuck);
        for stuck in &self.stuck_where {
            println!("    {stuck}");
        }
        println!("duplicated effects   {}", self.duplicated());
        for (provider, extra) in &self.extra_accepted {
            println!("    {provider}: accepted {extra:+} beyond the jobs registered");
        }
        println!("    results settled twice: {}", self.settled_twice);
        println!(
            "jobs settled by callback {}, by the reconciler's poll {}",
            self.settled_by_callback, self.settled_by_poll
        );
    }
}

/// What came of the runs `ids`, read from `store` and `mocks` (whose
/// accepted work is compared with the jobs these runs registered).
pub async fn count(store: &dyn Store, mocks: &MockProviders, ids: &[RunId]) -> Result<Report> {
    let mut report = Report {
        runs: ids.len(),
        ..Report::default()
    };
    let mut registered: BTreeMap<Provider, i64> = BTreeMap::new();
    for run_id in ids {
        let run = store.get_run(*run_id).await?.context("run")?;
        match run.status {
            RunStatus::Published => report.published += 1,
            RunStatus::Failed => {
                report.failed += 1;
                match run.error.as_deref().filter(|e| !e.trim().is_empty()) {
                    Some(error) => *report.causes.entry(cause(error)).or_default() += 1,
                    None => report.failed_without_cause += 1,
                }
            }
            other => {
                report.stuck += 1;
                report.stuck_where.push(format!(
                    "{} {} is {other} (execution {})",
                    run.job_code,
                    run.run_id,
                    run.execution_id.as_deref().unwrap_or("not started")
                ));
            }
        }
        let jobs = store.list_provider_jobs(*run_id).await?;
        // Intents are our bookkeeping, not work a provider accepted.
        for job in jobs.iter().filter(|j| !j.is_intent()) {
            *registered.entry(job.provider).or_default() += 1;
            match job.settled_by.map(|b| b.as_str()) {
                Some("poll") => report.settled_by_poll += 1,
                Some(_) => report.settled_by_callback += 1,
                None => {}
            }
        }
        let artifacts = store.list_artifacts(*run_id).await?;
        let mut results: BTreeMap<String, usize> = BTreeMap::new();
        for a in &artifacts {
            let key = |field: &str| a.metadata.get(field).and_then(Value::as_str).unwrap_or("");
            let result_of = match a.artifact_type.clone() {
                t if t == ArtifactType::KIEAI_CLIP || t == ArtifactType::KIEAI_ERROR => {
                    format!("clip {}", key("task_id"))
                }
                t if t == ArtifactType::RENDER_URL || t == ArtifactType::RENDER_ERROR => {
                    format!("render {}", key("render_id"))
                }
                t if t == ArtifactType::PUBLISH_URL || t == ArtifactType::PUBLISH_ERROR => {
                    format!("post {} {}", key("job_id"), key("platform"))
                }
                _ => continue,
            };
            *results.entry(result_of).or_default() += 1;
        }
        report.settled_twice += results.values().filter(|n| **n > 1).count();
    }
    for (name, provider, counters) in [
        ("kieai", Provider::KieAi, &mocks.kieai),
        ("shotstack", Provider::Shotstack, &mocks.shotstack),
        ("upload-post", Provider::UploadPost, &mocks.upload_post),
    ] {
        let accepted = counters.snapshot().accepted as i64;
        let extra = accepted - registered.get(&provider).copied().unwrap_or_default();
        report.extra_accepted.insert(name, extra);
    }
    Ok(report)
}

/// One line per mock: what it was asked, refused on purpose, accepted, and
/// the callbacks it sent, lost and repeated.
pub fn print_mocks(mocks: &MockProviders) {
    for (name, counters) in [
        ("kieai", &mocks.kieai),
        ("shotstack", &mocks.shotstack),
        ("upload-post", &mocks.upload_post),
    ] {
        let s = counters.snapshot();
        println!(
            "  mock {name:<11} requests {:>5}  refused on purpose {:>4}  accepted {:>4} \
             (answer lost {:>3})  callbacks sent {:>4}  lost {:>3}  repeated {:>3}",
            s.requests,
            s.refused_on_purpose,
            s.accepted,
            s.unanswered,
            s.callbacks_sent,
            s.callbacks_lost,
            s.callbacks_repeated
        );
    }
}

/// A failure's cause without its ids, so that alike causes count together.
pub fn cause(error: &str) -> String {
    let words: Vec<String> = error
        .split_whitespace()
        .map(|w| {
            if w.len() >= 16 && w.chars().filter(|c| c.is_ascii_hexdigit()).count() >= 12 {
                "<id>".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let text = words.join(" ");
    match text.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The gates of a run's evidence (as the API answers it) that wait for a
/// decision.
pub fn waiting_gates(evidence: &Value) -> Vec<String> {
    evidence["hitl_requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["decision"].is_null())
        .filter_map(|g| g["gate"].as_str().map(str::to_owned))
        .collect()
}
