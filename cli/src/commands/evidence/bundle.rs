//! `mw evidence <run> --bundle DIR`: what a bug report needs, in two files —
//! `evidence.json` (the run, artifacts, webhook events with payloads and
//! signature status, provider jobs, gates, the execution history, the
//! doctor's findings, the run tree's spans) and `summary.md` for people, with
//! the run tree drawn as `mw trace` draws it. Secrets are redacted:
//! approval tokens in links, and any configured secret wherever it appears.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use myloware::pipeline::doctor::{self, Context};
use myloware::pipeline::Evidence;
use secrecy::ExposeSecret;
use serde_json::json;

pub fn write(
    dir: &Path,
    evidence: &Evidence,
    config: &myloware::Config,
) -> anyhow::Result<Vec<PathBuf>> {
    myloware::private_files::create_dir(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let findings = doctor::diagnose(
        evidence,
        &Context {
            now: Utc::now(),
            links: Vec::new(),
        },
    );
    let bundle = json!({ "evidence": evidence, "doctor": findings, "generated_at": Utc::now() });
    let redact = |text: String| redact(text, config);
    let json_path = dir.join("evidence.json");
    myloware::private_files::write(&json_path, redact(serde_json::to_string_pretty(&bundle)?))?;
    let md_path = dir.join("summary.md");
    myloware::private_files::write(
        &md_path,
        redact(summary(evidence, &findings, &config.prices)),
    )?;
    Ok(vec![json_path, md_path])
}

/// Removes approval tokens and configured secrets from `text`.
fn redact(mut text: String, config: &myloware::Config) -> String {
    for secret in [
        &config.api_key,
        &config.hitl_secret,
        &config.kieai_webhook_secret,
        &config.upload_post_webhook_secret,
    ]
    .into_iter()
    .chain(
        [
            &config.kieai_api_key,
            &config.shotstack_api_key,
            &config.upload_post_api_key,
        ]
        .into_iter()
        .flatten(),
    ) {
        let value = secret.expose_secret();
        if !value.is_empty() {
            text = text.replace(value, "[REDACTED]");
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("token=") {
        out.push_str(&rest[..at + "token=".len()]);
        out.push_str("[REDACTED]");
        rest = &rest[at + "token=".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.%".contains(c)))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    redact_task_tokens(out)
}

/// Removes the engine's task tokens, which the execution history carries
/// (each task's message names its token; on Step Functions inside the
/// parameters' JSON text): whoever holds one can complete that task.
fn redact_task_tokens(text: String) -> String {
    let mut tokens = Vec::new();
    for key in ["task_token", "TaskToken", "taskToken"] {
        for (at, _) in text.match_indices(key) {
            // `key": "value"` or, inside a JSON string, `key\": \"value\"`.
            let rest = text[at + key.len()..].trim_start_matches(['"', '\\', ':', ' ']);
            let value: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.:=+/".contains(*c))
                .collect();
            if value.len() >= 16 && !value.starts_with("$$") {
                tokens.push(value);
            }
        }
    }
    tokens.sort();
    tokens.dedup();
    tokens.iter().fold(text, |text, token| {
        text.replace(token.as_str(), "[TASK TOKEN]")
    })
}

fn summary(
    e: &Evidence,
    findings: &[doctor::Finding],
    prices: &myloware::pipeline::cost::Prices,
) -> String {
    let run = &e.run;
    let mut md = format!("# Run {} ({})\n\n", run.job_code, run.project);
    md += &format!(
        "- run id: `{}`\n- status: **{}**\n- providers: {}\n- created: {}\n- updated: {}\n",
        run.run_id, run.status, run.providers_mode, run.created_at, run.updated_at
    );
    if let Some(error) = &run.error {
        md += &format!("- error: `{error}`\n");
    }
    for line in e.lineage.lines() {
        md += &format!("- {line}\n");
    }
    if let Some(cost) = &e.cost {
        md += &format!(
            "\n## Cost\n\n**{}** (prices of {})\n\n```\n{}\n```\n",
            cost.summary(),
            cost.prices_dated,
            cost.breakdown().join("\n")
        );
    }
    md += "\n## Doctor\n\n";
    for f in findings {
        md += &format!(
            "- {} **{}**\n",
            if f.problem { "✗" } else { "✓" },
            f.summary
        );
        for d in &f.details {
            md += &format!("  - {d}\n");
        }
        for n in &f.next {
            md += &format!("  - next: `{n}`\n");
        }
    }
    md += "\n## Run tree\n\n```text\n";
    if e.spans.is_empty() {
        md += "no spans recorded\n";
    } else {
        let costs =
            myloware::pipeline::cost::span_costs(&e.spans, &e.provider_jobs, &e.artifacts, prices);
        md += &crate::commands::trace::render(&e.spans, &costs, Utc::now());
    }
    md += "```\n";
    md +=
        "\n## Artifacts\n\n| created | type | persona | provider | url |\n|---|---|---|---|---|\n";
    for a in &e.artifacts {
        md += &format!(
            "| {} | {} | {} | {} | {} |\n",
            a.created_at.format("%H:%M:%S%.3f"),
            a.artifact_type,
            a.persona.map_or("-".into(), |p| p.to_string()),
            a.provider.map_or("-".into(), |p| p.to_string()),
            a.url.as_deref().unwrap_or("-")
        );
    }
    md += "\n## Webhook events\n\n| received | provider | idempotency key | signature | status | error |\n|---|---|---|---|---|---|\n";
    for w in &e.webhook_events {
        md += &format!(
            "| {} | {} | `{}` | {} | {} | {} |\n",
            w.created_at.format("%H:%M:%S%.3f"),
            w.provider,
            w.idempotency_key,
            w.signature_status,
            w.status,
            w.error.as_deref().unwrap_or("-")
        );
    }
    md += "\n## Provider jobs\n\n| provider | job | persona | status | error |\n|---|---|---|---|---|\n";
    for j in &e.provider_jobs {
        md += &format!(
            "| {} | `{}` | {} | {} | {} |\n",
            j.provider,
            j.job_id,
            j.persona,
            j.status,
            j.error.as_deref().unwrap_or("-")
        );
    }
    md += "\n## Gates\n\n";
    for g in &e.hitl_requests {
        md += &format!(
            "- {}: {}{}\n",
            g.gate,
            g.decision.map_or("waiting".into(), |d| format!(
                "{d} by {}",
                g.decided_by.as_deref().unwrap_or("-")
            )),
            g.comment
                .as_deref()
                .map(|c| format!(" — “{}”", c.replace('\n', " ")))
                .unwrap_or_default()
        );
    }
    md += &format!(
        "\n## History\n\n{} events; the full list is in evidence.json.\n",
        e.history.len()
    );
    md
}

#[cfg(test)]
mod tests {
    use super::redact_task_tokens;

    #[test]
    fn task_tokens_are_redacted_wherever_the_history_carries_them() {
        let token = "exec-1.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-";
        let text = format!(
            r#"{{"details":{{"parameters":"{{\"task_token\":\"{token}\"}}"}},"input":{{"task_token":"{token}"}},"note":"again {token}","path":"$$.Task.Token"}}"#
        );
        let redacted = redact_task_tokens(text);
        assert!(!redacted.contains(token), "{redacted}");
        assert_eq!(redacted.matches("[TASK TOKEN]").count(), 3, "{redacted}");
        assert!(redacted.contains("$$.Task.Token"));
    }
}
