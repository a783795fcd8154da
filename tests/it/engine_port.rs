//! The `Engine` port on the durable local engine, over SQLite and Postgres:
//! Step Functions' API errors, history names, stop, and restarts.
use std::time::Duration;

use myloware::engine::local::spawn_echo_worker;
use myloware::engine::{Engine, EngineError, LocalEngine};
use myloware_tests::StoreUnderTest;
use serde_json::{json, Value};

const QUEUE: &str = "local://engine-test/tasks";

macro_rules! engine_cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { myloware_tests::on_sqlite(super::$case).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() { myloware_tests::on_postgres(super::$case).await })*
        }
    };
}

engine_cases!(
    names_are_used_once,
    token_calls_get_step_functions_errors,
    heartbeats_keep_a_task_alive,
    stop_aborts_a_running_execution,
    history_uses_step_functions_event_names,
    a_restart_resumes_waits_tokens_and_queued_messages,
);

fn task(name: &str, body: Value, next: Option<&str>) -> (String, Value) {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": QUEUE, "MessageBody": body},
    });
    match next {
        Some(n) => state["Next"] = json!(n),
        None => state["End"] = json!(true),
    }
    (name.to_owned(), state)
}

fn definition(start: &str, states: Vec<(String, Value)>) -> String {
    let states: serde_json::Map<String, Value> = states.into_iter().collect();
    json!({"StartAt": start, "States": states}).to_string()
}

/// One task waiting for its token (nobody answers it on its own).
fn waiting_task_definition(extra: Value) -> String {
    let (name, mut state) = task(
        "Wait",
        json!({"task_token.$": "$$.Task.Token", "n.$": "$.n"}),
        None,
    );
    for (k, v) in extra.as_object().unwrap() {
        state[k] = v.clone();
    }
    definition("Wait", vec![(name, state)])
}

async fn engine_on(t: &StoreUnderTest) -> LocalEngine {
    let backend = myloware::store::open(&t.database).await.unwrap();
    LocalEngine::start(backend.engine_store().unwrap())
        .await
        .unwrap()
}

/// The next message on the queue, and its task token.
async fn next_token(
    queue: &mut tokio::sync::mpsc::UnboundedReceiver<myloware::store::engine::QueueMessage>,
) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), queue.recv())
        .await
        .expect("a task message within 10 s")
        .expect("queue open");
    let body: Value = serde_json::from_str(&message.body).unwrap();
    body["task_token"].as_str().unwrap().to_owned()
}

async fn names_are_used_once(t: StoreUnderTest) {
    let engine = engine_on(&t).await;
    let machine = engine
        .register_state_machine("once", &waiting_task_definition(json!({})))
        .unwrap();
    let mut queue = engine.subscribe(QUEUE).await.unwrap();
    engine
        .start_execution(&machine, Some("run-1"), &json!({"n": 1}))
        .await
        .unwrap();
    let err = engine
        .start_execution(&machine, Some("run-1"), &json!({"n": 2}))
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "ExecutionAlreadyExists", "{err}");
    let token = next_token(&mut queue).await;
    engine
        .send_task_success(&token, &json!({"ok": true}))
        .await
        .unwrap();
    let err = engine
        .start_execution(&machine, Some("run-1"), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.aws_name(),
        "ExecutionAlreadyExists",
        "a finished name stays taken: {err}"
    );
    let err = engine
        .start_execution(&machine, Some("bad name"), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "InvalidName");
    let err = engine
        .start_execution(
            "arn:aws:states:local:000000000000:stateMachine:nope",
            None,
            &json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "StateMachineDoesNotExist");
    let err = engine.describe_execution("arn:nope").await.unwrap_err();
    assert_eq!(err.aws_name(), "ExecutionDoesNotExist");
}

async fn token_calls_get_step_functions_errors(t: StoreUnderTest) {
    let engine = engine_on(&t).await;
    let machine = engine
        .register_state_machine(
            "tokens",
            &waiting_task_definition(json!({"TimeoutSeconds": 1})),
        )
        .unwrap();
    let mut queue = engine.subscribe(QUEUE).await.unwrap();

    let err = engine
        .send_task_success("not-a-token", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidToken), "{err}");

    let done = engine
        .start_execution(&machine, Some("consumed"), &json!({"n": 1}))
        .await
        .unwrap();
    let token = next_token(&mut queue).await;
    engine
        .send_task_success(&token, &json!({"first": true}))
        .await
        .unwrap();
    let err = engine
        .send_task_success(&token, &json!({"second": true}))
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "TaskDoesNotExist", "{err}");
    let err = engine
        .send_task_failure(&token, Some("E"), None)
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "TaskDoesNotExist", "{err}");
    let d = engine
        .describe_execution(&done.execution_arn)
        .await
        .unwrap();
    assert_eq!(
        (d.status.as_str(), d.output),
        ("SUCCEEDED", Some(json!({"first": true})))
    );

    let late = engine
        .start_execution(&machine, Some("late"), &json!({"n": 2}))
        .await
        .unwrap();
    let token = next_token(&mut queue).await;
    let d = engine
        .wait_for(&late.execution_arn, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (d.status.as_str(), d.error.as_deref()),
        ("FAILED", Some("States.Timeout"))
    );
    let err = engine
        .send_task_success(&token, &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::TaskTimedOut | EngineError::TaskDoesNotExist
        ),
        "a timed-out token is refused: {err}"
    );
}

async fn heartbeats_keep_a_task_alive(t: StoreUnderTest) {
    let engine = engine_on(&t).await;
    let machine = engine
        .register_state_machine(
            "heartbeat",
            &waiting_task_definition(json!({"HeartbeatSeconds": 1})),
        )
        .unwrap();
    let mut queue = engine.subscribe(QUEUE).await.unwrap();
    let started = engine
        .start_execution(&machine, None, &json!({"n": 1}))
        .await
        .unwrap();
    let token = next_token(&mut queue).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        engine.send_task_heartbeat(&token).await.unwrap();
    }
    engine
        .send_task_success(&token, &json!({"alive": true}))
        .await
        .unwrap();
    let d = engine
        .wait_for(&started.execution_arn, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        d.status, "SUCCEEDED",
        "2 s of work with a 1 s heartbeat: {d:?}"
    );
}

async fn stop_aborts_a_running_execution(t: StoreUnderTest) {
    let engine = engine_on(&t).await;
    let machine = engine
        .register_state_machine("stop", &waiting_task_definition(json!({})))
        .unwrap();
    let mut queue = engine.subscribe(QUEUE).await.unwrap();
    let started = engine
        .start_execution(&machine, None, &json!({"n": 1}))
        .await
        .unwrap();
    let token = next_token(&mut queue).await;
    engine
        .stop_execution(
            &started.execution_arn,
            Some("Run.Cancelled"),
            Some("cancelled by dev"),
        )
        .await
        .unwrap();
    let d = engine
        .describe_execution(&started.execution_arn)
        .await
        .unwrap();
    assert_eq!(d.status, "ABORTED");
    assert!(d.stop_date.is_some());
    let err = engine
        .send_task_success(&token, &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "TaskDoesNotExist");
    let history = engine
        .get_execution_history(&started.execution_arn)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().event_type, "ExecutionAborted");
}

async fn history_uses_step_functions_event_names(t: StoreUnderTest) {
    let engine = engine_on(&t).await;
    spawn_echo_worker(&engine, QUEUE).await.unwrap();
    let (a, a_state) = task(
        "Ask",
        json!({"task_token.$": "$$.Task.Token", "q": 1}),
        Some("Done"),
    );
    let def = definition(
        "Ask",
        vec![
            (a, a_state),
            ("Done".into(), json!({"Type": "Pass", "End": true})),
        ],
    );
    let machine = engine.register_state_machine("history", &def).unwrap();
    let started = engine
        .start_execution(&machine, None, &json!({}))
        .await
        .unwrap();
    let d = engine
        .wait_for(&started.execution_arn, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(d.status, "SUCCEEDED");
    let types: Vec<String> = engine
        .get_execution_history(&started.execution_arn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    for expected in [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskSucceeded",
        "TaskStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }
    assert_eq!(types.first().map(String::as_str), Some("ExecutionStarted"));
    assert_eq!(types.last().map(String::as_str), Some("ExecutionSucceeded"));
}

async fn a_restart_resumes_waits_tokens_and_queued_messages(t: StoreUnderTest) {
    // Wait 1 s → Ask (a task) → Ask again: the first engine is dropped while
    // the Wait timer is pending, the second while a message is unanswered.
    let (ask, ask_state) = task(
        "Ask",
        json!({"task_token.$": "$$.Task.Token", "step": 1}),
        Some("Again"),
    );
    let (again, again_state) = task(
        "Again",
        json!({"task_token.$": "$$.Task.Token", "step": 2}),
        None,
    );
    let def = definition(
        "Pause",
        vec![
            (
                "Pause".into(),
                json!({"Type": "Wait", "Seconds": 1, "Next": "Ask"}),
            ),
            (ask, ask_state),
            (again, again_state),
        ],
    );
    let first = engine_on(&t).await;
    let machine = first.register_state_machine("restart", &def).unwrap();
    let started = first
        .start_execution(&machine, Some("survivor"), &json!({}))
        .await
        .unwrap();
    drop(first);

    // The timer fires in the second life; its message is never answered there.
    let second = engine_on(&t).await;
    let mut queue = second.subscribe(QUEUE).await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), queue.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(message.body.contains("\"step\":1"), "{}", message.body);
    drop(queue);
    drop(second);

    // The third life gets the unacknowledged message again and finishes.
    let third = engine_on(&t).await;
    third.register_state_machine("restart", &def).unwrap();
    spawn_echo_worker(&third, QUEUE).await.unwrap();
    let d = third
        .wait_for(&started.execution_arn, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(d.status, "SUCCEEDED", "{d:?}");
    assert_eq!(d.output, Some(json!({"step": 2})));
    let history = third
        .get_execution_history(&started.execution_arn)
        .await
        .unwrap();
    let count = |t: &str| history.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("WaitStateExited"), 1, "the wait ended exactly once");
    assert_eq!(
        count("TaskSucceeded"),
        2,
        "each task completed exactly once"
    );
    assert_eq!(count("ExecutionSucceeded"), 1);
    let ids: Vec<i64> = history.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "no event lost or repeated"
    );
}
