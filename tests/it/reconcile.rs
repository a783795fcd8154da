//! Lost callbacks are recovered: with every provider callback lost on
//! purpose (`MOCK_FAULTS=lost=1`), the reconciler asks the providers once
//! the callbacks are overdue and the run is published anyway, each job
//! marked as settled by poll — on SQLite and on Postgres (the AWS path on
//! moto is in `aws_path.rs`). A callback that comes late, after the poll,
//! changes nothing.
use myloware::domain::{RunStatus, SettledBy};
use myloware::pipeline::Evidence;
use myloware_tests::{PostgresTestDb, TestStack};

/// The reconciler's settings for the tests: overdue at once, swept often.
const RECONCILE: [(&str, &str); 3] = [
    ("MOCK_FAULTS", "lost=1"),
    ("RECONCILE_AFTER_SECS", "0.3"),
    ("RECONCILE_INTERVAL_SECS", "0.2"),
];

/// Runs test-video-gen to its end with every callback lost.
async fn published_without_callbacks(extra: &[(&str, &str)]) -> (TestStack, Evidence) {
    let mut vars: Vec<(&str, &str)> = RECONCILE.to_vec();
    vars.push(("MOCK_LATENCY_MS", "20"));
    vars.extend_from_slice(extra);
    let t = TestStack::start(&vars).await;
    let id = t.start_run("test-video-gen").await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = t.wait_for_status(&id, RunStatus::Published).await;
    (t, e)
}

fn assert_settled_by_poll(e: &Evidence) {
    assert!(e.provider_jobs.len() >= 4, "{:?}", e.provider_jobs);
    for job in &e.provider_jobs {
        assert_eq!(job.settled_by, Some(SettledBy::Poll), "{job:?}");
        assert!(job.checks >= 1, "{job:?}");
        assert_eq!(job.next_check_at, None, "settled: never due again");
    }
    assert!(
        e.webhook_events.is_empty(),
        "no callback ever came: {:?}",
        e.webhook_events
    );
    // The results are the same a callback would have written.
    for (kind, n) in [("kieai.clip", 2), ("render.url", 1), ("publish.url", 2)] {
        assert_eq!(crate::pipeline::count(e, kind), n, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_callback_is_recovered_by_the_reconciler_on_sqlite() {
    let (t, e) = published_without_callbacks(&[]).await;
    assert_settled_by_poll(&e);
    let mocks = t.stack.mocks.as_ref().unwrap();
    assert!(mocks.kieai.snapshot().callbacks_lost >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_callback_is_recovered_by_the_reconciler_on_postgres() {
    if !myloware_tests::postgres_enabled() {
        return;
    }
    let db = PostgresTestDb::create().await;
    let (t, e) = published_without_callbacks(&[("DATABASE_URL", &db.url)]).await;
    assert_settled_by_poll(&e);
    t.stack.shutdown().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callback_after_the_poll_changes_nothing() {
    let (t, e) = published_without_callbacks(&[]).await;
    let task = e
        .provider_jobs
        .iter()
        .find(|j| j.provider.as_str() == "kieai")
        .unwrap()
        .job_id
        .clone();
    // The lost callback, late: verified, stored, and nothing settled twice.
    let ts = chrono::Utc::now().timestamp();
    let signature = myloware::webhooks::kieai::sign(
        &secrecy::SecretString::from("test-kieai-secret-0123456789"),
        &task,
        ts,
    );
    let body = serde_json::json!({ "code": 200, "msg": "success",
        "data": { "taskId": task, "info": { "resultUrls": ["https://mock-cdn.myloware.local/kieai/late.mp4"] } } });
    let response = t
        .client
        .http
        .post(format!("{}/v1/webhooks/kieai", t.client.base))
        .header("X-Webhook-Timestamp", ts.to_string())
        .header("X-Webhook-Signature", signature)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = e.run.run_id.to_string();
    let after = t
        .wait_for(&id, 10, "the late callback handled", |e| {
            e.webhook_events
                .iter()
                .any(|w| w.status.as_str() == "processed")
        })
        .await;
    assert_eq!(crate::pipeline::count(&after, "kieai.clip"), 2);
    let job = after
        .provider_jobs
        .iter()
        .find(|j| j.job_id == task)
        .unwrap();
    assert_eq!(
        job.settled_by,
        Some(SettledBy::Poll),
        "the poll's settlement stands"
    );
    assert_eq!(after.run.status, RunStatus::Published);
}
