//! What a run cost, on a real stack over HTTP: the evidence's breakdown
//! against the work the mocks accepted, `mw runs show` and
//! `mw runs list --cost`, the spend counter at `/metrics`, and a budget that
//! stops a run before its next persona.
use std::process::Command;

use myloware::domain::{JobStatus, Provider, RunStatus};
use myloware::pipeline::cost::RunCost;
use myloware::pipeline::Evidence;
use myloware_tests::{drive, stack_vars, TestStack};

/// kie.ai at 60 credits of half a cent a clip ($0.30), upload-post at $0.10
/// a post; Shotstack's default minute price stays.
const PRICES: &str = r#"{ "kieai": { "credits_per_clip": 60, "usd_per_credit": 0.005 },
                          "upload_post": { "usd_per_post": 0.10 } }"#;

/// A stack whose price file is `PRICES`, with `extra` variables.
async fn priced_stack(extra: &[(&str, &str)]) -> TestStack {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.json");
    std::fs::write(&prices, PRICES).unwrap();
    let prices = prices.display().to_string();
    let mut vars: Vec<(&str, &str)> = vec![("PRICES_FILE", &prices), ("MOCK_LATENCY_MS", "10")];
    vars.extend_from_slice(extra);
    let vars = stack_vars(dir.path(), &vars);
    TestStack::start_with(dir, vars, myloware::wiring::StackOptions::ephemeral()).await
}

fn succeeded(e: &Evidence, provider: Provider) -> usize {
    e.provider_jobs
        .iter()
        .filter(|j| j.provider == provider && !j.is_intent() && j.status == JobStatus::Succeeded)
        .count()
}

/// `mw` against the stack's API: its output.
fn mw_output(t: &TestStack, args: &[&str]) -> std::process::Output {
    Command::new(crate::cli::mw_binary())
        .arg("--api-base")
        .arg(&t.stack.base_url)
        .args(args)
        .current_dir(t.dir.path())
        .env("MYLOWARE_HOME", t.dir.path().join("home"))
        .env("API_KEY", "test-api-key-0123456789")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `mw` against the stack's API, which must succeed: its stdout.
fn mw(t: &TestStack, args: &[&str]) -> String {
    let out = mw_output(t, args);
    assert!(out.status.success(), "mw {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_run_knows_what_it_cost() {
    let t = priced_stack(&[]).await;
    let e = drive(&t.client, "aismr", 60).await;
    assert_eq!(e.run.status, RunStatus::Published, "{:?}", e.run.error);
    let cost = e.cost.clone().expect("the evidence has a cost");
    let mocks = t.stack.mocks.as_ref().unwrap();

    // Provider units match the work the mocks accepted.
    let kie = &cost.providers[0];
    assert_eq!(kie.provider, Provider::KieAi);
    assert_eq!(mocks.kieai.snapshot().accepted, 12);
    assert_eq!((kie.jobs, kie.units), (12, 12.0), "{kie:?}");
    assert_eq!(succeeded(&e, Provider::KieAi), 12);
    assert_eq!(kie.credits, Some(720.0));
    assert!((kie.usd - 3.6).abs() < 1e-9, "{kie:?}");
    let render = &cost.providers[1];
    assert_eq!(render.provider, Provider::Shotstack);
    assert_eq!((render.jobs, mocks.shotstack.snapshot().accepted), (1, 1));
    assert!(
        (render.units - 12.0 * 8.0 / 60.0).abs() < 1e-9,
        "twelve 8-second clips end to end: {render:?}"
    );
    assert!((render.usd - 1.6 * 0.20).abs() < 1e-9);
    let posts = &cost.providers[2];
    assert_eq!(posts.provider, Provider::UploadPost);
    let published = crate::pipeline::count(&e, "publish.url");
    assert!(published > 0);
    assert_eq!(posts.units, published as f64, "{posts:?}");

    // The scripted brain's tokens are counted per persona, and free.
    let personas: Vec<&str> = cost.personas.iter().map(|p| p.persona.as_str()).collect();
    assert_eq!(personas, ["iggy", "riley", "alex", "quinn"]);
    assert!(cost
        .personas
        .iter()
        .all(|p| p.model == "scripted" && p.prompt_tokens > 0 && p.usd == 0.0 && p.priced));

    // Locally the AWS lines are an estimate, outside the total.
    assert_eq!(cost.aws.basis, "if it ran on AWS");
    assert!(
        cost.aws.lines.iter().all(|l| l.units > 0.0),
        "{:?}",
        cost.aws
    );
    let expected = 3.6 + 0.32 + 0.10 * published as f64;
    assert!(
        (cost.total_usd - expected).abs() < 1e-9,
        "{}",
        cost.total_usd
    );

    // The spend counter, once per settled unit.
    let metrics = t
        .client
        .http
        .get(format!("{}/metrics", t.stack.base_url))
        .header("authorization", "Bearer test-api-key-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |name: &str, kind: &str| -> f64 {
        let prefix = format!("{name}{{project=\"aismr\",kind=\"{kind}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(series("mw_spend_units_total", "kieai"), 12.0);
    assert!((series("mw_spend_usd_total", "kieai") - 3.6).abs() < 1e-9);
    assert!((series("mw_spend_usd_total", "shotstack") - 0.32).abs() < 1e-9);
    assert!(series("mw_spend_units_total", "llm") > 0.0);

    // The CLI prints it.
    let job = e.run.job_code.as_str();
    let shown = mw(&t, &["runs", "show", job]);
    assert!(
        shown.contains(&format!(
            "cost       {}",
            myloware::pipeline::cost::usd(cost.total_usd)
        )),
        "{shown}"
    );
    assert!(
        shown.contains("12 clips of 12 jobs, 720 credits") && shown.contains("if it ran on AWS"),
        "{shown}"
    );
    let listed = mw(&t, &["runs", "list", "--cost"]);
    let row = listed.lines().find(|l| l.contains(job)).unwrap_or_default();
    assert!(
        listed.contains("cost") && row.contains(&myloware::pipeline::cost::usd(cost.total_usd)),
        "{listed}"
    );
    let traced = mw(&t, &["trace", job]);
    assert!(traced.contains("12 clips $3.60"), "{traced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_over_its_budget_stops_before_its_next_persona() {
    // Twelve clips cost $3.60: past a $1 budget once Riley's jobs settle.
    let t = priced_stack(&[("BUDGET_USD", "1.00")]).await;
    let e = drive(&t.client, "aismr", 60).await;
    assert_eq!(e.run.status, RunStatus::Failed);
    let error = e.run.error.clone().unwrap_or_default();
    let expected = format!(
        "Budget.Exceeded: run {} spent $3.60 of $1.00 (stopped before persona alex)",
        e.run.job_code
    );
    assert_eq!(error, expected);
    let mocks = t.stack.mocks.as_ref().unwrap();
    assert_eq!(mocks.kieai.snapshot().accepted, 12);
    assert_eq!(
        (
            mocks.shotstack.snapshot().accepted,
            mocks.upload_post.snapshot().accepted
        ),
        (0, 0),
        "no provider job after the budget was spent"
    );
    assert!(e
        .provider_jobs
        .iter()
        .all(|j| j.provider == Provider::KieAi));
    assert!(
        !e.artifacts
            .iter()
            .any(|a| a.is_persona_completed(myloware::domain::Persona::Alex)),
        "alex never ran"
    );
    let doctor = mw_output(&t, &["doctor", e.run.job_code.as_str()]);
    assert_eq!(
        doctor.status.code(),
        Some(1),
        "a failed run needs attention"
    );
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("spent its budget") && text.contains("Budget.Exceeded"),
        "{text}"
    );
}

fn line(cost: &RunCost, service: &str) -> f64 {
    cost.aws
        .lines
        .iter()
        .find(|l| l.service == service)
        .map(|l| l.units)
        .unwrap_or_else(|| panic!("no {service} line: {:?}", cost.aws))
}

/// The same computation on both paths (`aws_path`): the same provider units
/// and tokens, and on Step Functions the AWS lines are counted as spend,
/// from that execution's own history.
pub fn same_cost_on_aws_and_embedded(on_aws: &Evidence, embedded: &Evidence) {
    let (aws, local) = (on_aws.cost.clone().unwrap(), embedded.cost.clone().unwrap());
    assert_eq!(aws.aws.basis, "ran on AWS");
    assert_eq!(local.aws.basis, "if it ran on AWS");
    let units = |c: &RunCost| -> Vec<(Provider, f64)> {
        c.providers.iter().map(|p| (p.provider, p.units)).collect()
    };
    assert_eq!(units(&aws), units(&local));
    let transitions = on_aws
        .history
        .iter()
        .filter(|h| h.event_type.ends_with("StateEntered"))
        .count();
    assert!(transitions > 0);
    assert_eq!(line(&aws, "Step Functions"), transitions as f64);
    assert!(line(&aws, "Lambda requests") > 0.0 && line(&aws, "SQS") > 0.0);
    let spent: f64 = aws.personas.iter().map(|p| p.usd).sum::<f64>()
        + aws.providers.iter().map(|p| p.usd).sum::<f64>();
    assert!(
        (aws.total_usd - spent - aws.aws.usd).abs() < 1e-12,
        "on AWS the orchestration is part of the total"
    );
}
