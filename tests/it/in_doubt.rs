//! Work whose submission's answer never came back (a process killed while
//! kie.ai or Shotstack answered, an answer lost on the way) is neither lost
//! nor paid for twice: the callback that names its intent adopts it, and only
//! when no callback comes in time does the reconciler submit it again
//! (`pipeline::intents`).
use std::time::Duration;

use chrono::Utc;
use myloware::domain::{
    ArtifactType, JobStatus, Persona, Provider, ProviderJob, RunStatus, SettledBy,
};
use myloware::personas::tools::RunScope;
use myloware::pipeline::doctor::{diagnose, Context, Symptom};
use myloware::pipeline::{intents, Pipeline};
use myloware::providers::kieai::VeoGenerate;
use myloware_tests::{running_run, TestStack};
use serde_json::json;

/// Every clip, render and new upload is taken and its answer lost: the run
/// publishes all the same, each piece of work accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_whose_answers_were_lost_is_adopted_by_its_callbacks() {
    let t = TestStack::start(&[("MOCK_FAULTS", "unanswered=1"), ("MOCK_LATENCY_MS", "20")]).await;
    let id = t.start_run("test-video-gen").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t.wait_for_status(&id, RunStatus::Published).await;
    let mocks = t.stack.mocks.as_ref().unwrap();
    let (kieai, shotstack, upload) = (
        mocks.kieai.snapshot(),
        mocks.shotstack.snapshot(),
        mocks.upload_post.snapshot(),
    );
    assert_eq!((kieai.unanswered, shotstack.unanswered), (2, 1));
    assert_eq!(
        upload.unanswered, 1,
        "the upload's first answer is lost too"
    );
    let jobs = |provider: Provider| {
        e.provider_jobs
            .iter()
            .filter(|j| j.provider == provider && !j.is_intent())
            .count() as u64
    };
    assert_eq!(kieai.accepted, 2, "no clip submitted twice");
    assert_eq!(jobs(Provider::KieAi), 2);
    assert_eq!(shotstack.accepted, 1, "no render submitted twice");
    assert_eq!(jobs(Provider::Shotstack), 1);
    assert_eq!(upload.accepted, 1, "the upload sent again is the same one");
    // The records say how the jobs were found: by the callbacks naming them.
    let adopted = e
        .artifacts
        .iter()
        .filter(|a| a.metadata["adopted"] == json!(true))
        .map(|a| a.artifact_type.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        adopted,
        ["kieai.job", "kieai.job", "shotstack.timeline"],
        "{adopted:?}"
    );
    assert!(
        e.provider_jobs.iter().all(|j| !j.is_intent()),
        "no intent left in doubt: {:?}",
        e.provider_jobs
    );
    assert_eq!(crate::pipeline::count(&e, "kieai.clip"), 2);
    assert_eq!(crate::pipeline::count(&e, "publish.url"), 2);
}

/// A Riley scope on a run of its own, which no execution moves.
async fn riley(pipeline: &Pipeline) -> RunScope {
    let run = running_run(&*pipeline.store, "test-video-gen").await;
    RunScope {
        run_id: run.run_id,
        project: run.project,
        persona: Persona::Riley,
        task_token: None,
    }
}

async fn job(pipeline: &Pipeline, id: &str) -> Option<ProviderJob> {
    pipeline
        .store
        .find_provider_job(Provider::KieAi, id)
        .await
        .unwrap()
}

async fn records(pipeline: &Pipeline, scope: &RunScope) -> Vec<serde_json::Value> {
    pipeline
        .store
        .list_artifacts_of(scope.run_id, &[ArtifactType::KIEAI_JOB.as_str()])
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.metadata)
        .collect()
}

/// One clip named in an intent and sent to kie.ai with the intent's callback
/// URL, its answer not recorded: the intent's id, that URL and kie.ai's
/// task id.
async fn sent_for_one_clip(p: &Pipeline, scope: &RunScope) -> (String, String, String) {
    let intent = p
        .begin_intent(scope, Provider::KieAi, vec![clip(0)])
        .await
        .unwrap();
    let (url, task) = send_clip(p, &intent, 0).await;
    (intent, url, task)
}

/// Clip `index` of `intent` sent to kie.ai with the intent's callback URL:
/// that URL and kie.ai's task id.
async fn send_clip(p: &Pipeline, intent: &str, index: u64) -> (String, String) {
    let url = intents::callback_url(
        &format!("{}/v1/webhooks/kieai", p.settings.webhook_base_url),
        intent,
        index,
    );
    let task = p
        .providers
        .kieai
        .generate(&VeoGenerate::new(&format!("clip {index}"), &url))
        .await
        .unwrap();
    (url, task)
}

/// Riley's scope, and an intent naming clips 0 and 1, neither sent yet.
async fn two_clips_named(p: &Pipeline) -> (RunScope, String) {
    let scope = riley(p).await;
    let intent = p
        .begin_intent(&scope, Provider::KieAi, vec![clip(0), clip(1)])
        .await
        .unwrap();
    (scope, intent)
}

/// A stack whose reconciler first looks at a job after an hour and sends
/// what is in doubt after two: the tests move its clock.
async fn two_hour_window() -> TestStack {
    TestStack::start(&[
        ("MOCK_LATENCY_MS", "20"),
        ("RECONCILE_AFTER_SECS", "3600"),
        ("RECONCILE_IN_DOUBT_SECS", "7200"),
    ])
    .await
}

fn clip(index: u64) -> serde_json::Value {
    json!({ "index": index, "prompt": format!("clip {index}"), "aspect_ratio": "16:9",
            "duration_seconds": 8 })
}

/// A clip kie.ai took while the process that sent it died: its callback
/// finds no job, kie.ai's record names the intent, and the clip is recorded
/// and registered then — not submitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callback_adopts_the_clip_of_an_intent_cut_short() {
    let t = TestStack::start(&[("MOCK_LATENCY_MS", "20")]).await;
    let p = &t.stack.pipeline;
    let scope = riley(p).await;
    // What the tool sends; the process "dies" before it records the answer.
    let (intent, _, task) = sent_for_one_clip(p, &scope).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let adopted = loop {
        match job(p, &task).await {
            Some(job) if job.status != JobStatus::Pending => break job,
            _ if tokio::time::Instant::now() > deadline => panic!("the callback adopted nothing"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(adopted.status, JobStatus::Succeeded);
    assert_eq!(adopted.settled_by, Some(SettledBy::Callback));
    let records = records(p, &scope).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["task_id"], json!(task));
    assert_eq!(records[0]["intent"], json!(intent));
    assert_eq!(records[0]["adopted"], json!(true));
    assert_eq!(
        job(p, &intent).await.unwrap().status,
        JobStatus::Succeeded,
        "nothing of the intent in doubt"
    );
    assert_eq!(t.stack.mocks.as_ref().unwrap().kieai.snapshot().accepted, 1);
}

/// A clip named and never sent (the process died first): no callback names
/// it, so once the in-doubt window has passed, and not before, the
/// reconciler submits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_submits_what_no_callback_named_after_the_window() {
    let t = two_hour_window().await;
    let p = &t.stack.pipeline;
    let (scope, intent) = two_clips_named(p).await;
    let accepted = || t.stack.mocks.as_ref().unwrap().kieai.snapshot().accepted;

    // Due (the first check) but inside the window: left alone, due again
    // when the window ends.
    let report = p
        .reconcile_due_jobs(Utc::now() + chrono::Duration::seconds(3_601))
        .await
        .unwrap();
    assert_eq!((report.checked, report.deferred), (1, 1), "{report:?}");
    assert_eq!(accepted(), 0);
    let waiting = job(p, &intent).await.unwrap();
    assert_eq!(waiting.status, JobStatus::Pending);
    let window_end = waiting.created_at + chrono::Duration::seconds(7_200);
    assert_eq!(waiting.next_check_at, Some(window_end));
    // The doctor names it as a submission in doubt, not as a job.
    let e = t.evidence(&scope.run_id.to_string()).await;
    let ctx = Context {
        now: Utc::now(),
        links: vec![],
    };
    let waiting_on = diagnose(&e, &ctx)
        .into_iter()
        .find(|f| f.symptom == Symptom::WaitingOnWebhook)
        .unwrap();
    assert!(
        waiting_on
            .details
            .iter()
            .any(|d| d.contains(&format!("kieai submission {intent}"))
                && d.contains("in doubt")
                && d.contains("sends it again in ")),
        "{waiting_on:?}"
    );

    // Past the window: both clips submitted, recorded, registered.
    let report = p
        .reconcile_due_jobs(window_end + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    assert_eq!(accepted(), 2);
    let records = records(p, &scope).await;
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["intent"], json!(intent));
        assert!(record.get("adopted").is_none());
        let task = record["task_id"].as_str().unwrap();
        assert!(job(p, task).await.is_some(), "registered: {task}");
    }
    assert_eq!(job(p, &intent).await.unwrap().status, JobStatus::Succeeded);

    // A sweep after that submits nothing more.
    p.reconcile_due_jobs(window_end + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(accepted(), 2);
}

/// A persona still sending its clips (each accepted and recorded, the next
/// slowed by throttled submissions) past the window since its intent: the
/// window counts from the newest record, so the reconciler does not send the
/// clip the persona is about to send; once the persona has stopped for a
/// whole window, it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_window_restarts_with_each_clip_a_persona_records() {
    let t = two_hour_window().await;
    let p = &t.stack.pipeline;
    let (scope, intent) = two_clips_named(p).await;
    let created = job(p, &intent).await.unwrap().created_at;
    // Clip 0 recorded a little later (here through its callback).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, task) = send_clip(p, &intent, 0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records(p, &scope).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "clip 0 never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = p
        .store
        .list_artifacts_of(scope.run_id, &[ArtifactType::KIEAI_JOB.as_str()])
        .await
        .unwrap()[0]
        .created_at;
    assert!(recorded > created + chrono::Duration::seconds(1));
    let accepted = || t.stack.mocks.as_ref().unwrap().kieai.snapshot().accepted;
    assert_eq!(accepted(), 1);

    // Past the intent's window, inside the record's: clip 1 is not sent.
    let report = p
        .reconcile_due_jobs(
            created + chrono::Duration::seconds(7_200) + chrono::Duration::milliseconds(500),
        )
        .await
        .unwrap();
    assert_eq!(report.deferred, 1, "{report:?}");
    assert_eq!(accepted(), 1, "clip 1 left to the persona still sending");
    assert_eq!(
        job(p, &intent).await.unwrap().next_check_at,
        Some(recorded + chrono::Duration::seconds(7_200))
    );

    // A whole window since the last record: clip 1 is sent, once.
    let report = p
        .reconcile_due_jobs(recorded + chrono::Duration::seconds(7_201))
        .await
        .unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    assert_eq!(accepted(), 2);
    assert_eq!(job(p, &task).await.unwrap().status, JobStatus::Succeeded);
    assert_eq!(job(p, &intent).await.unwrap().status, JobStatus::Succeeded);
}

/// A clip recorded whose registration failed (the store refused the second
/// write): its callback finds the record naming its job and registers it,
/// rather than keeping the callback as an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recorded_clip_whose_registration_failed_is_registered_by_its_callback() {
    let t = TestStack::start(&[("MOCK_LATENCY_MS", "20")]).await;
    let p = &t.stack.pipeline;
    let scope = riley(p).await;
    let (intent, url, task) = sent_for_one_clip(p, &scope).await;
    // The record as the tool writes it; the registration never happens.
    let mut record = clip(0);
    record["task_id"] = json!(task);
    record["intent"] = json!(intent);
    record["callback_url"] = json!(url);
    p.store
        .append_artifact_once(
            myloware::domain::NewArtifact::new(scope.run_id, ArtifactType::KIEAI_JOB, record)
                .provider(Provider::KieAi)
                .persona(Persona::Riley),
            &format!("{intent}#0"),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let settled = loop {
        match job(p, &task).await {
            Some(job) if job.status != JobStatus::Pending => break job,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("the callback registered nothing")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(settled.status, JobStatus::Succeeded);
    assert_eq!(records(p, &scope).await.len(), 1, "recorded once");
    assert_eq!(t.stack.mocks.as_ref().unwrap().kieai.snapshot().accepted, 1);
}
