//! `mw doctor`: the runbook's debug table, automated. For each symptom — a
//! persona that never gets to its provider, a webhook that never came, a
//! provider error, a gate nobody decided — it reads the run's evidence, says
//! what it found, and names the next command to run.
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{
    ArtifactType, HitlDecision, JobStatus, Persona, ProvidersMode, RunStatus, SignatureStatus,
};
use crate::personas::spec::contract;
use crate::personas::ProjectSpec;
use crate::pipeline::Evidence;
use crate::providers::check::unreachable_from_outside;

/// Which row of the runbook's debug table a finding answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Symptom {
    PersonaStuck,
    WaitingOnWebhook,
    ProviderError,
    GateStuck,
    RunFailed,
    Healthy,
}

/// What the doctor found about one symptom.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub symptom: Symptom,
    /// True when this is something to fix or act on.
    pub problem: bool,
    pub summary: String,
    pub details: Vec<String>,
    /// Commands to run next.
    pub next: Vec<String>,
}

/// What the doctor knows besides the evidence. The run's providers mode and
/// callback address come from the run itself (its row and its `run.start`
/// record), not from the shell the doctor runs in.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: DateTime<Utc>,
    /// A fresh approval link for each waiting gate.
    pub links: Vec<(String, String)>,
}

/// A persona is stuck when its task has run this long without its agent
/// finishing; a job waits too long for its callback after this.
const STUCK_AFTER_S: i64 = 120;

pub fn diagnose(e: &Evidence, ctx: &Context) -> Vec<Finding> {
    let mut findings = Vec::new();
    persona(e, ctx, &mut findings);
    webhooks(e, ctx, &mut findings);
    provider_errors(e, &mut findings);
    gates(e, ctx, &mut findings);
    let provider_error = findings.iter().any(|f| f.symptom == Symptom::ProviderError);
    if !provider_error {
        failed(e, &mut findings);
    }
    if !findings.iter().any(|f| f.problem) {
        let (summary, details) = match ended_by_a_human(e) {
            Some(said) => said,
            None => (
                format!(
                    "no problem found: run {} is {}",
                    e.run.job_code, e.run.status
                ),
                Vec::new(),
            ),
        };
        findings.push(Finding {
            symptom: Symptom::Healthy,
            problem: false,
            summary,
            details,
            next: vec![format!("mw runs watch {}", e.run.job_code)],
        });
    }
    findings
}

/// A rejected or cancelled run ended as somebody chose: who, when, and why
/// when they said.
fn ended_by_a_human(e: &Evidence) -> Option<(String, Vec<String>)> {
    match e.run.status {
        RunStatus::Rejected => {
            let gate = e
                .hitl_requests
                .iter()
                .find(|g| g.decision == Some(HitlDecision::Rejected))?;
            let mut details = vec![format!(
                "decided by {}{}",
                gate.decided_by.as_deref().unwrap_or("-"),
                gate.decided_at
                    .map_or(String::new(), |at| format!(" at {}", at.to_rfc3339()))
            )];
            details.extend(gate.comment.as_ref().map(|c| format!("comment: {c}")));
            Some((
                format!(
                    "run {} was rejected at gate {}: nothing to fix",
                    e.run.job_code, gate.gate
                ),
                details,
            ))
        }
        RunStatus::Cancelled => {
            let record = e
                .artifacts
                .iter()
                .find(|a| a.artifact_type == ArtifactType::RUN_CANCELLED);
            let by = record
                .and_then(|a| a.metadata.get("by").and_then(Value::as_str))
                .unwrap_or("-");
            let mut details = vec![format!(
                "cancelled by {by}{}",
                record.map_or(String::new(), |a| format!(
                    " at {}",
                    a.created_at.to_rfc3339()
                ))
            )];
            details.extend(
                record
                    .and_then(|a| a.metadata.get("was").and_then(Value::as_str))
                    .map(|was| format!("it was {was}")),
            );
            Some((
                format!("run {} was cancelled: nothing to fix", e.run.job_code),
                details,
            ))
        }
        _ => None,
    }
}

fn age_s(from: DateTime<Utc>, ctx: &Context) -> i64 {
    (ctx.now - from).num_seconds().max(0)
}

/// The state the execution is in: the last task entered and not exited.
fn current_task(e: &Evidence) -> Option<(String, DateTime<Utc>)> {
    let mut open: Option<(String, DateTime<Utc>)> = None;
    for h in &e.history {
        let name = h.details.get("name").and_then(Value::as_str);
        match (h.event_type.as_str(), name) {
            ("TaskStateEntered", Some(name)) => open = Some((name.to_owned(), h.timestamp)),
            ("TaskStateExited", Some(name)) if open.as_ref().is_some_and(|(n, _)| n == name) => {
                open = None
            }
            _ => {}
        }
    }
    open
}

fn persona(e: &Evidence, ctx: &Context, out: &mut Vec<Finding>) {
    if e.run.status.is_terminal() {
        return;
    }
    let Some((state, since)) = current_task(e) else {
        return;
    };
    let Ok(persona) = state.to_lowercase().parse::<Persona>() else {
        return;
    };
    let finished = e.artifacts.iter().any(|a| a.is_persona_completed(persona));
    if finished {
        return; // its jobs are what it waits for: see the webhook findings
    }
    let mut details = vec![format!(
        "state {state} entered {}s ago; its agent has not finished",
        age_s(since, ctx)
    )];
    let calls = e
        .artifacts
        .iter()
        .filter(|a| a.persona == Some(persona))
        .count();
    details.push(format!("{calls} artifact(s) written by {persona} so far"));
    let mut problem = age_s(since, ctx) > STUCK_AFTER_S;
    if let (Ok(spec), Some(required)) =
        (ProjectSpec::load(e.run.project.as_str()), contract(persona))
    {
        match spec.persona(persona) {
            Some(p) if p.allows(required) => details.push(format!(
                "its allowlist has {required}, the tool it must call"
            )),
            Some(_) => {
                problem = true;
                details.push(format!(
                    "its allowlist LACKS {required}, the tool it must call"
                ));
            }
            None => {
                problem = true;
                details.push(format!(
                    "project {} has no spec for {persona}",
                    e.run.project
                ));
            }
        }
    }
    out.push(Finding {
        symptom: Symptom::PersonaStuck,
        problem,
        summary: format!("persona {persona} is working and has not called its provider yet"),
        details,
        next: vec![
            format!("mw evidence {}", e.run.job_code),
            format!("mw runs watch {}", e.run.job_code),
        ],
    });
}

/// Where the run's providers were told to call back: the base its
/// `run.start` records, else one its submissions name.
fn callback_base(e: &Evidence) -> Option<String> {
    let recorded = |a: &crate::domain::Artifact, key: &str| {
        a.metadata
            .get(key)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
    };
    e.artifacts
        .iter()
        .find_map(|a| recorded(a, "webhook_base_url"))
        .or_else(|| {
            e.artifacts.iter().find_map(|a| {
                recorded(a, "callback_url").map(|u| match u.find("/v1/webhooks/") {
                    Some(at) => u[..at].to_owned(),
                    None => u,
                })
            })
        })
}

fn webhooks(e: &Evidence, ctx: &Context, out: &mut Vec<Finding>) {
    let pending: Vec<_> = e
        .provider_jobs
        .iter()
        .filter(|j| j.status == JobStatus::Pending)
        .collect();
    if pending.is_empty() {
        return;
    }
    let mut details = Vec::new();
    let mut problem = false;
    for job in &pending {
        let waited = age_s(job.created_at, ctx);
        if job.is_intent() {
            // Work sent with no answer recorded: its callback adopts it, or
            // the reconciler sends it again once the window has passed.
            details.push(format!(
                "{} submission {} ({}): sent {waited}s ago, the provider's answer not recorded; \
                 in doubt until a callback names it{}",
                job.provider,
                job.job_id,
                job.persona,
                job.next_check_at.map_or(String::new(), |next| format!(
                    " or the reconciler sends it again {}",
                    if next <= ctx.now {
                        "now".to_owned()
                    } else {
                        format!("in {}s", (next - ctx.now).num_seconds())
                    }
                )),
            ));
            continue;
        }
        let submitted = e.artifacts.iter().find(|a| {
            a.provider == Some(job.provider)
                && ["task_id", "render_id", "job_id"]
                    .iter()
                    .any(|k| a.metadata.get(*k).and_then(Value::as_str) == Some(&job.job_id))
        });
        let callbacks: Vec<_> = e
            .webhook_events
            .iter()
            .filter(|w| w.provider_job_id.as_deref() == Some(&job.job_id))
            .collect();
        let refused = callbacks
            .iter()
            .filter(|w| {
                matches!(
                    w.signature_status,
                    SignatureStatus::Rejected | SignatureStatus::Missing
                )
            })
            .count();
        problem |= waited > STUCK_AFTER_S || refused > 0;
        let reconciler = match job.next_check_at {
            Some(next) => format!(
                "; the reconciler has asked {} {} time(s), next {}",
                job.provider,
                job.checks,
                if next <= ctx.now {
                    "due now".to_owned()
                } else {
                    format!("in {}s", (next - ctx.now).num_seconds())
                }
            ),
            None => String::new(),
        };
        details.push(format!(
            "{} job {} ({}, {}): submitted {waited}s ago{}; {} callback(s) arrived, {refused} refused for their signature{reconciler}",
            job.provider,
            job.job_id,
            job.persona,
            submitted.map_or("no submission artifact".to_owned(), |a| format!("artifact {}", a.artifact_type)),
            if waited > STUCK_AFTER_S { " — overdue" } else { "" },
            callbacks.len(),
        ));
    }
    if e.run.providers_mode == ProvidersMode::Live {
        match callback_base(e) {
            Some(url) if unreachable_from_outside(&url) => {
                problem = true;
                details.push(format!(
                    "this run's callbacks go to {url}, a loopback or private address: providers \
                     cannot call it (set WEBHOOK_BASE_URL to a tunnel or the deployed API; \
                     `mw providers check` says how)"
                ));
            }
            Some(url) => details.push(format!(
                "this run's callbacks go to {url}/v1/webhooks/<provider>"
            )),
            None => details.push("this run recorded no callback address".into()),
        }
    }
    out.push(Finding {
        symptom: Symptom::WaitingOnWebhook,
        problem,
        summary: format!("waiting on {} provider callback(s)", pending.len()),
        details,
        next: vec![
            format!("mw evidence {} --json", e.run.job_code),
            "mw runs watch ".to_owned() + e.run.job_code.as_str(),
        ],
    });
}

fn provider_errors(e: &Evidence, out: &mut Vec<Finding>) {
    for job in e
        .provider_jobs
        .iter()
        .filter(|j| j.status == JobStatus::Failed)
    {
        let artifact = e.artifacts.iter().find(|a| {
            a.provider == Some(job.provider)
                && a.artifact_type.as_str().ends_with(".error")
                && ["task_id", "render_id", "job_id"]
                    .iter()
                    .any(|k| a.metadata.get(*k).and_then(Value::as_str) == Some(&job.job_id))
        });
        out.push(Finding {
            symptom: Symptom::ProviderError,
            problem: true,
            summary: format!(
                "{} job {} of persona {} failed",
                job.provider, job.job_id, job.persona
            ),
            details: vec![
                format!("run {} ({})", e.run.run_id, e.run.job_code),
                format!(
                    "provider said: {}",
                    job.error.as_deref().unwrap_or("no error given")
                ),
                format!(
                    "artifact metadata: {}",
                    artifact.map_or("none".to_owned(), |a| a.metadata.to_string())
                ),
            ],
            next: vec![format!("mw evidence {} --json", e.run.job_code)],
        });
    }
}

/// A decision the engine has not taken this long after it was made is owed
/// to the run: the call that made it was cut short, or the engine refused it.
const UNDELIVERED_AFTER_S: i64 = 10;
/// A gate waiting longer than a day is reported as a problem: somebody has
/// probably forgotten it (the engine gives up at seven days).
const GATE_WAIT_PROBLEM_S: i64 = 24 * 3600;

fn gates(e: &Evidence, ctx: &Context, out: &mut Vec<Finding>) {
    if e.run.status.is_terminal() {
        return;
    }
    let undelivered = e.hitl_requests.iter().filter(|g| {
        g.delivered_at.is_none()
            && g.decided_at
                .is_some_and(|at| age_s(at, ctx) >= UNDELIVERED_AFTER_S)
    });
    for gate in undelivered {
        let decision = gate.decision.map(|d| d.to_string()).unwrap_or_default();
        out.push(Finding {
            symptom: Symptom::GateStuck,
            problem: true,
            summary: format!(
                "gate {} was {decision} {}s ago, but the engine has not taken the decision yet",
                gate.gate,
                gate.decided_at.map(|at| age_s(at, ctx)).unwrap_or_default()
            ),
            details: vec![
                format!("decided by {}", gate.decided_by.as_deref().unwrap_or("-")),
                "the reconciler sends it again at every sweep (mw serve, mw worker, or the \
                 callbacks function's schedule on AWS): is one running?"
                    .to_owned(),
            ],
            next: vec![
                format!(
                    "mw hitl {} {} {}",
                    verb(&decision),
                    e.run.job_code,
                    gate.gate
                ),
                "mw serve".to_owned(),
            ],
        });
    }
    for gate in e.hitl_requests.iter().filter(|g| g.decision.is_none()) {
        let link = ctx
            .links
            .iter()
            .find(|(g, _)| g == gate.gate.as_str())
            .map(|(_, l)| l.clone());
        let waited = age_s(gate.requested_at, ctx);
        out.push(Finding {
            symptom: Symptom::GateStuck,
            // A gate is there to wait for a human; a long wait is worth a look.
            problem: waited > GATE_WAIT_PROBLEM_S,
            summary: format!("gate {} has waited {}s for a human", gate.gate, waited),
            details: link
                .map(|l| vec![format!("approval link: {l}")])
                .unwrap_or_default(),
            next: vec![
                format!("mw hitl approve {} {}", e.run.job_code, gate.gate),
                format!("mw hitl reject {} {}", e.run.job_code, gate.gate),
            ],
        });
    }
}

/// The `mw hitl` command that repeats a decision (and so sends it again).
fn verb(decision: &str) -> &'static str {
    if decision == "rejected" {
        "reject"
    } else {
        "approve"
    }
}

/// A failed run not explained by a provider error.
fn failed(e: &Evidence, out: &mut Vec<Finding>) {
    if !matches!(e.run.status, RunStatus::Failed | RunStatus::TimedOut) {
        return;
    }
    let result = e.run.result.clone().unwrap_or(Value::Null);
    let persona = result.get("persona").and_then(Value::as_str).unwrap_or("-");
    let over_budget = result.get("error").and_then(Value::as_str) == Some(super::BUDGET_EXCEEDED);
    let mut next = vec![format!("mw evidence {}", e.run.job_code)];
    if over_budget {
        next.push(
            "raise the project's budget_usd (or BUDGET_USD), then start the run again".into(),
        );
    }
    out.push(Finding {
        symptom: Symptom::RunFailed,
        problem: true,
        summary: if over_budget {
            format!("run {} stopped: it spent its budget", e.run.job_code)
        } else {
            format!("run {} failed in persona {persona}", e.run.job_code)
        },
        details: vec![
            format!(
                "error: {}",
                result.get("error").and_then(Value::as_str).unwrap_or("-")
            ),
            format!(
                "cause: {}",
                result
                    .get("cause")
                    .and_then(Value::as_str)
                    .or(e.run.error.as_deref())
                    .unwrap_or("-")
            ),
        ],
        next,
    });
}
