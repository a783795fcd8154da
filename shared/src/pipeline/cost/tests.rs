use chrono::{Duration, Utc};
use serde_json::{json, Map, Value};

use super::*;
use crate::domain::{RunId, SpanId, SpanStatus, TraceId};

fn llm_span(run: RunId, persona: &str, model: &str, prompt: u64, completion: u64) -> Span {
    let mut attributes = Map::new();
    attributes.insert(attr::OPERATION.into(), json!("chat"));
    attributes.insert(attr::AGENT.into(), json!(persona));
    attributes.insert(attr::RESPONSE_MODEL.into(), json!(model));
    attributes.insert(attr::INPUT_TOKENS.into(), json!(prompt));
    attributes.insert(attr::OUTPUT_TOKENS.into(), json!(completion));
    let start = Utc::now();
    Span {
        trace_id: TraceId::of_run(run),
        span_id: SpanId::random(),
        parent_span_id: None,
        run_id: Some(run),
        name: "chat".into(),
        status: SpanStatus::Ok,
        attributes,
        input: None,
        output: None,
        error: None,
        start_time: start,
        end_time: Some(start + Duration::seconds(2)),
    }
}

fn job(run: RunId, provider: Provider, id: &str, status: JobStatus) -> ProviderJob {
    ProviderJob {
        provider,
        job_id: id.into(),
        run_id: run,
        persona: Persona::Riley,
        task_token: None,
        status,
        result: None,
        error: None,
        created_at: Utc::now(),
        settled_at: None,
        next_check_at: None,
        checks: 0,
        settled_by: None,
    }
}

fn artifact(run: RunId, kind: ArtifactType, metadata: Value) -> Artifact {
    Artifact {
        id: uuid::Uuid::new_v4(),
        run_id: run,
        artifact_type: kind,
        provider: None,
        persona: None,
        url: None,
        checksum: None,
        metadata,
        created_at: Utc::now(),
    }
}

fn event(event_type: &str) -> HistoryEvent {
    HistoryEvent {
        id: 1,
        previous_event_id: 0,
        timestamp: Utc::now(),
        event_type: event_type.into(),
        details: Value::Null,
    }
}

fn priced() -> Prices {
    Prices {
        kieai: KieAiPrices {
            credits_per_clip: Some(60.0),
            usd_per_credit: Some(0.005),
        },
        upload_post: UploadPostPrices {
            usd_per_post: Some(0.10),
        },
        ..Prices::default()
    }
}

fn inputs<'a>(
    spans: &'a [Span],
    jobs: &'a [ProviderJob],
    artifacts: &'a [Artifact],
    history: &'a [HistoryEvent],
) -> CostInputs<'a> {
    CostInputs {
        spans,
        jobs,
        artifacts,
        history,
        webhook_events: 0,
        on_aws: false,
    }
}

#[test]
fn tokens_are_priced_per_million_by_model() {
    let run = RunId::new();
    let spans = [
        llm_span(run, "iggy", "gpt-4o-mini", 1_000_000, 0),
        llm_span(run, "iggy", "gpt-4o-mini", 0, 500_000),
        llm_span(run, "riley", "scripted", 10_000, 10_000),
        llm_span(run, "alex", "some-new-model", 10, 10),
    ];
    let cost = run_cost(inputs(&spans, &[], &[], &[]), &Prices::default());
    let iggy = &cost.personas[0];
    assert_eq!((iggy.persona, iggy.calls), (Persona::Iggy, 2));
    assert_eq!(
        (iggy.prompt_tokens, iggy.completion_tokens),
        (1_000_000, 500_000)
    );
    assert!((iggy.usd - (0.15 + 0.30)).abs() < 1e-9, "{}", iggy.usd);
    assert_eq!(cost.personas[1].usd, 0.0, "the scripted brain is free");
    assert!(cost.personas[1].priced);
    let alex = &cost.personas[2];
    assert!(
        !alex.priced,
        "a model not in the table is said to be unpriced"
    );
    assert_eq!(alex.usd, 0.0);
    assert!((cost.total_usd - 0.45).abs() < 1e-9);
}

#[test]
fn clips_count_only_succeeded_accepted_jobs() {
    let run = RunId::new();
    let mut jobs: Vec<ProviderJob> = (0..12)
        .map(|i| {
            job(
                run,
                Provider::KieAi,
                &format!("task-{i}"),
                JobStatus::Succeeded,
            )
        })
        .collect();
    jobs.push(job(run, Provider::KieAi, "task-failed", JobStatus::Failed));
    jobs.push(job(
        run,
        Provider::KieAi,
        "task-pending",
        JobStatus::Pending,
    ));
    jobs.push(job(
        run,
        Provider::KieAi,
        "mw-intent-1",
        JobStatus::Succeeded,
    ));
    let cost = run_cost(inputs(&[], &jobs, &[], &[]), &priced());
    let kie = &cost.providers[0];
    assert_eq!((kie.jobs, kie.units), (12, 12.0));
    assert_eq!(kie.credits, Some(720.0));
    assert!((kie.usd - 3.6).abs() < 1e-9, "{}", kie.usd);
    // Unpriced by default: counted, not charged.
    let unpriced = run_cost(inputs(&[], &jobs, &[], &[]), &Prices::default());
    assert_eq!(unpriced.providers[0].units, 12.0);
    assert!(!unpriced.providers[0].priced);
    assert_eq!(unpriced.total_usd, 0.0);
}

#[test]
fn render_minutes_come_from_the_submitted_timeline() {
    let run = RunId::new();
    let clips: Vec<Value> = (0..12)
        .map(|i| json!({ "start": f64::from(i) * 8.0, "length": 8.0 }))
        .collect();
    let artifacts = [artifact(
        run,
        ArtifactType::SHOTSTACK_TIMELINE,
        json!({ "render_id": "r1", "timeline": { "tracks": [ { "clips": clips } ] } }),
    )];
    let jobs = [job(run, Provider::Shotstack, "r1", JobStatus::Succeeded)];
    let cost = run_cost(inputs(&[], &jobs, &artifacts, &[]), &priced());
    let render = &cost.providers[0];
    assert!(
        (render.units - 1.6).abs() < 1e-9,
        "96 s is 1.6 minutes: {}",
        render.units
    );
    assert!((render.usd - 0.32).abs() < 1e-9, "{}", render.usd);
}

#[test]
fn posts_are_the_platforms_published() {
    let run = RunId::new();
    let artifacts = [
        artifact(
            run,
            ArtifactType::PUBLISH_URL,
            json!({ "job_id": "u1", "platform": "tiktok" }),
        ),
        artifact(
            run,
            ArtifactType::PUBLISH_URL,
            json!({ "job_id": "u1", "platform": "youtube" }),
        ),
        artifact(
            run,
            ArtifactType::PUBLISH_ERROR,
            json!({ "job_id": "u1", "platform": "x" }),
        ),
    ];
    let jobs = [job(run, Provider::UploadPost, "u1", JobStatus::Succeeded)];
    let cost = run_cost(inputs(&[], &jobs, &artifacts, &[]), &priced());
    assert_eq!(cost.providers[0].units, 2.0);
    assert!((cost.providers[0].usd - 0.2).abs() < 1e-9);
}

#[test]
fn aws_lines_come_from_the_history_and_count_only_on_aws() {
    let run = RunId::new();
    let mut history: Vec<HistoryEvent> = (0..4000).map(|_| event("TaskStateEntered")).collect();
    history.extend((0..1000).map(|_| event("TaskScheduled")));
    let spans = [llm_span(run, "iggy", "scripted", 1, 1)];
    let mut input = inputs(&spans, &[], &[], &history);
    input.webhook_events = 500;
    let estimate = run_cost(input, &Prices::default());
    assert_eq!(estimate.aws.basis, "if it ran on AWS");
    let line = |name: &str| {
        estimate
            .aws
            .lines
            .iter()
            .find(|l| l.service == name)
            .unwrap()
            .clone()
    };
    assert_eq!(line("Step Functions").units, 4000.0);
    assert!((line("Step Functions").usd - 0.1).abs() < 1e-12);
    assert_eq!(
        line("Lambda requests").units,
        2000.0,
        "1000 tasks + 2 x 500 callbacks"
    );
    assert!((line("Lambda requests").usd - 0.0004).abs() < 1e-12);
    assert_eq!(
        line("SQS").units,
        4500.0,
        "send, receive, delete of 1500 messages"
    );
    assert!(
        (line("Lambda compute").units - 1.0).abs() < 1e-9,
        "2 s at 512 MB is 1 GB-s"
    );
    assert_eq!(
        line("DynamoDB").units,
        1002.0,
        "2 per span and per callback"
    );
    assert_eq!(
        estimate.total_usd, 0.0,
        "an estimate is not added to the total"
    );
    input.on_aws = true;
    let on_aws = run_cost(input, &Prices::default());
    assert_eq!(on_aws.aws.basis, "ran on AWS");
    assert!(on_aws.total_usd > 0.1 && (on_aws.total_usd - on_aws.aws.usd).abs() < 1e-12);
}

#[test]
fn a_price_file_overrides_parts_and_keeps_the_rest() {
    let text = r#"{ "kieai": { "credits_per_clip": 60, "usd_per_credit": 0.005 },
                   "llm": { "my-model": { "input_per_million": 1, "output_per_million": 2 } } }"#;
    let prices = Prices::parse(text, "prices.json").unwrap();
    assert_eq!(prices.kieai.credits_per_clip, Some(60.0));
    assert_eq!(prices.shotstack, ShotstackPrices::default());
    assert!(prices.llm.contains_key("my-model") && prices.llm.contains_key("scripted"));
    assert_eq!(
        prices.tokens_usd("my-model", 1_000_000, 1_000_000),
        Some(3.0)
    );
    let err = Prices::parse(r#"{ "kieia": {} }"#, "prices.json").unwrap_err();
    assert!(
        err.to_string().contains("prices.json") && err.to_string().contains("kieia"),
        "{err}"
    );
    let err = Prices::parse(
        r#"{ "llm": { "m": { "input_per_million": -1, "output_per_million": 0 } } }"#,
        "p.json",
    )
    .unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
}

#[test]
fn dollars_read_well() {
    assert_eq!(usd(0.0), "$0.00");
    assert_eq!(usd(0.00042), "$0.0004");
    assert_eq!(usd(0.32), "$0.32");
    assert_eq!(usd(3.6), "$3.60");
}

fn tool_span(run: RunId, persona: &str, tool: &str, error: Option<&str>) -> Span {
    let mut span = llm_span(run, persona, "unused", 0, 0);
    span.attributes.remove(attr::RESPONSE_MODEL);
    span.attributes
        .insert(attr::OPERATION.into(), json!("execute_tool"));
    span.attributes.insert(attr::TOOL.into(), json!(tool));
    span.error = error.map(str::to_owned);
    span
}

#[test]
fn a_provider_tool_span_carries_its_jobs_once() {
    let run = RunId::new();
    let spans = [
        tool_span(
            run,
            "riley",
            "submit_clip_jobs",
            Some("kie.ai refused clip 3"),
        ),
        tool_span(run, "riley", "submit_clip_jobs", None),
        // A repeat (the persona tried again) re-registers; it submits nothing.
        tool_span(run, "riley", "submit_clip_jobs", None),
        tool_span(run, "iggy", "record_ideas", None),
        llm_span(run, "riley", "gpt-4o-mini", 2_000_000, 0),
    ];
    let jobs: Vec<ProviderJob> = (0..3)
        .map(|i| job(run, Provider::KieAi, &format!("t{i}"), JobStatus::Succeeded))
        .collect();
    let costs = span_costs(&spans, &jobs, &[], &priced());
    let labels: Vec<(SpanId, String)> = costs.iter().map(|c| (c.span_id, c.label())).collect();
    assert_eq!(
        labels,
        [
            (spans[1].span_id, "3 clips $0.90".to_owned()),
            (spans[4].span_id, "2000000 tokens $0.30".to_owned()),
        ]
    );
}
