//! The `Engine` port: Step Functions' API errors, history names, stop and
//! heartbeats — the same cases on the durable local engine (over SQLite
//! and Postgres) and on the Step Functions adapter against the AWS
//! emulator's interpreter, plus the local engine's restarts.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use myloware::config::DatabaseConfig;
use myloware::engine::asl::driver::{echo_answer, TaskAnswer};
use myloware::engine::local::spawn_echo_worker;
use myloware::engine::stepfunctions::StepFunctionsEngine;
use myloware::engine::{Engine, EngineError, ExecutionDescription, LocalEngine};
use myloware::queue::{HandlerError, MessageHandler, SharedHandler};
use myloware::store::engine::QueueMessage;
use myloware_tests::aws::Emulator;
use myloware_tests::StoreUnderTest;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

const QUEUE: &str = "local://engine-test/tasks";

macro_rules! engine_cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                myloware_tests::on_sqlite(|t| async move { super::$case(super::Local::on(&t).await).await }).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                myloware_tests::on_postgres(|t| async move { super::$case(super::Local::on(&t).await).await }).await
            })*
        }
        mod stepfunctions {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                if let Some(h) = super::StepFunctions::on_emulator().await {
                    super::$case(h).await
                }
            })*
        }
    };
}

engine_cases!(
    names_are_used_once,
    token_calls_get_step_functions_errors,
    heartbeats_keep_a_task_alive,
    stop_aborts_a_running_execution,
    history_uses_step_functions_event_names,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_resumes_waits_tokens_and_queued_messages_on_sqlite() {
    myloware_tests::on_sqlite(a_restart_resumes_waits_tokens_and_queued_messages).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_resumes_waits_tokens_and_queued_messages_on_postgres() {
    myloware_tests::on_postgres(a_restart_resumes_waits_tokens_and_queued_messages).await
}

/// An engine under test, with the queue its task states send to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handed_over_message_is_delivered_but_not_stored_on_sqlite() {
    myloware_tests::on_sqlite(a_handed_over_message_is_delivered_but_not_stored).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handed_over_message_is_delivered_but_not_stored_on_postgres() {
    myloware_tests::on_postgres(a_handed_over_message_is_delivered_but_not_stored).await
}

#[async_trait]
trait Harness: Send + Sync {
    fn engine(&self) -> &dyn Engine;
    /// Creates the state machine `name`; its task states send to `QUEUE`.
    async fn machine(&self, name: &str, definition: &str) -> String;
    /// The next task message's token.
    async fn next_token(&self) -> String;
    /// Answers every task message with the echo worker from now on.
    async fn echo(&self);
    /// An execution ARN that is well formed but names nothing.
    fn missing_execution(&self) -> String;
    /// The errors an answer with a consumed token gets: Step Functions'
    /// `TaskDoesNotExist` (or `TaskTimedOut`), unless noted.
    fn consumed_token_errors(&self) -> &'static [&'static str] {
        &["TaskDoesNotExist", "TaskTimedOut"]
    }
    /// True on the AWS emulator, whose known deviations (each noted where
    /// it is allowed) are not asserted.
    fn emulated(&self) -> bool {
        false
    }
    /// The execution once it has ended.
    async fn wait_for(&self, execution_arn: &str) -> ExecutionDescription {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let d = self
                .engine()
                .describe_execution(execution_arn)
                .await
                .unwrap();
            if !d.is_running() {
                return d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still running: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The durable local engine and its in-process queue.
struct Local {
    engine: LocalEngine,
    queue: Mutex<Option<mpsc::UnboundedReceiver<QueueMessage>>>,
}

impl Local {
    async fn on(t: &StoreUnderTest) -> Self {
        Self {
            engine: engine_on(t).await,
            queue: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Harness for Local {
    fn engine(&self) -> &dyn Engine {
        &self.engine
    }

    async fn machine(&self, name: &str, definition: &str) -> String {
        let arn = self
            .engine
            .register_state_machine(name, definition)
            .unwrap();
        let mut queue = self.queue.lock().await;
        if queue.is_none() {
            *queue = Some(self.engine.subscribe(QUEUE).await.unwrap());
        }
        arn
    }

    async fn next_token(&self) -> String {
        let mut queue = self.queue.lock().await;
        next_token(queue.as_mut().expect("a machine first")).await
    }

    async fn echo(&self) {
        // The echo worker takes the queue over.
        self.queue.lock().await.take();
        spawn_echo_worker(&self.engine, QUEUE).await.unwrap();
    }

    fn missing_execution(&self) -> String {
        "arn:aws:states:local:000000000000:execution:nope:nope".into()
    }
}

/// The Step Functions adapter on the emulator's interpreter, its task
/// states sending to an SQS queue of the test's own.
struct StepFunctions {
    engine: StepFunctionsEngine,
    emulator: Emulator,
    queue_url: String,
    unique: String,
}

impl StepFunctions {
    async fn on_emulator() -> Option<Self> {
        let emulator = myloware_tests::aws::emulator().await?;
        let (queue_url, _) = emulator.queue_with_dlq("engine-port", 5).await;
        Some(Self {
            engine: StepFunctionsEngine::new(&emulator.sdk),
            emulator,
            queue_url,
            unique: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        })
    }
}

#[async_trait]
impl Harness for StepFunctions {
    fn engine(&self) -> &dyn Engine {
        &self.engine
    }

    async fn machine(&self, name: &str, definition: &str) -> String {
        let definition = definition.replace(QUEUE, &self.queue_url);
        self.engine
            .deploy(
                &format!("{name}-{}", self.unique),
                &definition,
                &format!(
                    "arn:aws:iam::{}:role/engine-port",
                    myloware_tests::aws::ACCOUNT
                ),
            )
            .await
            .unwrap()
    }

    async fn next_token(&self) -> String {
        let bodies = self.emulator.drain(&self.queue_url, 1, 10).await;
        let body: Value =
            serde_json::from_str(bodies.first().expect("a task message within 10 s")).unwrap();
        body["task_token"].as_str().unwrap().to_owned()
    }

    async fn echo(&self) {
        let sqs = self.emulator.sqs();
        let engine = self.engine.clone();
        let queue_url = self.queue_url.clone();
        tokio::spawn(async move {
            loop {
                let Ok(out) = sqs
                    .receive_message()
                    .queue_url(&queue_url)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    return;
                };
                for m in out.messages() {
                    let body = m.body().unwrap_or_default();
                    let token = serde_json::from_str::<Value>(body).unwrap()["task_token"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    let _ = match echo_answer(body) {
                        TaskAnswer::Succeeded(output) => {
                            engine.send_task_success(&token, &output).await
                        }
                        TaskAnswer::Failed { error, cause } => {
                            engine
                                .send_task_failure(&token, error.as_deref(), cause.as_deref())
                                .await
                        }
                    };
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        });
    }

    /// Deviation: the emulator answers `InvalidToken` for a consumed token.
    fn consumed_token_errors(&self) -> &'static [&'static str] {
        &["TaskDoesNotExist", "TaskTimedOut", "InvalidToken"]
    }

    fn emulated(&self) -> bool {
        true
    }

    fn missing_execution(&self) -> String {
        format!(
            "arn:aws:states:us-east-1:{}:execution:nope-{}:nope",
            myloware_tests::aws::ACCOUNT,
            self.unique
        )
    }
}

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

/// An answer with a consumed token is refused with Step Functions' error.
/// Deviation: the emulator sometimes accepts it (the execution is not
/// changed by it: the tests check the outcome).
fn refused_as_consumed(h: &impl Harness, answer: Result<(), EngineError>) {
    match answer {
        Err(err) => assert!(h.consumed_token_errors().contains(&err.aws_name()), "{err}"),
        Ok(()) => assert!(h.emulated(), "a consumed token must be refused"),
    }
}

/// The next message on the queue, and its task token.
async fn next_token(queue: &mut mpsc::UnboundedReceiver<QueueMessage>) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), queue.recv())
        .await
        .expect("a task message within 10 s")
        .expect("queue open");
    let body: Value = serde_json::from_str(&message.body).unwrap();
    body["task_token"].as_str().unwrap().to_owned()
}

async fn names_are_used_once(h: impl Harness) {
    let machine = h.machine("once", &waiting_task_definition(json!({}))).await;
    let engine = h.engine();
    engine
        .start_execution(&machine, Some("run-1"), &json!({"n": 1}))
        .await
        .unwrap();
    let err = engine
        .start_execution(&machine, Some("run-1"), &json!({"n": 2}))
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "ExecutionAlreadyExists", "{err}");
    let token = h.next_token().await;
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
    let nope = machine.rsplit_once(':').unwrap().0.to_owned() + ":nope";
    let err = engine
        .start_execution(&nope, None, &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "StateMachineDoesNotExist", "{err}");
    let err = engine
        .describe_execution(&h.missing_execution())
        .await
        .unwrap_err();
    assert_eq!(err.aws_name(), "ExecutionDoesNotExist", "{err}");
}

async fn token_calls_get_step_functions_errors(h: impl Harness) {
    let machine = h
        .machine(
            "tokens",
            &waiting_task_definition(json!({"TimeoutSeconds": 1})),
        )
        .await;
    let engine = h.engine();
    let err = engine
        .send_task_success("not-a-token", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidToken), "{err}");

    let done = engine
        .start_execution(&machine, Some("consumed"), &json!({"n": 1}))
        .await
        .unwrap();
    let token = h.next_token().await;
    engine
        .send_task_success(&token, &json!({"first": true}))
        .await
        .unwrap();
    let again = engine
        .send_task_success(&token, &json!({"second": true}))
        .await;
    refused_as_consumed(&h, again);
    let again = engine.send_task_failure(&token, Some("E"), None).await;
    refused_as_consumed(&h, again);
    let d = h.wait_for(&done.execution_arn).await;
    assert_eq!(
        (d.status.as_str(), d.output),
        ("SUCCEEDED", Some(json!({"first": true})))
    );

    let late = engine
        .start_execution(&machine, Some("late"), &json!({"n": 2}))
        .await
        .unwrap();
    let token = h.next_token().await;
    let d = h.wait_for(&late.execution_arn).await;
    assert_eq!(
        (d.status.as_str(), d.error.as_deref()),
        ("FAILED", Some("States.Timeout"))
    );
    let err = engine
        .send_task_success(&token, &json!({}))
        .await
        .unwrap_err();
    assert!(
        h.consumed_token_errors().contains(&err.aws_name()),
        "a timed-out token is refused: {err}"
    );
}

async fn heartbeats_keep_a_task_alive(h: impl Harness) {
    let machine = h
        .machine(
            "heartbeat",
            &waiting_task_definition(json!({"HeartbeatSeconds": 1})),
        )
        .await;
    let engine = h.engine();
    let started = engine
        .start_execution(&machine, None, &json!({"n": 1}))
        .await
        .unwrap();
    let token = h.next_token().await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        engine.send_task_heartbeat(&token).await.unwrap();
    }
    engine
        .send_task_success(&token, &json!({"alive": true}))
        .await
        .unwrap();
    let d = h.wait_for(&started.execution_arn).await;
    assert_eq!(
        d.status, "SUCCEEDED",
        "2 s of work with a 1 s heartbeat: {d:?}"
    );
}

async fn stop_aborts_a_running_execution(h: impl Harness) {
    let machine = h.machine("stop", &waiting_task_definition(json!({}))).await;
    let engine = h.engine();
    let started = engine
        .start_execution(&machine, None, &json!({"n": 1}))
        .await
        .unwrap();
    let token = h.next_token().await;
    engine
        .stop_execution(
            &started.execution_arn,
            Some("Run.Cancelled"),
            Some("cancelled by dev"),
        )
        .await
        .unwrap();
    if h.emulated() {
        // Deviation: the emulator accepts StopExecution but leaves an
        // execution that waits for a task token RUNNING.
        return;
    }
    let d = h.wait_for(&started.execution_arn).await;
    assert_eq!(d.status, "ABORTED");
    assert!(d.stop_date.is_some());
    let err = engine
        .send_task_success(&token, &json!({}))
        .await
        .unwrap_err();
    assert!(h.consumed_token_errors().contains(&err.aws_name()), "{err}");
    let history = engine
        .get_execution_history(&started.execution_arn)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().event_type, "ExecutionAborted");
}

async fn history_uses_step_functions_event_names(h: impl Harness) {
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
    let machine = h.machine("history", &def).await;
    h.echo().await;
    let engine = h.engine();
    let started = engine
        .start_execution(&machine, None, &json!({}))
        .await
        .unwrap();
    let d = h.wait_for(&started.execution_arn).await;
    assert_eq!(d.status, "SUCCEEDED");
    let history = engine
        .get_execution_history(&started.execution_arn)
        .await
        .unwrap();
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
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
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    assert_eq!(types.first(), Some(&"ExecutionStarted"));
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    let entered = history
        .iter()
        .find(|e| e.event_type == "TaskStateEntered")
        .unwrap();
    assert_eq!(entered.details["name"], "Ask", "{entered:?}");
    let succeeded = history
        .iter()
        .find(|e| e.event_type == "TaskSucceeded")
        .unwrap();
    let output: Value =
        serde_json::from_str(succeeded.details["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"q": 1}), "{succeeded:?}");
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

async fn a_handed_over_message_is_delivered_but_not_stored(t: StoreUnderTest) {
    async fn next(queue: &mut mpsc::UnboundedReceiver<QueueMessage>) -> QueueMessage {
        tokio::time::timeout(Duration::from_secs(10), queue.recv())
            .await
            .expect("a message in time")
            .expect("the queue is open")
    }
    let first = engine_on(&t).await;
    // Nobody listens yet: it is stored, to wait for a consumer.
    first
        .hand_over(QUEUE, "before anyone listens".into())
        .await
        .unwrap();
    let mut queue = first.subscribe(QUEUE).await.unwrap();
    assert_eq!(next(&mut queue).await.body, "before anyone listens");
    first.hand_over(QUEUE, "handed over".into()).await.unwrap();
    let handed = next(&mut queue).await;
    assert_eq!(handed.body, "handed over");
    assert_eq!(
        first.queued_messages(QUEUE).await.unwrap(),
        2,
        "both are in flight until acknowledged"
    );
    first.ack(&handed.id).await.unwrap();
    assert_eq!(first.queued_messages(QUEUE).await.unwrap(), 1);
    first
        .hand_over(QUEUE, "gone with the process".into())
        .await
        .unwrap();
    assert_eq!(next(&mut queue).await.body, "gone with the process");
    // The consumer stops listening: what is handed over now is stored.
    drop(queue);
    first
        .hand_over(QUEUE, "after the consumer left".into())
        .await
        .unwrap();
    drop(first);

    // The next life gets only the stored ones again.
    let second = engine_on(&t).await;
    let mut queue = second.subscribe(QUEUE).await.unwrap();
    let mut again = vec![next(&mut queue).await.body, next(&mut queue).await.body];
    again.sort();
    assert_eq!(again, ["after the consumer left", "before anyone listens"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), queue.recv())
            .await
            .is_err(),
        "a message handed over to a listening consumer was never stored"
    );
    assert_eq!(second.queued_messages(QUEUE).await.unwrap(), 2);
}

/// `queue::local::consume` handles each message (stored or handed over) on
/// a task of its own and acknowledges it; the engine holds the consumer
/// weakly, so when the runtime stops the handler (and what it holds) is let
/// go although the engine lives on.
#[test]
fn a_local_consumer_acks_what_it_handles_and_goes_with_its_runtime() {
    struct Recording {
        bodies: std::sync::Mutex<Vec<String>>,
        handled: tokio::sync::Notify,
    }
    #[async_trait]
    impl MessageHandler for Recording {
        async fn handle(&self, body: &str) -> Result<(), HandlerError> {
            self.bodies.lock().unwrap().push(body.to_owned());
            self.handled.notify_one();
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let database = DatabaseConfig::Sqlite {
        path: dir.path().join("mw.db"),
    };
    let recording = Arc::new(Recording {
        bodies: Default::default(),
        handled: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = runtime.block_on(async {
        let backend = myloware::store::open(&database).await.unwrap();
        let engine = LocalEngine::start(backend.engine_store().unwrap())
            .await
            .unwrap();
        // Stored before anyone listens: delivered once the consumer subscribes.
        engine.send_message(QUEUE, "stored".into()).await.unwrap();
        let handler: SharedHandler = recording.clone();
        myloware::engine::local::consume(&engine, QUEUE, handler)
            .await
            .unwrap();
        engine.hand_over(QUEUE, "handed over".into()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while recording.bodies.lock().unwrap().len() < 2 {
                recording.handled.notified().await;
            }
            while engine.queued_messages(QUEUE).await.unwrap() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("both handled and acknowledged in time");
        engine
    });
    let mut bodies = recording.bodies.lock().unwrap().clone();
    bodies.sort();
    assert_eq!(bodies, ["handed over", "stored"], "each handled once");
    assert!(
        Arc::strong_count(&recording) > 1,
        "the consumer holds the handler while its runtime runs"
    );
    drop(runtime);
    assert_eq!(
        Arc::strong_count(&recording),
        1,
        "the handler is let go with the runtime, though the engine lives on"
    );
    drop(engine);
}
