//! The AWS path under faults, on moto's server through the fault proxy
//! (`myloware_tests::faults`): the pipeline runs in this process with Step
//! Functions, SQS (and, where it matters, DynamoDB) reached only through the
//! proxy, and the persona graphs deployed to moto, whose interpreter sends
//! the task messages to SQS.
//! - a throttled `StartExecution` leaves the run queued, and the reconciler's
//!   sweep starts it (a start whose every answer was lost is adopted);
//! - a retryable failure in the worker reaches the state machine at once as
//!   `Worker.Transient`, which it retries in seconds — not the task queue's
//!   5,400 s visibility timeout;
//! - a task message that lands in the dead-letter queue fails its run with
//!   the cause;
//! - Step Functions' execution status event of a timed-out execution records
//!   its run as failed.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use myloware::domain::{NewRun, Project, ProvidersMode, RunStatus};
use myloware::engine::stepfunctions::{StepFunctionsEngine, CALL_ATTEMPTS};
use myloware::engine::Engine;
use myloware::lambda::BatchOptions;
use myloware::pipeline::callbacks::Callbacks;
use myloware::pipeline::worker::{DeadLetters, Worker};
use myloware::pipeline::{NewRunRequest, Pipeline, Settings};
use myloware::providers::mock::MockProviders;
use myloware::queue::sqs::SqsQueue;
use myloware::queue::{Queue, SharedHandler};
use myloware::store::prelude::*;
use myloware::store::{DynamoDbStore, Transition};
use myloware_tests::aws::Emulator;
use myloware_tests::faults::{Fault, FaultProxy, FaultRules};
use myloware_tests::{config_from, stack_vars};
use serde_json::{json, Value};

/// A pipeline on Step Functions and SQS through the fault proxy.
struct OnAws {
    pipeline: Pipeline,
    proxy: FaultProxy,
    emulator: Emulator,
    /// Step Functions reached directly (never faulted): what the test reads.
    direct: StepFunctionsEngine,
    tasks: String,
    dead_tasks: String,
    prefix: String,
    _mocks: Option<MockProviders>,
    _dir: tempfile::TempDir,
}

/// The pipeline, its store `store` (else the embedded SQLite one), a task
/// queue whose messages go to its dead-letter queue after `max_receives`
/// and whose visibility timeout is production's (5,400 s).
async fn on_aws(store: Option<&str>, max_receives: u32) -> Option<OnAws> {
    let emulator = myloware_tests::aws::emulator().await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = FaultProxy::start(listener, &emulator.endpoint, FaultRules::default());
    let sdk = myloware_tests::aws::sdk_config(&proxy.url).await;
    let dir = tempfile::tempdir().unwrap();
    let vars = stack_vars(
        dir.path(),
        &[
            ("PUBLIC_BASE_URL", "http://127.0.0.1:9"),
            ("MOCK_LATENCY_MS", "20"),
        ],
    );
    let config = config_from(&vars);
    let (mocks, urls) = myloware::wiring::start_mocks(&config).await.unwrap();
    let (mut pipeline, _) = myloware::wiring::core(&config, "http://127.0.0.1:9".into(), urls)
        .await
        .unwrap();
    let (tasks, dead_tasks) = emulator.queue_with_dlq("faults-tasks", max_receives).await;
    let (callbacks, _) = emulator
        .queue_with_dlq("faults-callbacks", max_receives)
        .await;
    emulator
        .sqs()
        .set_queue_attributes()
        .queue_url(&tasks)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "5400",
        )
        .send()
        .await
        .unwrap();
    let direct = StepFunctionsEngine::new(&emulator.sdk);
    let prefix = format!(
        "faults-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let machines: HashMap<Project, String> = emulator
        .deploy_state_machines(&prefix, &tasks)
        .await
        .unwrap()
        .into_iter()
        .map(|(name, arn)| (name.parse().unwrap(), arn))
        .collect();
    if let Some(table) = store {
        let store = DynamoDbStore::new(&sdk, table);
        store.migrate().await.unwrap();
        pipeline.store = Arc::new(store);
    }
    pipeline.engine = Arc::new(StepFunctionsEngine::new(&sdk));
    pipeline.queue = Arc::new(SqsQueue::new(&sdk));
    pipeline.state_machines = Arc::new(machines);
    pipeline.settings = Arc::new(Settings {
        task_queue_url: tasks.clone(),
        callback_queue_url: callbacks,
        ..(*pipeline.settings).clone()
    });
    Some(OnAws {
        pipeline,
        proxy,
        emulator,
        direct,
        tasks,
        dead_tasks,
        prefix,
        _mocks: mocks,
        _dir: dir,
    })
}

fn aismr() -> NewRunRequest {
    NewRunRequest {
        project: "aismr".parse().unwrap(),
        message: None,
        user_id: None,
        chat_turn: None,
        idempotency_key: None,
    }
}

fn rules(spec: &str) -> FaultRules {
    FaultRules::parse(spec).unwrap()
}

/// Waits up to `secs` for `check` to answer something.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl OnAws {
    fn faulted(&self, operation: &str, fault: Fault) -> u64 {
        self.proxy
            .counts()
            .by_operation
            .get(operation)
            .and_then(|(_, f)| f.get(&fault).copied())
            .unwrap_or(0)
    }

    /// Stops the executions the test started, so moto's threads end.
    async fn stop(&self, executions: &[Option<String>]) {
        for arn in executions.iter().flatten() {
            let _ = self.direct.stop_execution(arn, None, None).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_start_leaves_the_run_queued_and_the_reconciler_starts_it() {
    let Some(t) = on_aws(None, 3).await else {
        return;
    };
    t.proxy.set_rules(rules("StartExecution:throttle=1"));
    t.proxy.enable(true);
    let run = t
        .pipeline
        .start_run(aismr())
        .await
        .expect("a throttled start does not fail the run");
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.execution_id, None, "queued: no execution yet");
    assert_eq!(
        t.faulted("sfn:StartExecution", Fault::Throttle),
        u64::from(CALL_ATTEMPTS),
        "tried {CALL_ATTEMPTS} times with backoff"
    );
    let later = chrono::Utc::now() + chrono::Duration::seconds(10);
    assert_eq!(
        t.pipeline.start_queued_runs(later).await.unwrap(),
        0,
        "still throttled: still queued"
    );
    assert_eq!(
        t.pipeline
            .store
            .get_run(run.run_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Pending
    );

    t.proxy.enable(false);
    assert_eq!(t.pipeline.start_queued_runs(later).await.unwrap(), 1);
    let started = t.pipeline.store.get_run(run.run_id).await.unwrap().unwrap();
    let execution = started.execution_id.clone().expect("started later");
    assert!(t
        .direct
        .describe_execution(&execution)
        .await
        .unwrap()
        .is_running());
    assert_eq!(
        t.pipeline.start_queued_runs(later).await.unwrap(),
        0,
        "once"
    );

    // A start that took effect with every answer lost: queued, then adopted
    // by the sweep (the execution is there, by the run's id).
    t.proxy.set_rules(rules("StartExecution:lost=1"));
    t.proxy.enable(true);
    let lost = t.pipeline.start_run(aismr()).await.unwrap();
    assert_eq!(lost.execution_id, None);
    t.proxy.enable(false);
    let later = chrono::Utc::now() + chrono::Duration::seconds(10);
    assert_eq!(t.pipeline.start_queued_runs(later).await.unwrap(), 1);
    let adopted = t
        .pipeline
        .store
        .get_run(lost.run_id)
        .await
        .unwrap()
        .unwrap();
    let machine = &t.pipeline.state_machines[&"aismr".parse::<Project>().unwrap()];
    assert_eq!(
        adopted.execution_id,
        myloware::engine::arn::execution_of(machine, &lost.run_id.to_string()),
        "the execution the lost answer started"
    );
    t.stop(&[started.execution_id, adopted.execution_id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_worker_failure_reaches_the_state_machine_as_worker_transient() {
    let table = format!("mwt-faults-{}", uuid::Uuid::new_v4().simple());
    let Some(t) = on_aws(Some(&table), 3).await else {
        return;
    };
    let run = t.pipeline.start_run(aismr()).await.unwrap();
    let execution = run.execution_id.clone().unwrap();
    // The store refuses every write (throttled past the SDK's retries)
    // while reads go through: the task fails retryably.
    t.proxy.set_rules(rules(
        "dynamodb:TransactWriteItems:throttle=1,dynamodb:UpdateItem:throttle=1,dynamodb:PutItem:throttle=1",
    ));
    t.proxy.enable(true);
    let sqs = SqsQueue::new(&myloware_tests::aws::sdk_config(&t.proxy.url).await);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker: SharedHandler = Arc::new(Worker {
        pipeline: t.pipeline.clone(),
    });
    let consumer = sqs.consume(&t.tasks, worker, stopped);

    let history = |t: &OnAws| {
        let (direct, execution) = (t.direct.clone(), execution.clone());
        async move { direct.get_execution_history(&execution).await.unwrap() }
    };
    let failed_at = eventually(120, "Iggy failed as Worker.Transient", || async {
        history(&t)
            .await
            .into_iter()
            .find(|e| e.event_type == "TaskFailed" && e.details["error"] == "Worker.Transient")
    })
    .await;
    t.proxy.enable(false);
    // Retried by the state machine under a new token, seconds later.
    let rescheduled = eventually(60, "Iggy scheduled again", || async {
        history(&t)
            .await
            .into_iter()
            .find(|e| e.event_type == "TaskScheduled" && e.id > failed_at.id)
    })
    .await;
    let waited = rescheduled.timestamp - failed_at.timestamp;
    assert!(
        waited < chrono::Duration::seconds(60),
        "the retry came after {waited}: not the queue's 5,400 s"
    );
    let e = eventually(90, "the run waits at its first gate", || async {
        let run = t.pipeline.store.get_run(run.run_id).await.unwrap().unwrap();
        (run.status == RunStatus::AwaitingApproval).then_some(run)
    })
    .await;
    assert!(e.error.is_none(), "{e:?}");
    assert!(
        history(&t)
            .await
            .iter()
            .any(|e| e.event_type == "TaskSucceeded"),
        "Iggy succeeded on its retry"
    );
    let _ = stop.send(true);
    consumer.await.unwrap();
    t.stop(&[Some(execution)]).await;
    let _ = aws_sdk_dynamodb::Client::new(&t.emulator.sdk)
        .delete_table()
        .table_name(&table)
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_task_message_fails_its_run_with_the_cause() {
    let Some(t) = on_aws(None, 2).await else {
        return;
    };
    let run = t.pipeline.start_run(aismr()).await.unwrap();
    // Step Functions cannot be told anything: the worker's message comes
    // back (a few seconds later) until the queue dead-letters it.
    t.proxy.set_rules(rules(
        "sfn:SendTaskSuccess:throttle=1,sfn:SendTaskFailure:throttle=1",
    ));
    t.proxy.enable(true);
    let sdk = myloware_tests::aws::sdk_config(&t.proxy.url).await;
    let sqs = SqsQueue::new(&sdk);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker: SharedHandler = Arc::new(Worker {
        pipeline: t.pipeline.clone(),
    });
    let tasks = sqs.consume(&t.tasks, worker, stopped.clone());
    let direct_sqs = SqsQueue::new(&t.emulator.sdk);
    eventually(150, "the task message dead-lettered", || async {
        (direct_sqs.depth(&t.dead_tasks).await.unwrap().visible >= 1).then_some(())
    })
    .await;
    t.proxy.enable(false);
    let dead: SharedHandler = Arc::new(DeadLetters {
        pipeline: t.pipeline.clone(),
    });
    let dead_letters = sqs.consume(&t.dead_tasks, dead, stopped);
    let failed = eventually(90, "the run failed", || async {
        let run = t.pipeline.store.get_run(run.run_id).await.unwrap().unwrap();
        run.status.is_terminal().then_some(run)
    })
    .await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    // moto drops SendTaskFailure's cause (AWS keeps it, and the run's error
    // then says which persona's message failed how often): the error names
    // the dead-lettering either way.
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.starts_with("Worker.DeadLettered"), "{error}");
    let _ = stop.send(true);
    tasks.await.unwrap();
    dead_letters.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_execution_status_event_records_a_timed_out_execution_s_run_as_failed() {
    let Some(t) = on_aws(None, 3).await else {
        return;
    };
    // A graph that outlives its TimeoutSeconds.
    let machine = t
        .direct
        .deploy(
            &format!("{}timeout", t.prefix),
            &json!({"StartAt": "Wait", "TimeoutSeconds": 1,
                    "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": true}}})
            .to_string(),
            &myloware_tests::aws::states_role(),
        )
        .await
        .unwrap();
    let store = &t.pipeline.store;
    let run = store
        .create_run(NewRun::new(
            "aismr".parse().unwrap(),
            json!({}),
            ProvidersMode::Mock,
        ))
        .await
        .unwrap();
    let started = t
        .pipeline
        .engine
        .start_execution(&machine, Some(&run.run_id.to_string()), &json!({}))
        .await
        .unwrap();
    store
        .set_execution_id(run.run_id, &started.execution_arn)
        .await
        .unwrap();
    store
        .transition_run(Transition::new(
            run.run_id,
            RunStatus::Pending,
            RunStatus::Running,
        ))
        .await
        .unwrap();
    let ended = eventually(30, "the execution timed out", || async {
        let d = t
            .direct
            .describe_execution(&started.execution_arn)
            .await
            .unwrap();
        (!d.is_running()).then_some(d)
    })
    .await;
    assert_eq!(ended.status, "TIMED_OUT", "{ended:?}");

    // The event EventBridge delivers, as AWS shapes it.
    let mut event: Value = serde_json::from_str(include_str!(
        "../fixtures/events/execution-status-change.json"
    ))
    .unwrap();
    event["detail"]["executionArn"] = json!(ended.execution_arn);
    event["detail"]["stateMachineArn"] = json!(machine);
    event["detail"]["name"] = json!(ended.name);
    event["detail"]["status"] = json!(ended.status);
    event["detail"]["error"] = json!(ended.error);
    event["detail"]["cause"] = json!(ended.cause);
    let handler = Callbacks {
        pipeline: t.pipeline.clone(),
    };
    let answer = myloware::lambda::callbacks_event(
        &handler,
        &t.pipeline,
        event.clone(),
        BatchOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(answer["run"], "recorded_failed");
    let failed = store.get_run(run.run_id).await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(error.contains("TIMED_OUT"), "{error}");
    let artifacts = store.list_artifacts(run.run_id).await.unwrap();
    assert!(
        artifacts
            .iter()
            .any(|a| a.artifact_type.as_str() == "run.failed"
                && a.metadata["execution_status"] == "TIMED_OUT"),
        "{artifacts:?}"
    );
    // Delivered again (EventBridge delivers at least once): nothing changes.
    let again =
        myloware::lambda::callbacks_event(&handler, &t.pipeline, event, BatchOptions::default())
            .await
            .unwrap();
    assert_eq!(again["run"], "already_ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_engine_records_a_timed_out_execution_s_run_as_failed_too() {
    let t = myloware_tests::TestStack::start(&[]).await;
    let engine = t.stack.engine.clone().expect("the local engine");
    let machine = engine
        .register_state_machine(
            "timeout",
            &json!({"StartAt": "Wait", "TimeoutSeconds": 1,
                    "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": true}}})
            .to_string(),
        )
        .unwrap();
    let store = &t.stack.pipeline.store;
    let run = store
        .create_run(NewRun::new(
            "aismr".parse().unwrap(),
            json!({}),
            ProvidersMode::Mock,
        ))
        .await
        .unwrap();
    engine
        .start_execution(&machine, Some(&run.run_id.to_string()), &json!({}))
        .await
        .unwrap();
    let failed = eventually(30, "the run recorded failed", || async {
        let run = store.get_run(run.run_id).await.unwrap().unwrap();
        run.status.is_terminal().then_some(run)
    })
    .await;
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(error.contains("TIMED_OUT"), "{error}");
}

/// Every DynamoDB write's answer lost once it took effect: the SDK sends it
/// again, the second try meets the first one's conditions, and the store
/// sees its own write there and takes it as done — one run, one artifact,
/// one transition, not `Duplicate` or `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_write_whose_answer_was_lost_is_taken_as_done() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = FaultProxy::start(listener, &emulator.endpoint, FaultRules::default());
    let sdk = myloware_tests::aws::sdk_config(&proxy.url).await;
    let table = format!("mwt-lost-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoDbStore::new(&sdk, &table);
    store.migrate().await.unwrap();
    proxy.set_rules(rules(
        "dynamodb:PutItem:lost=1,dynamodb:TransactWriteItems:lost=1",
    ));
    proxy.enable(true);
    let run = store
        .create_run(NewRun::new(
            "aismr".parse().unwrap(),
            json!({ "message": "a glass apple" }),
            ProvidersMode::Mock,
        ))
        .await
        .expect("created, though its answer was lost");
    let artifact = store
        .append_artifact(myloware::domain::NewArtifact::new(
            run.run_id,
            myloware::domain::ArtifactType::RUN_START,
            json!({ "project": "aismr" }),
        ))
        .await
        .expect("appended, though its answer was lost");
    let running = store
        .transition_run(Transition::new(
            run.run_id,
            RunStatus::Pending,
            RunStatus::Running,
        ))
        .await
        .expect("moved, though its answer was lost");
    assert_eq!(running.status, RunStatus::Running);
    let lost = proxy.counts().total(Fault::Lost);
    assert!(lost >= 3, "the answers were lost: {lost}");
    proxy.enable(false);
    assert_eq!(
        store.get_run(run.run_id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    let artifacts = store.list_artifacts(run.run_id).await.unwrap();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!(artifacts[0].id, artifact.id);
    assert_eq!(
        store
            .find_run_by_job_code(&run.job_code)
            .await
            .unwrap()
            .unwrap()
            .run_id,
        run.run_id
    );
}
