//! The `Store` conformance suite: written once, run against every adapter.
//! Each case is a plain async function over a fresh store; `conformance!`
//! instantiates it per adapter.
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use myloware::domain::{
    ArtifactType, Gate, HitlDecision, JobCode, JobStatus, NewArtifact, NewHitlRequest,
    NewProviderJob, NewRun, NewWebhookEvent, Persona, Project, Provider, ProviderJob,
    ProvidersMode, RunId, RunStatus, SettledBy, SignatureStatus, WebhookEventStatus,
};
use myloware::store::{
    Decided, Decision, JobOutcome, Recorded, RunFilter, Settled, Store, StoreError, Transition,
};
use myloware_tests::StoreUnderTest;
use serde_json::json;
use uuid::Uuid;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { myloware_tests::on_sqlite(super::$case).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { myloware_tests::on_postgres(super::$case).await })*
        }
        mod dynamodb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { myloware_tests::on_dynamodb(super::$case).await })*
        }
    };
}

conformance!(
    runs_are_created_pending_with_a_job_code,
    job_codes_are_unique_and_findable,
    a_run_id_is_created_once,
    runs_list_newest_first_with_filters_and_pages,
    status_changes_follow_the_lifecycle,
    racing_status_changes_have_one_winner,
    a_failed_run_goes_back_to_running_only_by_one_redrive,
    a_refused_status_change_writes_nothing,
    results_and_execution_ids_are_kept,
    artifacts_append_in_order_and_keep_their_json,
    artifacts_of_some_types_list_in_order,
    an_artifact_is_appended_once_per_key,
    concurrent_writes_commit_or_fail_each_alone,
    an_artifact_for_a_missing_run_is_refused,
    webhook_events_are_recorded_once,
    racing_webhook_events_insert_exactly_once,
    orphan_webhook_events_are_kept_and_finished,
    narrow_reads_agree_with_the_whole_rows,
    received_webhook_events_list_what_is_still_owed,
    provider_jobs_settle_exactly_once,
    rebinding_leaves_failed_jobs_with_their_task,
    a_settlement_finishes_its_event_while_the_task_waits_for_others,
    racing_last_settlements_leave_their_task_owed,
    racing_settlements_have_one_winner,
    due_jobs_are_claimed_once_per_lease,
    a_settled_job_is_never_due_and_says_how_it_settled,
    racing_claims_have_one_winner_per_job,
    orphaned_events_are_adopted_once_when_their_job_appears,
    hitl_gates_are_decided_once,
    undelivered_decisions_are_listed_until_the_engine_takes_them,
    a_recorded_gate_leaves_its_run_awaiting_approval,
    racing_hitl_decisions_have_one_winner,
    prune_deletes_only_old_finished_runs,
    data_survives_reopening,
    conversations_keep_their_order_per_user,
    spans_open_close_and_list_in_order,
    a_span_closes_once,
    closing_an_unknown_span_is_not_found,
    spans_go_with_their_pruned_run,
);

fn project(name: &str) -> Project {
    name.parse().unwrap()
}

fn new_run(name: &str) -> NewRun {
    NewRun::new(
        project(name),
        json!({"prompt": "a glass apple"}),
        ProvidersMode::Mock,
    )
}

async fn running_run(store: &dyn Store) -> RunId {
    myloware_tests::running_run(store, "aismr").await.run_id
}

fn webhook(run_id: Option<RunId>, key: &str) -> NewWebhookEvent {
    NewWebhookEvent {
        run_id,
        provider: Provider::KieAi,
        idempotency_key: key.to_owned(),
        provider_job_id: Some("task-1".into()),
        signature_status: SignatureStatus::Verified,
        headers: json!({"x-webhook-timestamp": "1764336000"}),
        payload: json!({"code": 200, "data": {"taskId": "task-1"}}),
        status: WebhookEventStatus::Received,
    }
}

async fn runs_are_created_pending_with_a_job_code(t: StoreUnderTest) {
    let store = t.store;
    let new = new_run("test-video-gen").for_user("dev");
    let run = store.create_run(new.clone()).await.unwrap();
    assert_eq!(run.run_id, new.run_id);
    assert_eq!(run.status, RunStatus::Pending);
    assert!(
        run.job_code.as_str().starts_with("TVG-"),
        "{}",
        run.job_code
    );
    assert_eq!(run.user_id.as_deref(), Some("dev"));
    assert_eq!(run.input, json!({"prompt": "a glass apple"}));
    assert_eq!(run.created_at, run.updated_at);
    assert_eq!(store.get_run(run.run_id).await.unwrap(), Some(run));
    assert_eq!(store.get_run(RunId::new()).await.unwrap(), None);
}

async fn job_codes_are_unique_and_findable(t: StoreUnderTest) {
    let store = t.store;
    let mut codes = HashSet::new();
    for _ in 0..40 {
        let run = store.create_run(new_run("aismr")).await.unwrap();
        assert!(
            codes.insert(run.job_code.clone()),
            "duplicate {}",
            run.job_code
        );
        let found = store.find_run_by_job_code(&run.job_code).await.unwrap();
        assert_eq!(found.map(|r| r.run_id), Some(run.run_id));
    }
    let absent: JobCode = "ZZ-ZZZ999".parse().unwrap();
    assert_eq!(store.find_run_by_job_code(&absent).await.unwrap(), None);
}

async fn a_run_id_is_created_once(t: StoreUnderTest) {
    let new = new_run("aismr");
    t.store.create_run(new.clone()).await.unwrap();
    let err = t.store.create_run(new).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
}

async fn runs_list_newest_first_with_filters_and_pages(t: StoreUnderTest) {
    let store = t.store;
    let mut created = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 {
            "aismr"
        } else {
            "test-video-gen"
        };
        created.push(store.create_run(new_run(name)).await.unwrap().run_id);
    }
    store
        .transition_run(Transition::new(
            created[6],
            RunStatus::Pending,
            RunStatus::Running,
        ))
        .await
        .unwrap();

    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    let ids: Vec<RunId> = all.runs.iter().map(|r| r.run_id).collect();
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(ids, newest_first);
    assert_eq!(all.next, None);

    let aismr = RunFilter {
        project: Some(project("aismr")),
        ..Default::default()
    };
    let page = store.list_runs(&aismr).await.unwrap();
    assert_eq!(page.runs.len(), 4);
    assert!(page.runs.iter().all(|r| r.project.as_str() == "aismr"));

    let running = RunFilter {
        status: Some(RunStatus::Running),
        ..Default::default()
    };
    let page = store.list_runs(&running).await.unwrap();
    assert_eq!(
        page.runs.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![created[6]]
    );

    let mut seen = Vec::new();
    let mut filter = RunFilter {
        limit: Some(3),
        ..Default::default()
    };
    loop {
        let page = store.list_runs(&filter).await.unwrap();
        assert!(page.runs.len() <= 3);
        seen.extend(page.runs.iter().map(|r| r.run_id));
        match page.next {
            Some(cursor) => filter.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, newest_first, "pages cover every run once, in order");
}

async fn status_changes_follow_the_lifecycle(t: StoreUnderTest) {
    let store = t.store;
    let run = store.create_run(new_run("aismr")).await.unwrap();
    let id = run.run_id;
    use RunStatus::*;
    for (from, to) in [
        (Pending, Running),
        (Running, AwaitingApproval),
        (AwaitingApproval, Running),
        (Running, Published),
    ] {
        let changed = store
            .transition_run(Transition::new(id, from, to))
            .await
            .unwrap();
        assert_eq!(changed.status, to);
        assert!(changed.updated_at >= changed.created_at);
    }
    let err = store
        .transition_run(Transition::new(id, Published, Running))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IllegalTransition { .. }),
        "{err:?}"
    );
    let err = store
        .transition_run(Transition::new(id, Running, Failed))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: Running,
                actual: Published
            }
        ),
        "{err:?}"
    );
    let err = store
        .transition_run(Transition::new(RunId::new(), Pending, Running))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(store.get_run(id).await.unwrap().unwrap().status, Published);
}

async fn racing_status_changes_have_one_winner(t: StoreUnderTest) {
    let store = t.store;
    let id = store.create_run(new_run("aismr")).await.unwrap().run_id;
    let attempts = (0..16).map(|i| {
        let store = Arc::clone(&store);
        let to = if i % 2 == 0 {
            RunStatus::Running
        } else {
            RunStatus::Cancelled
        };
        tokio::spawn(async move {
            store
                .transition_run(Transition::new(id, RunStatus::Pending, to))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one status change wins");
    for err in lost.into_iter().map(Result::unwrap_err) {
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    expected: RunStatus::Pending,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let winner = won.into_iter().next().unwrap().unwrap();
    assert_eq!(
        store.get_run(id).await.unwrap().unwrap().status,
        winner.status
    );
}

async fn a_failed_run_goes_back_to_running_only_by_one_redrive(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    use RunStatus::*;
    store
        .transition_run(Transition::new(id, Running, Failed))
        .await
        .unwrap();
    let err = store
        .transition_run(Transition::new(id, Failed, Running))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IllegalTransition { .. }),
        "{err:?}"
    );
    let redrives = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.transition_run(Transition::redrive(id)).await })
    });
    let results: Vec<_> = futures::future::join_all(redrives)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "one redrive wins"
    );
    for err in results.into_iter().filter_map(Result::err) {
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    expected: Failed,
                    actual: Running
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(store.get_run(id).await.unwrap().unwrap().status, Running);
    // A published run is not redriven.
    store
        .transition_run(Transition::new(id, Running, Published))
        .await
        .unwrap();
    let err = store
        .transition_run(Transition::redrive(id))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                actual: Published,
                ..
            }
        ),
        "{err:?}"
    );
}

async fn a_refused_status_change_writes_nothing(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let failure = NewArtifact::new(id, ArtifactType::RUN_FAILED, json!({"error": "boom"}));
    let err = store
        .transition_run(
            Transition::new(id, RunStatus::AwaitingApproval, RunStatus::Failed)
                .error("boom")
                .result(json!({"error": "boom"}))
                .artifact(failure.clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(
        (run.status, run.error, run.result),
        (RunStatus::Running, None, None)
    );
    assert!(
        store.list_artifacts(id).await.unwrap().is_empty(),
        "no artifact after a refusal"
    );

    // The same change from the right status writes all of it.
    let run = store
        .transition_run(
            Transition::new(id, RunStatus::Running, RunStatus::Failed)
                .error("boom")
                .artifact(failure),
        )
        .await
        .unwrap();
    assert_eq!(run.error.as_deref(), Some("boom"));
    let artifacts = store.list_artifacts(id).await.unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0].artifact_type, ArtifactType::RUN_FAILED);

    // A status change whose artifact cannot be written is rolled back whole.
    let other = running_run(store.as_ref()).await;
    let bad = NewArtifact::new(RunId::new(), ArtifactType::RUN_FAILED, json!({}));
    let err = store
        .transition_run(Transition::new(other, RunStatus::Running, RunStatus::Failed).artifact(bad))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(
        store.get_run(other).await.unwrap().unwrap().status,
        RunStatus::Running
    );
}

async fn results_and_execution_ids_are_kept(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let result = json!({"clips": ["a.mp4", "b.mp4"], "render_url": "https://cdn/x.mp4"});
    let run = store.set_run_result(id, result.clone()).await.unwrap();
    assert_eq!(run.result, Some(result));
    let run = store
        .set_execution_id(id, "arn:aws:states:local:execution:aismr:x")
        .await
        .unwrap();
    assert_eq!(
        run.execution_id.as_deref(),
        Some("arn:aws:states:local:execution:aismr:x")
    );
    let err = store
        .set_run_result(RunId::new(), json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn artifacts_append_in_order_and_keep_their_json(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let metadata = json!({"prompt": "глассовое яблоко 🍏", "nested": {"n": [1, 2.5, null, true]}});
    let first = store
        .append_artifact(
            NewArtifact::new(id, ArtifactType::KIEAI_JOB, metadata.clone())
                .provider(Provider::KieAi)
                .persona(Persona::Riley),
        )
        .await
        .unwrap();
    let custom: ArtifactType = "shotstack.cdn_copy".parse().unwrap();
    let second = store
        .append_artifact(
            NewArtifact::new(id, custom.clone(), json!({}))
                .url("https://cdn.example/x.mp4")
                .checksum("sha256:abc"),
        )
        .await
        .unwrap();
    let listed = store.list_artifacts(id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second]);
    assert_eq!(listed[0].metadata, metadata);
    assert_eq!(listed[0].provider, Some(Provider::KieAi));
    assert_eq!(listed[0].persona, Some(Persona::Riley));
    assert_eq!(listed[1].artifact_type, custom);
    assert_eq!(listed[1].url.as_deref(), Some("https://cdn.example/x.mp4"));
}

async fn an_artifact_is_appended_once_per_key(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let other = running_run(store.as_ref()).await;
    let result = |run, platform: &str| {
        NewArtifact::new(
            run,
            ArtifactType::PUBLISH_URL,
            json!({ "platform": platform }),
        )
        .provider(Provider::UploadPost)
        .url(format!("https://social.example/{platform}"))
    };
    let first = store
        .append_artifact_once(result(id, "tiktok"), "publish:job-1:tiktok")
        .await
        .unwrap()
        .expect("recorded the first time");
    assert_eq!(
        store
            .append_artifact_once(result(id, "tiktok"), "publish:job-1:tiktok")
            .await
            .unwrap(),
        None,
        "the same key again records nothing"
    );
    // Reported by several paths at once: one of them records it.
    let racing = futures::future::join_all(
        (0..8).map(|_| store.append_artifact_once(result(id, "youtube"), "publish:job-1:youtube")),
    )
    .await;
    assert_eq!(
        racing.iter().filter(|r| matches!(r, Ok(Some(_)))).count(),
        1,
        "{racing:?}"
    );
    assert!(racing.iter().all(Result::is_ok), "{racing:?}");
    // Keys belong to their run; plain appends are not limited.
    assert!(store
        .append_artifact_once(result(other, "tiktok"), "publish:job-1:tiktok")
        .await
        .unwrap()
        .is_some());
    store.append_artifact(result(id, "tiktok")).await.unwrap();
    let listed = store.list_artifacts(id).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0], first);
    let missing = store
        .append_artifact_once(result(RunId::new(), "x"), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
}

async fn artifacts_of_some_types_list_in_order(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let other = running_run(store.as_ref()).await;
    let caption: ArtifactType = "caption.text".parse().unwrap();
    let mut appended = Vec::new();
    for (run, kind) in [
        (id, ArtifactType::KIEAI_JOB),
        (id, caption.clone()),
        (other, ArtifactType::KIEAI_JOB),
        (id, ArtifactType::KIEAI_JOB),
        (id, ArtifactType::RENDER_URL),
    ] {
        appended.push(
            store
                .append_artifact(NewArtifact::new(run, kind, json!({ "n": appended.len() })))
                .await
                .unwrap(),
        );
    }
    let wanted = store
        .list_artifacts_of(id, &["kieai.job", "render.url"])
        .await
        .unwrap();
    assert_eq!(
        wanted,
        vec![
            appended[0].clone(),
            appended[3].clone(),
            appended[4].clone()
        ]
    );
    assert_eq!(
        store
            .list_artifacts_of(id, &["caption.text"])
            .await
            .unwrap(),
        vec![appended[1].clone()]
    );
    assert!(store
        .list_artifacts_of(id, &["publish.url"])
        .await
        .unwrap()
        .is_empty());
    assert!(store.list_artifacts_of(id, &[]).await.unwrap().is_empty());
}

/// Many writes at once (batched together where the adapter batches): each
/// answers for itself — a refused one does not undo or fail the others.
async fn concurrent_writes_commit_or_fail_each_alone(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..48 {
        let store = Arc::clone(&store);
        writes.spawn(async move {
            store
                .append_artifact(NewArtifact::new(
                    id,
                    ArtifactType::KIEAI_JOB,
                    json!({ "i": i }),
                ))
                .await
                .map(|_| "artifact")
        });
    }
    // Each job id twice: one registration wins, the other is a duplicate.
    for i in 0..16 {
        let store = Arc::clone(&store);
        writes.spawn(async move {
            store
                .register_provider_job(NewProviderJob {
                    provider: Provider::KieAi,
                    job_id: format!("batch-{}", i / 2),
                    run_id: id,
                    persona: Persona::Riley,
                    task_token: None,
                    check_at: Utc::now() + Duration::minutes(2),
                })
                .await
                .map(|_| "job")
        });
    }
    let (mut artifacts, mut jobs, mut duplicates) = (0, 0, 0);
    while let Some(done) = writes.join_next().await {
        match done.unwrap() {
            Ok("artifact") => artifacts += 1,
            Ok(_) => jobs += 1,
            Err(StoreError::Duplicate { .. }) => duplicates += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((artifacts, jobs, duplicates), (48, 8, 8));
    assert_eq!(store.list_artifacts(id).await.unwrap().len(), 48);
    assert_eq!(store.list_provider_jobs(id).await.unwrap().len(), 8);
}

async fn an_artifact_for_a_missing_run_is_refused(t: StoreUnderTest) {
    let missing = RunId::new();
    let err = t
        .store
        .append_artifact(NewArtifact::new(
            missing,
            ArtifactType::RUN_START,
            json!({}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(t.store.list_artifacts(missing).await.unwrap().is_empty());
}

async fn webhook_events_are_recorded_once(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let first = store
        .record_webhook_event(webhook(Some(id), "kieai:task-1:1"))
        .await
        .unwrap();
    let Recorded::Inserted(inserted) = first else {
        panic!("first record must insert")
    };
    let mut again = webhook(Some(id), "kieai:task-1:1");
    again.payload = json!({"forged": "different body"});
    let second = store.record_webhook_event(again).await.unwrap();
    assert!(second.is_duplicate());
    assert_eq!(second.event(), &inserted, "the stored event is unchanged");

    // Same key from another provider is another event.
    let mut other = webhook(Some(id), "kieai:task-1:1");
    other.provider = Provider::Shotstack;
    assert!(!store
        .record_webhook_event(other)
        .await
        .unwrap()
        .is_duplicate());

    let events = store.list_webhook_events(id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].payload,
        json!({"code": 200, "data": {"taskId": "task-1"}})
    );
    assert_eq!(events[0].signature_status, SignatureStatus::Verified);
}

async fn racing_webhook_events_insert_exactly_once(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let attempts = (0..32).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.record_webhook_event(webhook(Some(id), "race")).await })
    });
    let results: Vec<Recorded> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let inserted = results.iter().filter(|r| !r.is_duplicate()).count();
    assert_eq!(inserted, 1, "exactly one of 32 concurrent records inserts");
    let ids: HashSet<_> = results.iter().map(|r| r.event().id).collect();
    assert_eq!(
        ids.len(),
        1,
        "every duplicate answers with the stored event"
    );
    assert_eq!(store.list_webhook_events(id).await.unwrap().len(), 1);
}

async fn received_webhook_events_list_what_is_still_owed(t: StoreUnderTest) {
    let store = t.store;
    if store.backend() == "dynamodb" {
        let err = store.received_webhook_events().await.unwrap_err();
        assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("dynamodb"), "{err}");
        return;
    }
    assert!(store.received_webhook_events().await.unwrap().is_empty());
    let id = running_run(store.as_ref()).await;
    let mut events = Vec::new();
    for key in ["first", "second", "third"] {
        let Recorded::Inserted(event) = store
            .record_webhook_event(webhook(Some(id), key))
            .await
            .unwrap()
        else {
            panic!("{key} must insert")
        };
        events.push(event);
    }
    let mut ignored = webhook(Some(id), "not-a-job-callback");
    ignored.status = WebhookEventStatus::Ignored;
    store.record_webhook_event(ignored).await.unwrap();
    store
        .finish_webhook_event(events[1].id, WebhookEventStatus::Processed, None, None)
        .await
        .unwrap();

    let owed = store.received_webhook_events().await.unwrap();
    assert_eq!(
        owed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![events[0].id, events[2].id],
        "oldest first, neither the processed nor the ignored one"
    );
    assert_eq!(owed[0], events[0], "the whole event, payload included");
}

async fn orphan_webhook_events_are_kept_and_finished(t: StoreUnderTest) {
    let store = t.store;
    let mut orphan = webhook(None, "shotstack:unknown-render");
    orphan.provider = Provider::Shotstack;
    orphan.signature_status = SignatureStatus::Unsigned;
    let Recorded::Inserted(event) = store.record_webhook_event(orphan).await.unwrap() else {
        panic!("orphan must insert")
    };
    assert_eq!(event.run_id, None);
    let finished = store
        .finish_webhook_event(
            event.id,
            WebhookEventStatus::Orphaned,
            Some("no job render-9"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(finished.status, WebhookEventStatus::Orphaned);
    assert_eq!(finished.error.as_deref(), Some("no job render-9"));
    assert!(finished.processed_at.is_some());
    assert_eq!(
        store.get_webhook_event(event.id).await.unwrap(),
        Some(finished.clone())
    );
    assert_eq!(
        store.get_webhook_event(uuid::Uuid::new_v4()).await.unwrap(),
        None
    );

    let err = store
        .record_webhook_event(webhook(Some(RunId::new()), "for-a-missing-run"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store
        .finish_webhook_event(
            uuid::Uuid::new_v4(),
            WebhookEventStatus::Processed,
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

/// A callback's path reads only a run's labels and an event's status: the
/// same values the whole rows hold, after they change too.
async fn narrow_reads_agree_with_the_whole_rows(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(store.get_run_labels(id).await.unwrap(), Some(run.labels()));
    assert_eq!(store.get_run_labels(RunId::new()).await.unwrap(), None);

    let Recorded::Inserted(event) = store
        .record_webhook_event(webhook(Some(id), "kieai:narrow:200"))
        .await
        .unwrap()
    else {
        panic!("a new key inserts")
    };
    assert_eq!(
        store.get_webhook_event_status(event.id).await.unwrap(),
        Some((WebhookEventStatus::Received, event.created_at))
    );
    store
        .finish_webhook_event(event.id, WebhookEventStatus::Processed, None, Some(id))
        .await
        .unwrap();
    assert_eq!(
        store.get_webhook_event_status(event.id).await.unwrap(),
        Some((WebhookEventStatus::Processed, event.created_at))
    );
    assert_eq!(
        store
            .get_webhook_event_status(Uuid::new_v4())
            .await
            .unwrap(),
        None
    );
}

/// Records that Riley's agent has ended in run `id` (the worker's
/// `persona.completed`).
async fn riley_has_ended(store: &dyn Store, id: RunId) {
    let ended = NewArtifact::new(
        id,
        ArtifactType::PERSONA_COMPLETED,
        json!({"summary": "done"}),
    )
    .persona(Persona::Riley);
    store.append_artifact(ended).await.unwrap();
}

fn job(run_id: RunId, job_id: &str) -> NewProviderJob {
    NewProviderJob {
        provider: Provider::KieAi,
        job_id: job_id.to_owned(),
        run_id,
        persona: Persona::Riley,
        task_token: Some("token-abc".into()),
        check_at: Utc::now() + Duration::minutes(2),
    }
}

async fn rebinding_leaves_failed_jobs_with_their_task(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    for job_id in ["ok", "failed", "waiting"] {
        store.register_provider_job(job(id, job_id)).await.unwrap();
    }
    for (job_id, outcome) in [
        ("ok", JobOutcome::Succeeded(json!({}))),
        ("failed", JobOutcome::Failed("no".into())),
    ] {
        store
            .settle_provider_job(Provider::KieAi, job_id, outcome, None, SettledBy::Callback)
            .await
            .unwrap();
    }
    let rebound = store
        .rebind_persona_jobs(id, Persona::Riley, "token-new")
        .await
        .unwrap();
    assert_eq!(rebound, 2);
    let ids = |jobs: Vec<ProviderJob>| {
        let mut ids: Vec<String> = jobs.into_iter().map(|j| j.job_id).collect();
        ids.sort();
        ids
    };
    let new = store.list_task_jobs(id, "token-new").await.unwrap();
    assert_eq!(ids(new), ["ok", "waiting"]);
    let old = store.list_task_jobs(id, "token-abc").await.unwrap();
    assert_eq!(ids(old), ["failed"]);
}

async fn provider_jobs_settle_exactly_once(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let registered = store
        .register_provider_job(job(id, "task-1"))
        .await
        .unwrap();
    assert_eq!(registered.status, JobStatus::Pending);
    store
        .register_provider_job(job(id, "task-2"))
        .await
        .unwrap();
    let err = store
        .register_provider_job(job(id, "task-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
    let err = store
        .register_provider_job(job(RunId::new(), "task-3"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    // A task's jobs as (submitted, still pending).
    let jobs_of = |token: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let jobs = store.list_task_jobs(id, token).await.unwrap();
            let pending = jobs.iter().filter(|j| j.status == JobStatus::Pending);
            (jobs.len(), pending.count())
        }
    };
    assert_eq!(jobs_of("token-abc").await, (2, 2), "two jobs wait");
    assert_eq!(
        jobs_of("token-other").await,
        (0, 0),
        "another task has none"
    );

    let found = store
        .find_provider_job(Provider::KieAi, "task-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.run_id, found.persona), (id, Persona::Riley));
    assert_eq!(found.task_token.as_deref(), Some("token-abc"));
    assert_eq!(
        store
            .find_provider_job(Provider::Shotstack, "task-1")
            .await
            .unwrap(),
        None
    );

    let clip = json!({"resultUrls": ["https://cdn/clip1.mp4"]});
    let Settled::Now(settled) = store
        .settle_provider_job(
            Provider::KieAi,
            "task-1",
            JobOutcome::Succeeded(clip.clone()),
            Some(NewArtifact::new(
                id,
                ArtifactType::KIEAI_CLIP,
                json!({"task_id": "task-1"}),
            )),
            SettledBy::Callback,
        )
        .await
        .unwrap()
    else {
        panic!("first settlement settles")
    };
    assert_eq!(
        (settled.status, settled.result.clone()),
        (JobStatus::Succeeded, Some(clip))
    );
    assert!(settled.settled_at.is_some());
    assert_eq!(settled.settled_by, Some(SettledBy::Callback));
    let again = store
        .settle_provider_job(
            Provider::KieAi,
            "task-1",
            JobOutcome::Failed("late".into()),
            Some(NewArtifact::new(
                id,
                ArtifactType::KIEAI_ERROR,
                json!({"task_id": "task-1"}),
            )),
            SettledBy::Callback,
        )
        .await
        .unwrap();
    let artifacts = store.list_artifacts(id).await.unwrap();
    assert_eq!(
        artifacts
            .iter()
            .map(|a| a.artifact_type.as_str())
            .collect::<Vec<_>>(),
        ["kieai.clip"],
        "the result artifact came with the settlement, and only once"
    );
    assert_eq!(
        again,
        Settled::Already(settled),
        "a late settlement changes nothing"
    );
    assert_eq!(jobs_of("token-abc").await, (2, 1), "task-2 still waits");

    let Settled::Now(failed) = store
        .settle_provider_job(
            Provider::KieAi,
            "task-2",
            JobOutcome::Failed("content policy".into()),
            None,
            SettledBy::Callback,
        )
        .await
        .unwrap()
    else {
        panic!("settles")
    };
    assert_eq!(failed.error.as_deref(), Some("content policy"));
    assert_eq!(
        jobs_of("token-abc").await,
        (2, 0),
        "every job of the task settled"
    );
    let err = store
        .settle_provider_job(
            Provider::KieAi,
            "nope",
            JobOutcome::Failed("x".into()),
            None,
            SettledBy::Callback,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let jobs = store.list_provider_jobs(id).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
        ["task-1", "task-2"]
    );

    // A task's jobs alone, as they stand, in the run's order.
    store
        .register_provider_job(NewProviderJob {
            task_token: Some("token-other".into()),
            ..job(id, "task-5")
        })
        .await
        .unwrap();
    assert_eq!(store.list_task_jobs(id, "token-abc").await.unwrap(), jobs);
    let other = store.list_task_jobs(id, "token-other").await.unwrap();
    assert_eq!(
        other
            .iter()
            .map(|j| (j.job_id.as_str(), j.status))
            .collect::<Vec<_>>(),
        [("task-5", JobStatus::Pending)]
    );
    assert_eq!(
        store.list_task_jobs(id, "token-none").await.unwrap(),
        Vec::new()
    );
}

async fn a_settlement_finishes_its_event_while_the_task_waits_for_others(t: StoreUnderTest) {
    let store = t.store;
    // DynamoDB keeps the default: the event is always left to the caller.
    let folds = store.backend() != "dynamodb";
    let id = running_run(store.as_ref()).await;
    for task in ["task-1", "task-2"] {
        store.register_provider_job(job(id, task)).await.unwrap();
    }
    let mut alone = job(id, "task-alone");
    alone.task_token = None;
    store.register_provider_job(alone).await.unwrap();
    let mut events = Vec::new();
    for key in [
        "kieai:task-1",
        "kieai:task-2",
        "kieai:task-1:late",
        "kieai:task-alone",
    ] {
        let Recorded::Inserted(event) = store
            .record_webhook_event(webhook(None, key))
            .await
            .unwrap()
        else {
            panic!("{key} must insert")
        };
        events.push(event);
    }
    let settle = |job_id: &'static str, event: Uuid| {
        let store = Arc::clone(&store);
        async move {
            let clip = json!({"urls": [format!("https://cdn/{job_id}.mp4")]});
            store
                .settle_provider_job_for_event(
                    Provider::KieAi,
                    job_id,
                    JobOutcome::Succeeded(clip),
                    Some(NewArtifact::new(
                        id,
                        ArtifactType::KIEAI_CLIP,
                        json!({"task_id": job_id}),
                    )),
                    event,
                )
                .await
                .unwrap()
        }
    };
    let status_of = |event: Uuid| {
        let store = Arc::clone(&store);
        async move { store.get_webhook_event(event).await.unwrap().unwrap() }
    };

    // Before the persona's agent has ended, its task's last job leaves
    // nothing owed on SQLite either: the worker completes the task after it
    // records the agent's end.
    let mut solo = job(id, "task-solo");
    solo.task_token = Some("token-solo".into());
    store.register_provider_job(solo).await.unwrap();
    let Recorded::Inserted(solo_event) = store
        .record_webhook_event(webhook(None, "kieai:task-solo"))
        .await
        .unwrap()
    else {
        panic!("kieai:task-solo must insert")
    };
    let early = settle("task-solo", solo_event.id).await;
    assert!(matches!(early.settled, Settled::Now(_)), "{early:?}");
    let waits_for_agent = store.backend() == "sqlite";
    assert_eq!(early.event_finished, waits_for_agent, "{early:?}");
    assert_eq!(
        status_of(solo_event.id).await.status,
        if waits_for_agent {
            WebhookEventStatus::Processed
        } else {
            WebhookEventStatus::Received
        }
    );
    riley_has_ended(store.as_ref(), id).await;

    let first = settle("task-1", events[0].id).await;
    assert!(matches!(first.settled, Settled::Now(_)), "{first:?}");
    assert_eq!(first.event_finished, folds, "task-2 still waits");
    let event = status_of(events[0].id).await;
    if folds {
        assert_eq!(event.status, WebhookEventStatus::Processed);
        assert_eq!(event.run_id, Some(id), "the event learns its run");
        assert!(event.processed_at.is_some());
    } else {
        assert_eq!(event.status, WebhookEventStatus::Received);
    }

    // Each of these leaves its event `received`, for the caller.
    for (job_id, event, settles_now, why) in [
        (
            "task-2",
            events[1].id,
            true,
            "the task's last job: the caller completes the task first",
        ),
        ("task-1", events[2].id, false, "settled before"),
        ("task-alone", events[3].id, true, "a job of no task"),
    ] {
        let done = settle(job_id, event).await;
        assert_eq!(
            matches!(done.settled, Settled::Now(_)),
            settles_now,
            "{why}: {done:?}"
        );
        assert!(!done.event_finished, "{why}");
        assert_eq!(
            status_of(event).await.status,
            WebhookEventStatus::Received,
            "{why}"
        );
    }

    let clips = store.list_artifacts_of(id, &["kieai.clip"]).await.unwrap();
    assert_eq!(
        clips.len(),
        4,
        "one clip per settlement, none for the late one"
    );
}

/// A task's last two jobs settled at once, by callbacks handled side by
/// side: each may see the other job still pending, but they must not both
/// finish their events, or neither caller completes the task and the run
/// waits for ever.
async fn racing_last_settlements_leave_their_task_owed(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    // The agent has ended: only the jobs keep the task waiting.
    riley_has_ended(store.as_ref(), id).await;
    for round in 0..24 {
        let token = format!("token-race-{round}");
        let mut settles = Vec::new();
        for side in ["a", "b"] {
            let job_id = format!("race-{round}-{side}");
            let mut new = job(id, &job_id);
            new.task_token = Some(token.clone());
            store.register_provider_job(new).await.unwrap();
            let Recorded::Inserted(event) = store
                .record_webhook_event(webhook(None, &format!("kieai:{job_id}")))
                .await
                .unwrap()
            else {
                panic!("{job_id}'s event must insert")
            };
            let store = Arc::clone(&store);
            settles.push(async move {
                tokio::spawn(async move {
                    store
                        .settle_provider_job_for_event(
                            Provider::KieAi,
                            &job_id,
                            JobOutcome::Succeeded(json!({"urls": []})),
                            None,
                            event.id,
                        )
                        .await
                })
                .await
                .unwrap()
                .unwrap()
            });
        }
        let [a, b]: [_; 2] = futures::future::join_all(settles).await.try_into().unwrap();
        assert!(
            matches!(a.settled, Settled::Now(_)) && matches!(b.settled, Settled::Now(_)),
            "round {round}: {a:?} {b:?}"
        );
        assert!(
            !(a.event_finished && b.event_finished),
            "round {round}: both events finished, so no caller completes task {token}"
        );
    }
}

async fn racing_settlements_have_one_winner(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    store.register_provider_job(job(id, "race")).await.unwrap();
    let attempts = (0..16).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .settle_provider_job(
                    Provider::KieAi,
                    "race",
                    JobOutcome::Succeeded(json!({"n": i})),
                    Some(NewArtifact::new(
                        id,
                        ArtifactType::KIEAI_CLIP,
                        json!({"n": i}),
                    )),
                    SettledBy::Callback,
                )
                .await
        })
    });
    let results: Vec<Settled> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter_map(|s| match s {
            Settled::Now(job) => Some(job.result.clone()),
            Settled::Already(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one settlement wins");
    assert_eq!(
        store.list_artifacts(id).await.unwrap().len(),
        1,
        "and writes its artifact once"
    );
    let stored = store
        .find_provider_job(Provider::KieAi, "race")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(stored.result), winners.into_iter().next());
}

/// `t` as the stores keep it: whole microseconds.
fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

/// Job `job_id` of run `run_id`, first due at `check_at`.
fn due_job(run_id: RunId, job_id: &str, check_at: DateTime<Utc>) -> NewProviderJob {
    NewProviderJob {
        check_at,
        ..job(run_id, job_id)
    }
}

fn ids(jobs: &[ProviderJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.job_id.as_str()).collect()
}

async fn due_jobs_are_claimed_once_per_lease(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let now = stored(Utc::now());
    // Registered out of order: the claim orders them by due time.
    for (job_id, due_in) in [("due-b", -10), ("later", 60), ("due-a", -30), ("due-c", 0)] {
        let check_at = now + Duration::seconds(due_in);
        let registered = store
            .register_provider_job(due_job(id, job_id, check_at))
            .await
            .unwrap();
        assert_eq!(
            (
                registered.next_check_at,
                registered.checks,
                registered.settled_by
            ),
            (Some(check_at), 0, None)
        );
    }
    let lease = now + Duration::seconds(30);

    let claimed = store.claim_due_provider_jobs(now, lease, 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        ["due-a", "due-b", "due-c"],
        "due ones, earliest first"
    );
    for job in &claimed {
        assert_eq!((job.checks, job.next_check_at), (1, Some(lease)), "{job:?}");
        assert_eq!(job.status, JobStatus::Pending);
        assert_eq!(job.task_token.as_deref(), Some("token-abc"));
        let found = store
            .find_provider_job(Provider::KieAi, &job.job_id)
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(job), "returned as written");
    }
    let before_lease_ends = now + Duration::seconds(29);
    assert_eq!(
        store
            .claim_due_provider_jobs(before_lease_ends, lease, 10)
            .await
            .unwrap(),
        [],
        "leased jobs are not claimed again before the lease ends"
    );

    let after_lease = lease + Duration::seconds(1);
    let next_lease = lease + Duration::seconds(60);
    let first = store
        .claim_due_provider_jobs(after_lease, next_lease, 2)
        .await
        .unwrap();
    assert_eq!(ids(&first), ["due-a", "due-b"], "the limit is honoured");
    let rest = store
        .claim_due_provider_jobs(after_lease, next_lease, 10)
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["due-c"]);
    for job in first.iter().chain(&rest) {
        assert_eq!(
            (job.checks, job.next_check_at),
            (2, Some(next_lease)),
            "{job:?}"
        );
    }
    let later = store
        .claim_due_provider_jobs(now + Duration::seconds(60), next_lease, 10)
        .await
        .unwrap();
    assert_eq!(ids(&later), ["later"]);
    assert_eq!(later[0].checks, 1);
    assert_eq!(
        store
            .claim_due_provider_jobs(after_lease, next_lease, 0)
            .await
            .unwrap(),
        []
    );
}

async fn a_settled_job_is_never_due_and_says_how_it_settled(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let now = stored(Utc::now());
    let overdue = now - Duration::seconds(5);
    for job_id in ["polled", "called-back", "waiting"] {
        store
            .register_provider_job(due_job(id, job_id, overdue))
            .await
            .unwrap();
    }
    let Settled::Now(polled) = store
        .settle_provider_job(
            Provider::KieAi,
            "polled",
            JobOutcome::Succeeded(json!({"resultUrls": []})),
            None,
            SettledBy::Poll,
        )
        .await
        .unwrap()
    else {
        panic!("a pending job settles")
    };
    assert_eq!(
        (polled.settled_by, polled.next_check_at),
        (Some(SettledBy::Poll), None)
    );
    let Recorded::Inserted(event) = store
        .record_webhook_event(webhook(None, "kieai:called-back"))
        .await
        .unwrap()
    else {
        panic!("a new key inserts")
    };
    let by_callback = store
        .settle_provider_job_for_event(
            Provider::KieAi,
            "called-back",
            JobOutcome::Failed("content policy".into()),
            None,
            event.id,
        )
        .await
        .unwrap();
    let Settled::Now(called_back) = by_callback.settled else {
        panic!("a pending job settles: {by_callback:?}")
    };
    assert_eq!(
        (called_back.settled_by, called_back.next_check_at),
        (Some(SettledBy::Callback), None)
    );
    for settled in [&polled, &called_back] {
        let found = store
            .find_provider_job(Provider::KieAi, &settled.job_id)
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(settled), "stored as answered");
    }

    let lease = now + Duration::seconds(30);
    let claimed = store.claim_due_provider_jobs(now, lease, 10).await.unwrap();
    assert_eq!(ids(&claimed), ["waiting"], "settled jobs are never due");

    let scheduled = store
        .schedule_provider_job_check(Provider::KieAi, "polled", overdue)
        .await
        .unwrap();
    assert!(!scheduled, "a settled job is left alone");
    assert_eq!(
        store
            .find_provider_job(Provider::KieAi, "polled")
            .await
            .unwrap(),
        Some(polled)
    );
    let much_later = now + Duration::minutes(10);
    assert!(store
        .schedule_provider_job_check(Provider::KieAi, "waiting", much_later)
        .await
        .unwrap());
    let waiting = store
        .find_provider_job(Provider::KieAi, "waiting")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (waiting.next_check_at, waiting.checks),
        (Some(much_later), 1)
    );
    let after_lease = lease + Duration::seconds(1);
    assert_eq!(
        store
            .claim_due_provider_jobs(after_lease, after_lease + Duration::seconds(30), 10)
            .await
            .unwrap(),
        [],
        "its due time moved past the lease"
    );
    let claimed = store
        .claim_due_provider_jobs(much_later, much_later + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), ["waiting"]);
    assert_eq!(claimed[0].checks, 2);

    let err = store
        .schedule_provider_job_check(Provider::KieAi, "nope", now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn racing_claims_have_one_winner_per_job(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let now = stored(Utc::now());
    let all: HashSet<String> = (0..12).map(|i| format!("race-{i:02}")).collect();
    for job_id in &all {
        let check_at = now - Duration::seconds(60);
        store
            .register_provider_job(due_job(id, job_id, check_at))
            .await
            .unwrap();
    }
    let lease = now + Duration::seconds(30);
    let claims = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.claim_due_provider_jobs(now, lease, 5).await })
    });
    let mut claimed = Vec::new();
    for jobs in futures::future::join_all(claims).await {
        claimed.extend(jobs.unwrap().unwrap().into_iter().map(|j| j.job_id));
    }
    let once: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        once.len(),
        claimed.len(),
        "no job claimed twice: {claimed:?}"
    );
    assert_eq!(once, all, "every due job claimed");
    let jobs = store.list_provider_jobs(id).await.unwrap();
    assert!(jobs.iter().all(|j| j.checks == 1), "{jobs:?}");
    assert_eq!(
        store.claim_due_provider_jobs(now, lease, 20).await.unwrap(),
        []
    );
}

/// A callback for provider job `job_id` of `provider`, kept `orphaned` (it
/// came before its job was registered).
async fn orphaned_callback(store: &dyn Store, provider: Provider, job_id: &str, key: &str) -> Uuid {
    let mut new = webhook(None, key);
    new.provider = provider;
    new.provider_job_id = Some(job_id.to_owned());
    let Recorded::Inserted(event) = store.record_webhook_event(new).await.unwrap() else {
        panic!("{key} must insert")
    };
    let error = format!("no job {job_id}");
    store
        .finish_webhook_event(event.id, WebhookEventStatus::Orphaned, Some(&error), None)
        .await
        .unwrap();
    event.id
}

async fn orphaned_events_are_adopted_once_when_their_job_appears(t: StoreUnderTest) {
    let store = t.store;
    let s = store.as_ref();
    let x_first = orphaned_callback(s, Provider::KieAi, "job-x", "kieai:job-x:1").await;
    let x_second = orphaned_callback(s, Provider::KieAi, "job-x", "kieai:job-x:2").await;
    let y = orphaned_callback(s, Provider::KieAi, "job-y", "kieai:job-y").await;
    let other_provider =
        orphaned_callback(s, Provider::Shotstack, "job-x", "shotstack:job-x").await;
    let mut handled = webhook(None, "kieai:job-x:handled");
    handled.provider_job_id = Some("job-x".into());
    let handled = store.record_webhook_event(handled).await.unwrap();
    let handled = store
        .finish_webhook_event(
            handled.event().id,
            WebhookEventStatus::Processed,
            None,
            None,
        )
        .await
        .unwrap();

    let adopted = store
        .adopt_orphaned_webhook_events(Provider::KieAi, "job-x")
        .await
        .unwrap();
    assert_eq!(
        adopted.iter().map(|e| e.id).collect::<Vec<_>>(),
        [x_first, x_second],
        "the job's orphans, oldest first"
    );
    for event in &adopted {
        assert_eq!(event.status, WebhookEventStatus::Received);
        assert_eq!((event.processed_at, event.error.as_deref()), (None, None));
        assert_eq!(event.provider_job_id.as_deref(), Some("job-x"));
        assert_eq!(
            store.get_webhook_event(event.id).await.unwrap().as_ref(),
            Some(event)
        );
    }
    assert_eq!(
        store
            .adopt_orphaned_webhook_events(Provider::KieAi, "job-x")
            .await
            .unwrap(),
        [],
        "adopted once"
    );
    for (event, status) in [
        (y, WebhookEventStatus::Orphaned),
        (other_provider, WebhookEventStatus::Orphaned),
        (handled.id, WebhookEventStatus::Processed),
    ] {
        let stored = store.get_webhook_event(event).await.unwrap().unwrap();
        assert_eq!(stored.status, status, "{stored:?}");
    }
    assert_eq!(
        store.get_webhook_event(handled.id).await.unwrap(),
        Some(handled)
    );

    let mut orphans = HashSet::new();
    for i in 0..3 {
        orphans.insert(
            orphaned_callback(s, Provider::KieAi, "job-z", &format!("kieai:job-z:{i}")).await,
        );
    }
    let adoptions = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .adopt_orphaned_webhook_events(Provider::KieAi, "job-z")
                .await
        })
    });
    let mut adopted = Vec::new();
    for events in futures::future::join_all(adoptions).await {
        adopted.extend(events.unwrap().unwrap().into_iter().map(|e| e.id));
    }
    assert_eq!(adopted.len(), 3, "each moved once: {adopted:?}");
    assert_eq!(adopted.into_iter().collect::<HashSet<_>>(), orphans);
}

fn gate(name: &str) -> Gate {
    name.parse().unwrap()
}

fn decision(d: HitlDecision, by: &str) -> Decision {
    Decision {
        decision: d,
        decided_by: by.to_owned(),
        comment: Some("looks good".into()),
    }
}

/// Run `id` waiting at gate `name`, without an artifact.
fn waiting_at(id: RunId, name: &str, token: Option<&str>) -> NewHitlRequest {
    NewHitlRequest {
        run_id: id,
        gate: gate(name),
        task_token: token.map(str::to_owned),
        artifact: None,
    }
}

async fn hitl_gates_are_decided_once(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let request = waiting_at(id, "ideate", Some("t1"));
    let recorded = store.record_hitl_request(request.clone()).await.unwrap();
    assert_eq!(recorded.decision, None);
    let refreshed = store
        .record_hitl_request(NewHitlRequest {
            task_token: Some("t2".into()),
            ..request.clone()
        })
        .await
        .unwrap();
    assert_eq!(refreshed.task_token.as_deref(), Some("t2"));
    assert_eq!(refreshed.requested_at, recorded.requested_at);

    let Decided::Now(decided) = store
        .decide_hitl(
            id,
            &gate("ideate"),
            decision(HitlDecision::Approved, "cli:dev"),
        )
        .await
        .unwrap()
    else {
        panic!("first decision decides")
    };
    assert_eq!(decided.decision, Some(HitlDecision::Approved));
    assert_eq!(decided.decided_by.as_deref(), Some("cli:dev"));
    let again = store
        .decide_hitl(
            id,
            &gate("ideate"),
            decision(HitlDecision::Rejected, "link"),
        )
        .await
        .unwrap();
    assert_eq!(again, Decided::Already(decided));

    let err = store.record_hitl_request(request).await.unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    let err = store
        .decide_hitl(
            id,
            &gate("prepublish"),
            decision(HitlDecision::Approved, "cli"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store
        .record_hitl_request(waiting_at(RunId::new(), "ideate", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(store.list_hitl_requests(id).await.unwrap().len(), 1);
}

async fn undelivered_decisions_are_listed_until_the_engine_takes_them(t: StoreUnderTest) {
    let store = t.store;
    let (a, b) = (
        running_run(store.as_ref()).await,
        running_run(store.as_ref()).await,
    );
    for id in [a, b] {
        store
            .record_hitl_request(waiting_at(id, "ideate", Some("t")))
            .await
            .unwrap();
    }
    let later = || Utc::now() + chrono::Duration::seconds(1);
    // Waiting, not decided: nothing to deliver, and nothing to note.
    assert!(store
        .undelivered_hitl_decisions(later(), 10)
        .await
        .unwrap()
        .is_empty());
    let err = store
        .mark_hitl_delivered(a, &gate("ideate"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    let err = store
        .mark_hitl_delivered(a, &gate("prepublish"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    for (id, d) in [(a, HitlDecision::Approved), (b, HitlDecision::Rejected)] {
        store
            .decide_hitl(id, &gate("ideate"), decision(d, "cli"))
            .await
            .unwrap();
    }
    let owed = store.undelivered_hitl_decisions(later(), 10).await.unwrap();
    let owed_runs: Vec<RunId> = owed.iter().map(|r| r.run_id).collect();
    assert_eq!(owed_runs, vec![a, b], "oldest decision first");
    assert!(owed
        .iter()
        .all(|r| r.delivered_at.is_none() && r.task_token.is_some()));
    // Only decisions made before the cut-off, and at most `limit`.
    let before_both = owed[0].decided_at.unwrap();
    assert!(store
        .undelivered_hitl_decisions(before_both, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .undelivered_hitl_decisions(later(), 1)
            .await
            .unwrap()
            .len(),
        1
    );

    store.mark_hitl_delivered(a, &gate("ideate")).await.unwrap();
    let first = store.list_hitl_requests(a).await.unwrap()[0].delivered_at;
    assert!(first.is_some());
    // Noting it again changes nothing.
    store.mark_hitl_delivered(a, &gate("ideate")).await.unwrap();
    assert_eq!(
        store.list_hitl_requests(a).await.unwrap()[0].delivered_at,
        first
    );
    let owed = store.undelivered_hitl_decisions(later(), 10).await.unwrap();
    assert_eq!(owed.iter().map(|r| r.run_id).collect::<Vec<_>>(), vec![b]);
    // Decided again: still the first decision, still delivered.
    let again = store
        .decide_hitl(a, &gate("ideate"), decision(HitlDecision::Rejected, "link"))
        .await
        .unwrap();
    let Decided::Already(kept) = again else {
        panic!("decided once")
    };
    assert_eq!(
        (kept.decision, kept.delivered_at),
        (Some(HitlDecision::Approved), first)
    );
}

async fn status(store: &dyn Store, id: RunId) -> RunStatus {
    store.get_run(id).await.unwrap().unwrap().status
}

/// How many `hitl.request` artifacts (approval links) run `id` has.
async fn links(store: &dyn Store, id: RunId) -> usize {
    store
        .list_artifacts_of(id, &[ArtifactType::HITL_REQUEST.as_str()])
        .await
        .unwrap()
        .len()
}

/// A gate is recorded in one write with its artifact and its run's wait, so
/// a decision made the moment the request can be seen finds the run
/// `awaiting_approval`; a late repeat after the decision changes nothing.
async fn a_recorded_gate_leaves_its_run_awaiting_approval(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    let request = NewHitlRequest {
        artifact: Some(
            NewArtifact::new(id, ArtifactType::HITL_REQUEST, json!({"gate": "ideate"}))
                .url("http://127.0.0.1:8080/v1/hitl/approve/x/ideate?token=t"),
        ),
        ..waiting_at(id, "ideate", Some("t1"))
    };
    store.record_hitl_request(request.clone()).await.unwrap();
    assert_eq!(
        status(store.as_ref(), id).await,
        RunStatus::AwaitingApproval
    );
    assert_eq!(links(store.as_ref(), id).await, 1);
    // Asked again while it waits (a retried task): still waiting, a new link.
    store.record_hitl_request(request.clone()).await.unwrap();
    assert_eq!(
        status(store.as_ref(), id).await,
        RunStatus::AwaitingApproval
    );
    assert_eq!(links(store.as_ref(), id).await, 2);

    store
        .decide_hitl(id, &gate("ideate"), decision(HitlDecision::Approved, "cli"))
        .await
        .unwrap();
    store
        .transition_run(Transition::new(
            id,
            RunStatus::AwaitingApproval,
            RunStatus::Running,
        ))
        .await
        .unwrap();
    let err = store.record_hitl_request(request).await.unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    assert_eq!(status(store.as_ref(), id).await, RunStatus::Running);
    assert_eq!(links(store.as_ref(), id).await, 2);

    // A run that is not running keeps its status.
    let cancelled = running_run(store.as_ref()).await;
    store
        .transition_run(Transition::new(
            cancelled,
            RunStatus::Running,
            RunStatus::Cancelled,
        ))
        .await
        .unwrap();
    store
        .record_hitl_request(waiting_at(cancelled, "prepublish", None))
        .await
        .unwrap();
    assert_eq!(
        status(store.as_ref(), cancelled).await,
        RunStatus::Cancelled
    );
}

async fn racing_hitl_decisions_have_one_winner(t: StoreUnderTest) {
    let store = t.store;
    let id = running_run(store.as_ref()).await;
    store
        .record_hitl_request(waiting_at(id, "prepublish", None))
        .await
        .unwrap();
    let attempts = (0..12).map(|i| {
        let store = Arc::clone(&store);
        let d = if i % 2 == 0 {
            HitlDecision::Approved
        } else {
            HitlDecision::Rejected
        };
        tokio::spawn(async move {
            store
                .decide_hitl(id, &gate("prepublish"), decision(d, &format!("user-{i}")))
                .await
        })
    });
    let results: Vec<Decided> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|d| matches!(d, Decided::Now(_)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one decision wins");
    let Decided::Now(winner) = winners[0] else {
        unreachable!()
    };
    for result in &results {
        let (Decided::Now(r) | Decided::Already(r)) = result;
        assert_eq!(
            r.decided_by, winner.decided_by,
            "everyone sees the winning decision"
        );
    }
}

async fn prune_deletes_only_old_finished_runs(t: StoreUnderTest) {
    let store = t.store;
    let finished = running_run(store.as_ref()).await;
    store
        .append_artifact(NewArtifact::new(
            finished,
            ArtifactType::RUN_START,
            json!({}),
        ))
        .await
        .unwrap();
    store
        .record_webhook_event(webhook(Some(finished), "old-1"))
        .await
        .unwrap();
    store
        .register_provider_job(job(finished, "old-job"))
        .await
        .unwrap();
    store
        .transition_run(Transition::new(
            finished,
            RunStatus::Running,
            RunStatus::Published,
        ))
        .await
        .unwrap();
    let live = running_run(store.as_ref()).await;
    store
        .append_artifact(NewArtifact::new(live, ArtifactType::RUN_START, json!({})))
        .await
        .unwrap();
    store
        .record_webhook_event(webhook(None, "orphan-1"))
        .await
        .unwrap();

    let nothing = store.prune(Utc::now() - Duration::hours(1)).await.unwrap();
    assert_eq!(
        (nothing.runs, nothing.artifacts, nothing.webhook_events),
        (0, 0, 0)
    );

    let report = store
        .prune(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        (report.runs, report.artifacts, report.webhook_events),
        (1, 1, 2)
    );
    assert_eq!(store.get_run(finished).await.unwrap(), None);
    assert!(store.list_artifacts(finished).await.unwrap().is_empty());
    assert_eq!(
        store
            .find_provider_job(Provider::KieAi, "old-job")
            .await
            .unwrap(),
        None
    );
    let kept = store
        .get_run(live)
        .await
        .unwrap()
        .expect("a live run is never pruned");
    assert_eq!(kept.status, RunStatus::Running);
    assert_eq!(store.list_artifacts(live).await.unwrap().len(), 1);
}

async fn data_survives_reopening(t: StoreUnderTest) {
    let id = running_run(t.store.as_ref()).await;
    t.store
        .append_artifact(NewArtifact::new(
            id,
            ArtifactType::RUN_START,
            json!({"n": 1}),
        ))
        .await
        .unwrap();
    let reopened = t.reopen().await;
    reopened
        .migrate()
        .await
        .expect("migrating twice is a no-op");
    let run = reopened.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(reopened.list_artifacts(id).await.unwrap().len(), 1);
}

async fn conversations_keep_their_order_per_user(t: StoreUnderTest) {
    use myloware::domain::ChatRole;
    let store = t.store;
    let run = RunId::new();
    store
        .append_conversation(
            "dev",
            vec![
                (ChatRole::User, "start a run".into(), vec![]),
                (ChatRole::Brendan, "started".into(), vec![run]),
            ],
        )
        .await
        .unwrap();
    store
        .append_conversation("other", vec![(ChatRole::User, "hi".into(), vec![])])
        .await
        .unwrap();
    store
        .append_conversation("dev", vec![(ChatRole::User, "status?".into(), vec![])])
        .await
        .unwrap();
    let all = store.conversation("dev", 10).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["start a run", "started", "status?"]);
    assert_eq!(all[1].run_ids, vec![run]);
    assert_eq!(all[1].role, ChatRole::Brendan);
    let last_two = store.conversation("dev", 2).await.unwrap();
    assert_eq!(
        last_two
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        ["started", "status?"]
    );
    assert!(store.conversation("nobody", 5).await.unwrap().is_empty());
}

async fn spans_open_close_and_list_in_order(t: StoreUnderTest) {
    use myloware::domain::{NewSpan, SpanEnd, SpanId, SpanStatus, TraceId};
    let store = t.store;
    let run = running_run(store.as_ref()).await;
    use chrono::DurationRound;
    // Whole microseconds: the precision every backend keeps.
    let t0 = (Utc::now() - Duration::seconds(10))
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    let root = NewSpan::in_run(run, "aismr-graph")
        .id(SpanId::graph(run))
        .attr("gen_ai.operation.name", "invoke_agent")
        .input(json!({"prompt": "a glass apple"}))
        .started_at(t0);
    let opened = store.open_span(root.clone()).await.unwrap();
    assert_eq!(opened.status, SpanStatus::Open);
    assert_eq!(opened.end_time, None);
    let child = NewSpan::in_run(run, "aismr:iggy")
        .parent(SpanId::graph(run))
        .started_at(t0 + Duration::seconds(1));
    let later = NewSpan::in_run(run, "llm")
        .parent(child.span_id)
        .started_at(t0 + Duration::seconds(2));
    // Opened out of order: listed by start time.
    store.open_span(later.clone()).await.unwrap();
    store.open_span(child.clone()).await.unwrap();
    assert!(matches!(
        store.open_span(child.clone()).await,
        Err(StoreError::Duplicate { .. })
    ));

    let spans = store.list_spans(TraceId::of_run(run)).await.unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["aismr-graph", "aismr:iggy", "llm"]);
    assert!(spans.iter().all(|s| s.is_open() && s.run_id == Some(run)));
    assert_eq!(spans[0], opened);
    assert_eq!(spans[1].parent_span_id, Some(SpanId::graph(run)));
    assert_eq!(spans[2].parent_span_id, Some(child.span_id));

    let closed = store
        .close_span(
            later.trace_id,
            later.span_id,
            SpanEnd::error("model timed out")
                .attr("gen_ai.usage.input_tokens", 12)
                .ended_at(t0 + Duration::seconds(3)),
        )
        .await
        .unwrap();
    assert_eq!(closed.status, SpanStatus::Error);
    assert_eq!(closed.error.as_deref(), Some("model timed out"));
    store
        .close_span(
            root.trace_id,
            root.span_id,
            SpanEnd::ok(Some(json!({"status": "published"}))),
        )
        .await
        .unwrap();
    let spans = store.list_spans(TraceId::of_run(run)).await.unwrap();
    assert_eq!(spans[0].status, SpanStatus::Ok);
    assert_eq!(spans[0].output, Some(json!({"status": "published"})));
    assert_eq!(spans[0].input, Some(json!({"prompt": "a glass apple"})));
    assert_eq!(
        spans[0].attributes.get("gen_ai.operation.name"),
        Some(&json!("invoke_agent"))
    );
    assert!(spans[0].end_time.unwrap() >= spans[0].start_time);
    assert!(spans[1].is_open(), "a span not closed stays open");
    assert_eq!(spans[2], closed);
    assert_eq!(
        store.list_open_spans(TraceId::of_run(run)).await.unwrap(),
        [spans[1].clone()],
        "only the span not closed is open"
    );

    // A call that ended before its span was written: recorded whole, once.
    let quick = myloware::domain::Span::opened(
        NewSpan::in_run(run, "execute_tool write_script")
            .parent(child.span_id)
            .input(json!({"scenes": 12}))
            .started_at(t0 + Duration::seconds(4)),
    )
    .closed(
        SpanEnd::ok(Some(json!({"stored": true})))
            .attr("gen_ai.tool.name", "write_script")
            .ended_at(t0 + Duration::seconds(5)),
    );
    let recorded = store.record_span(quick.clone()).await.unwrap();
    assert_eq!(recorded, quick);
    assert!(matches!(
        store.record_span(quick.clone()).await,
        Err(StoreError::Duplicate { .. })
    ));
    let spans = store.list_spans(TraceId::of_run(run)).await.unwrap();
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[3], quick, "listed as recorded, closed");
    assert_eq!(
        spans[2].attributes.get("gen_ai.usage.input_tokens"),
        Some(&json!(12))
    );
    assert_eq!(spans[2].end_time, Some(t0 + Duration::seconds(3)));

    // A chat turn with no run: its own trace.
    let lone = NewSpan {
        run_id: None,
        trace_id: TraceId::random(),
        ..NewSpan::in_run(run, "brendan-chat")
    };
    store.open_span(lone.clone()).await.unwrap();
    let listed = store.list_spans(lone.trace_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].run_id, listed[0].name.as_str()),
        (None, "brendan-chat")
    );
    assert_eq!(
        store.list_spans(TraceId::of_run(run)).await.unwrap().len(),
        4
    );
}

async fn a_span_closes_once(t: StoreUnderTest) {
    use myloware::domain::{NewSpan, SpanEnd, SpanStatus};
    let store = t.store;
    let run = running_run(store.as_ref()).await;
    let span = NewSpan::in_run(run, "aismr:gate:ideate");
    store.open_span(span.clone()).await.unwrap();
    let first = store
        .close_span(
            span.trace_id,
            span.span_id,
            SpanEnd::ok(Some(json!("approved"))),
        )
        .await
        .unwrap();
    let second = store
        .close_span(span.trace_id, span.span_id, SpanEnd::error("run cancelled"))
        .await
        .unwrap();
    assert_eq!(second, first, "the first close is kept");
    assert_eq!(second.status, SpanStatus::Ok);
    let listed = store.list_spans(span.trace_id).await.unwrap();
    assert_eq!(listed, vec![first]);

    // Racing closes: one wins, every caller sees the winner.
    let racer = NewSpan::in_run(run, "aismr:riley");
    store.open_span(racer.clone()).await.unwrap();
    let closes = (0..4).map(|i| {
        let store = Arc::clone(&store);
        let racer = racer.clone();
        tokio::spawn(async move {
            store
                .close_span(
                    racer.trace_id,
                    racer.span_id,
                    SpanEnd::error(format!("closer {i}")),
                )
                .await
                .unwrap()
        })
    });
    let seen: HashSet<String> = futures::future::join_all(closes)
        .await
        .into_iter()
        .map(|r| r.unwrap().error.unwrap())
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
}

async fn closing_an_unknown_span_is_not_found(t: StoreUnderTest) {
    use myloware::domain::{SpanEnd, SpanId, TraceId};
    let store = t.store;
    let run = running_run(store.as_ref()).await;
    let err = store
        .close_span(TraceId::of_run(run), SpanId::random(), SpanEnd::ok(None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(store
        .list_spans(TraceId::random())
        .await
        .unwrap()
        .is_empty());
}

async fn spans_go_with_their_pruned_run(t: StoreUnderTest) {
    use myloware::domain::{NewSpan, TraceId};
    let store = t.store;
    let finished = running_run(store.as_ref()).await;
    store
        .open_span(NewSpan::in_run(finished, "aismr-graph"))
        .await
        .unwrap();
    store
        .transition_run(Transition::new(
            finished,
            RunStatus::Running,
            RunStatus::Published,
        ))
        .await
        .unwrap();
    let live = running_run(store.as_ref()).await;
    store
        .open_span(NewSpan::in_run(live, "aismr-graph"))
        .await
        .unwrap();
    store
        .prune(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert!(store
        .list_spans(TraceId::of_run(finished))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.list_spans(TraceId::of_run(live)).await.unwrap().len(),
        1
    );
}
