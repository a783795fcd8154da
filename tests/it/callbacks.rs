//! Callbacks as the internet delivers them: forged, unsigned where a
//! signature is due, duplicated, late, out of order, for jobs nobody
//! submitted. Each must leave exactly the right artifacts.
use std::time::Duration;

use chrono::Utc;
use myloware::domain::{RunStatus, SignatureStatus, WebhookEventStatus};
use myloware_tests::TestStack;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::pipeline::count;

/// POSTs a kie.ai callback for `task_id`, signed with `secret` (or not).
async fn kieai_callback(
    t: &TestStack,
    task_id: &str,
    code: i64,
    secret: Option<&str>,
) -> (u16, Value) {
    let body = json!({ "code": code, "msg": if code == 200 { "success" } else { "failed" },
        "data": { "taskId": task_id, "info": { "resultUrls": ["https://evil.example/x.mp4"] } } });
    let mut request = t
        .client
        .http
        .post(format!("{}/v1/webhooks/kieai", t.client.base))
        .json(&body);
    if let Some(secret) = secret {
        let ts = Utc::now().timestamp();
        let signature =
            myloware::webhooks::kieai::sign(&SecretString::from(secret.to_owned()), task_id, ts);
        request = request
            .header("X-Webhook-Timestamp", ts.to_string())
            .header("X-Webhook-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// POSTs a Shotstack callback to the URL the run gave Shotstack (with the
/// run's callback token).
async fn shotstack_callback(t: &TestStack, run: &str, body: Value) -> (u16, Value) {
    let token = myloware::hitl::HitlSigner::new(SecretString::from("test-hitl-secret-0123456789"))
        .callback_token("shotstack", run.parse().unwrap());
    shotstack_callback_to(t, &format!("?run={run}&token={token}"), body).await
}

/// POSTs a Shotstack callback with `query` on the URL.
async fn shotstack_callback_to(t: &TestStack, query: &str, body: Value) -> (u16, Value) {
    let response = t
        .client
        .http
        .post(format!("{}/v1/webhooks/shotstack{query}", t.client.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_duplicated_late_and_out_of_order_callbacks_leave_exactly_the_right_artifacts() {
    let t = TestStack::start(&[]).await;
    let run = t.start_run("test-video-gen").await;
    let id = run["run_id"].as_str().unwrap().to_owned();
    let done = t.wait_for_status(&id, RunStatus::Published).await;
    let clips_before = count(&done, "kieai.clip");
    let events_before = done.webhook_events.len();
    let task = done
        .provider_jobs
        .iter()
        .find(|j| j.provider.as_str() == "kieai")
        .unwrap()
        .job_id
        .clone();
    let render = done
        .provider_jobs
        .iter()
        .find(|j| j.provider.as_str() == "shotstack")
        .unwrap()
        .job_id
        .clone();
    let secret = "test-kieai-secret-0123456789";

    // Forged: a signature made with another key.
    let (status, body) = kieai_callback(&t, &task, 200, Some("someone-else-0123456789")).await;
    assert_eq!(status, 401, "{body}");
    // Missing: no signature headers at all.
    let (status, _) = kieai_callback(&t, &task, 200, None).await;
    assert_eq!(status, 401);

    // Duplicated 10×, concurrently: the genuine callback again.
    let answers =
        futures::future::join_all((0..10).map(|_| kieai_callback(&t, &task, 200, Some(secret))))
            .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["status"], "duplicate", "{body}");
    }

    // Late and contradictory: a signed "failed" callback for a settled job.
    let (status, body) = kieai_callback(&t, &task, 501, Some(secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted");

    // Out of order and late for the render: the CDN copy, then the render again.
    let (status, body) = shotstack_callback(
        &t,
        &id,
        json!({ "type": "serve", "action": "copy", "id": "e4433cbf-e501-76a2-ac8b-715d26997540", "render": render, "owner": "x",
                "status": "ready", "url": "https://cdn.example/copy.mp4", "error": null, "completed": "2026-11-28T00:00:00Z" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = shotstack_callback(
        &t,
        &id,
        json!({ "type": "edit", "action": "render", "id": render, "owner": "x", "status": "done",
                "url": "https://cdn.example/r.mp4", "error": null, "completed": "2026-11-28T00:00:00Z" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"], "duplicate",
        "the mock delivered this render callback already"
    );

    // Unknown job: kept as an orphan.
    let (status, body) = kieai_callback(&t, "no-such-task", 200, Some(secret)).await;
    assert_eq!(status, 200, "{body}");
    let orphan_id = body["event_id"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = t
        .wait_for(&id, 20, "every callback processed", |e| {
            e.webhook_events
                .iter()
                .all(|ev| ev.status != WebhookEventStatus::Received)
        })
        .await;
    assert_eq!(count(&after, "kieai.clip"), clips_before, "no clip twice");
    assert_eq!(
        count(&after, "kieai.error"),
        0,
        "a late failure does not undo a success"
    );
    assert_eq!(count(&after, "render.url"), 1);
    assert_eq!(count(&after, "publish.url"), 2);
    assert_eq!(after.run.status, RunStatus::Published);
    let job = after
        .provider_jobs
        .iter()
        .find(|j| j.job_id == task)
        .unwrap();
    assert_eq!(job.status.as_str(), "succeeded");

    let rejected = after
        .webhook_events
        .iter()
        .filter(|e| e.signature_status == SignatureStatus::Rejected)
        .count();
    let missing = after
        .webhook_events
        .iter()
        .filter(|e| e.signature_status == SignatureStatus::Missing)
        .count();
    assert_eq!(
        (rejected, missing),
        (1, 1),
        "refused callbacks are kept, as evidence"
    );
    for e in after.webhook_events.iter().filter(|e| {
        matches!(
            e.signature_status,
            SignatureStatus::Rejected | SignatureStatus::Missing
        )
    }) {
        assert_eq!(
            e.status,
            WebhookEventStatus::Ignored,
            "a refused callback is never acted on"
        );
    }
    // 1 forged + 1 missing + 1 late failure + 1 CDN copy = 4 new events for
    // the run; the 11 duplicates added none.
    assert_eq!(after.webhook_events.len(), events_before + 4);

    let store = myloware::store::connect(&t.config().database)
        .await
        .unwrap();
    let orphan = t
        .wait_orphan(store.as_ref(), orphan_id.parse().unwrap())
        .await;
    assert_eq!(orphan.status, WebhookEventStatus::Orphaned);
    assert_eq!(orphan.run_id, None);
}

trait OrphanWait {
    async fn wait_orphan(
        &self,
        store: &dyn myloware::store::Store,
        id: uuid::Uuid,
    ) -> myloware::domain::WebhookEvent;
}

impl OrphanWait for TestStack {
    async fn wait_orphan(
        &self,
        store: &dyn myloware::store::Store,
        id: uuid::Uuid,
    ) -> myloware::domain::WebhookEvent {
        for _ in 0..100 {
            let event = store.get_webhook_event(id).await.unwrap().unwrap();
            if event.status != WebhookEventStatus::Received {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the orphan callback was never processed");
    }
}

/// A verified callback whose event was stored but never handled (the process
/// stopped between answering the provider and handling it; the local queue
/// keeps no copy of its message): the next stack to start handles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callback_stored_but_never_handled_is_handled_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let vars = myloware_tests::stack_vars(dir.path(), &[]);
    let config = myloware_tests::config_from(&vars);
    let (run_id, event_id) = {
        let store = myloware::store::open(&config.database).await.unwrap().store;
        let run = myloware_tests::running_run(store.as_ref(), "aismr").await;
        store
            .append_artifact(publish_request(run.run_id, "up-1", &["tiktok"]))
            .await
            .unwrap();
        let event_id = stored_tiktok_callback(
            store.as_ref(),
            run.run_id,
            "up-1",
            "https://www.tiktok.com/@brand/video/1",
        )
        .await;
        (run.run_id, event_id)
    };

    let t = myloware_tests::TestStack::start_with(
        dir,
        vars,
        myloware::wiring::StackOptions::ephemeral(),
    )
    .await;
    let e = t
        .wait_for(
            &run_id.to_string(),
            10,
            "the stored callback handled",
            |e| {
                e.webhook_events
                    .iter()
                    .any(|w| w.id == event_id && w.status == WebhookEventStatus::Processed)
            },
        )
        .await;
    let job = e.provider_jobs.iter().find(|j| j.job_id == "up-1").unwrap();
    assert_eq!(job.status.as_str(), "succeeded", "{job:?}");
    let urls: Vec<_> = e
        .artifacts
        .iter()
        .filter(|a| a.artifact_type.as_str() == "publish.url")
        .filter_map(|a| a.url.as_deref())
        .collect();
    assert_eq!(urls, ["https://www.tiktok.com/@brand/video/1"]);
}

/// An upload-post job `job_id` of Quinn's (no task) and a verified tiktok
/// result for it at `url`, stored `received` as a callback nobody handled
/// yet; the event's id.
async fn stored_tiktok_callback(
    store: &dyn myloware::store::Store,
    run_id: myloware::domain::RunId,
    job_id: &str,
    url: &str,
) -> uuid::Uuid {
    use myloware::domain::{NewProviderJob, NewWebhookEvent, Persona, Provider};

    store
        .register_provider_job(NewProviderJob {
            provider: Provider::UploadPost,
            job_id: job_id.into(),
            run_id,
            persona: Persona::Quinn,
            task_token: None,
            check_at: Utc::now() + chrono::Duration::minutes(2),
        })
        .await
        .unwrap();
    store
        .record_webhook_event(NewWebhookEvent {
            run_id: Some(run_id),
            provider: Provider::UploadPost,
            idempotency_key: format!("upload-post:{job_id}:tiktok"),
            provider_job_id: Some(job_id.into()),
            signature_status: SignatureStatus::Verified,
            headers: json!({}),
            payload: json!({ "event": "upload_completed", "job_id": job_id, "platform": "tiktok",
                "result": { "success": true, "url": url } }),
            status: WebhookEventStatus::Received,
        })
        .await
        .unwrap()
        .event()
        .id
}

/// The `publish.request` Quinn's publish tool records for upload-post job
/// `job_id`.
fn publish_request(
    run_id: myloware::domain::RunId,
    job_id: &str,
    platforms: &[&str],
) -> myloware::domain::NewArtifact {
    myloware::domain::NewArtifact::new(
        run_id,
        "publish.request".parse().unwrap(),
        json!({ "job_id": job_id, "platforms": platforms }),
    )
    .provider(myloware::domain::Provider::UploadPost)
    .persona(myloware::domain::Persona::Quinn)
}

/// An upload-post callback handled before its job's publish request is
/// recorded cannot know which platforms are still owed: it records its
/// platform's result but leaves the job pending, and settles it once the
/// request is there (the queue's retry, a moment later).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_callback_waits_for_its_publish_request() {
    let dir = tempfile::tempdir().unwrap();
    let vars = myloware_tests::stack_vars(dir.path(), &[]);
    let config = myloware_tests::config_from(&vars);
    let run_id = {
        let store = myloware::store::open(&config.database).await.unwrap().store;
        let run = myloware_tests::running_run(store.as_ref(), "aismr").await;
        stored_tiktok_callback(
            store.as_ref(),
            run.run_id,
            "up-2",
            "https://www.tiktok.com/@brand/video/2",
        )
        .await;
        run.run_id
    };

    let t = myloware_tests::TestStack::start_with(
        dir,
        vars,
        myloware::wiring::StackOptions::ephemeral(),
    )
    .await;
    let run = run_id.to_string();
    t.wait_for(&run, 10, "tiktok's result recorded", |e| {
        count(e, "publish.url") == 1
    })
    .await;
    // Settling would follow the result's record at once, in the same handling.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = t.evidence(&run).await;
    let job = e.provider_jobs.iter().find(|j| j.job_id == "up-2").unwrap();
    assert_eq!(
        job.status.as_str(),
        "pending",
        "settled without its request: {job:?}"
    );

    t.stack
        .pipeline
        .store
        .append_artifact(publish_request(run_id, "up-2", &["tiktok"]))
        .await
        .unwrap();
    let e = t
        .wait_for(&run, 10, "the job settled", |e| {
            e.provider_jobs
                .iter()
                .any(|j| j.job_id == "up-2" && j.status.as_str() == "succeeded")
        })
        .await;
    assert_eq!(count(&e, "publish.url"), 1, "the result recorded once");
    assert!(e
        .webhook_events
        .iter()
        .all(|w| w.status == WebhookEventStatus::Processed));
}
