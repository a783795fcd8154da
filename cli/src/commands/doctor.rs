//! `mw doctor <run>`: the runbook's debug table, automated. Exit 0 when
//! nothing needs attention, 1 when something does, 2 when there is no such
//! run.
use std::process::ExitCode;

use chrono::Utc;
use myloware::hitl::{HitlSigner, DEFAULT_LINK_TTL};
use myloware::pipeline::doctor::{self, Context};

use crate::cli::RunArgs;
use crate::connect::Reader;
use crate::output::{outln, print_json};

pub async fn run(
    args: RunArgs,
    reader: &Reader,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    let evidence = reader.evidence(&args.run).await?;
    let mut links = Vec::new();
    for gate in evidence
        .hitl_requests
        .iter()
        .filter(|g| g.decision.is_none())
    {
        let link = match reader {
            Reader::Api(client) => client
                .get::<serde_json::Value>(&format!(
                    "/v1/hitl/link/{}/{}",
                    evidence.run.run_id, gate.gate
                ))
                .await
                .ok()
                .and_then(|l| l["url"].as_str().map(str::to_owned)),
            Reader::Store(..) => {
                let base = config
                    .public_base_url
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:8080".into());
                let signer = HitlSigner::new(config.hitl_secret.clone());
                Some(signer.link(
                    &base,
                    evidence.run.run_id,
                    &gate.gate,
                    Utc::now() + DEFAULT_LINK_TTL,
                ))
            }
        };
        if let Some(link) = link {
            links.push((gate.gate.to_string(), link));
        }
    }
    let context = Context {
        now: Utc::now(),
        links,
    };
    let findings = doctor::diagnose(&evidence, &context);
    let problem = findings.iter().any(|f| f.problem);
    if args.json {
        print_json(&findings)?;
    } else {
        outln!(
            "run {} ({}) is {}",
            evidence.run.job_code,
            evidence.run.run_id,
            evidence.run.status
        );
        for f in &findings {
            outln!("\n{} {}", if f.problem { "✗" } else { "✓" }, f.summary);
            for d in &f.details {
                outln!("    {d}");
            }
            for n in &f.next {
                outln!("    next: {n}");
            }
        }
    }
    Ok(if problem {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
