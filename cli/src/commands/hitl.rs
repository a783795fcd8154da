//! `mw hitl link|approve|reject <run> <gate>`.
use crate::output::outln;
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::{GateArgs, HitlCommand};
use crate::connect::connect;

pub async fn run(
    cmd: HitlCommand,
    api_base: Option<&str>,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    let connection = connect(config, api_base).await?;
    let client = &connection.client;
    let outcome = async {
        match cmd {
            HitlCommand::Link(GateArgs { run, gate, .. }) => {
                let link: Value = client.get(&format!("/v1/hitl/link/{run}/{gate}")).await?;
                outln!("{}", link["url"].as_str().unwrap_or("-"));
                eprintln!(
                    "good until {} (once)",
                    link["expires_at"].as_str().unwrap_or("-")
                );
            }
            HitlCommand::Approve(GateArgs { run, gate, comment }) => {
                let answer: Value = client
                    .post(
                        &format!("/v1/hitl/approve/{run}/{gate}"),
                        &json!({ "by": "cli", "comment": comment }),
                    )
                    .await?;
                report(&answer, &run, &gate);
                if connection.embedded.is_some()
                    && config.engine == myloware::config::EngineKind::Local
                {
                    // The local engine runs in the process that serves: this
                    // command's stack stops as it exits.
                    eprintln!(
                        "no `mw serve` is running: run {run} goes on from gate {gate} when one \
                         starts (`mw serve`; `mw runs watch {run}` then follows it)"
                    );
                }
            }
            HitlCommand::Reject(GateArgs { run, gate, comment }) => {
                let answer: Value = client
                    .post(
                        &format!("/v1/hitl/reject/{run}/{gate}"),
                        &json!({ "by": "cli", "comment": comment }),
                    )
                    .await?;
                report(&answer, &run, &gate);
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    }
    .await;
    connection.close().await;
    outcome
}

fn report(answer: &Value, run: &str, gate: &str) {
    let decision = answer
        .pointer("/request/decision")
        .and_then(Value::as_str)
        .unwrap_or("-");
    if answer["decided_now"].as_bool() == Some(true) {
        outln!("gate {gate} of run {run}: {decision}");
    } else if answer["resent"].as_bool() == Some(true) {
        outln!(
            "gate {gate} of run {run} was already {decision}, but the engine had not taken \
             the decision: it was sent again"
        );
    } else {
        outln!("gate {gate} of run {run} was already {decision}; nothing changed");
    }
}
