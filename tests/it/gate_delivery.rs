//! A gate's decision reaches the engine even when the call that should
//! deliver it fails: the decision is stored first, and sent again by a second
//! click or by the reconciler until the engine takes it.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use myloware::domain::{Gate, HitlDecision, RunStatus};
use myloware::engine::asl::machine::HistoryEvent;
use myloware::engine::{Engine, EngineError, ExecutionDescription, StartedExecution};
use myloware_tests::TestStack;
use serde_json::{json, Value};

/// An engine whose next `failures` task completions fail as Step Functions
/// does when throttled, before reaching the engine.
#[derive(Debug)]
struct FailingCompletions {
    inner: Arc<dyn Engine>,
    failures: AtomicUsize,
    /// The task completions asked for: the token, and `success` or the error.
    completed: std::sync::Mutex<Vec<(String, String)>>,
}

impl FailingCompletions {
    fn fail(&self) -> Result<(), EngineError> {
        match self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Err(EngineError::Service {
                code: "ThrottlingException".into(),
                message: "Rate exceeded".into(),
            }),
            Err(_) => Ok(()),
        }
    }
}

#[async_trait]
impl Engine for FailingCompletions {
    async fn start_execution(
        &self,
        arn: &str,
        name: Option<&str>,
        input: &Value,
    ) -> Result<StartedExecution, EngineError> {
        self.inner.start_execution(arn, name, input).await
    }
    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), EngineError> {
        let completed = (token.to_owned(), "success".to_owned());
        self.completed.lock().unwrap().push(completed);
        self.fail()?;
        self.inner.send_task_success(token, output).await
    }
    async fn send_task_failure(
        &self,
        token: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        let completed = (token.to_owned(), error.unwrap_or_default().to_owned());
        self.completed.lock().unwrap().push(completed);
        self.fail()?;
        self.inner.send_task_failure(token, error, cause).await
    }
    async fn send_task_heartbeat(&self, token: &str) -> Result<(), EngineError> {
        self.inner.send_task_heartbeat(token).await
    }
    async fn stop_execution(
        &self,
        arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        self.inner.stop_execution(arn, error, cause).await
    }
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription, EngineError> {
        self.inner.describe_execution(arn).await
    }
    async fn get_execution_history(&self, arn: &str) -> Result<Vec<HistoryEvent>, EngineError> {
        self.inner.get_execution_history(arn).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_whose_engine_call_failed_is_sent_again_and_the_run_publishes() {
    let t = TestStack::start(&[("RECONCILE_INTERVAL_SECS", "1")]).await;
    let run = t.start_run("aismr").await;
    let id = run["run_id"].as_str().unwrap().to_owned();
    let failing = t.stack.pipeline.clone();
    let failing = myloware::pipeline::Pipeline {
        engine: Arc::new(FailingCompletions {
            inner: failing.engine.clone(),
            failures: AtomicUsize::new(1),
            completed: Default::default(),
        }),
        ..failing
    };

    // Ideate: the engine call fails once; the decision is kept, and a
    // second click sends it again.
    t.wait_for_gate(&id, "ideate").await;
    let ideate: Gate = "ideate".parse().unwrap();
    let err = failing
        .decide_gate(
            &id,
            &ideate,
            HitlDecision::Approved,
            "api-key:ops",
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ThrottlingException"), "{err}");
    let e = t.evidence(&id).await;
    let gate = &e.hitl_requests[0];
    assert_eq!(
        gate.decision,
        Some(HitlDecision::Approved),
        "the decision is stored"
    );
    assert_eq!(gate.delivered_at, None, "and known to be undelivered");
    let (status, answer) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decided_now"], false, "{answer}");
    assert_eq!(
        answer["resent"], true,
        "a second click sends it again: {answer}"
    );
    assert_eq!(
        answer["request"]["decided_by"], "api-key:ops",
        "the first decision stands"
    );
    let e = t.wait_for_gate(&id, "prepublish").await;
    assert!(e.hitl_requests[0].delivered_at.is_some());

    // Prepublish: the engine call fails again; nobody clicks twice, and the
    // reconciler delivers it.
    let failing = myloware::pipeline::Pipeline {
        engine: Arc::new(FailingCompletions {
            inner: t.stack.pipeline.engine.clone(),
            failures: AtomicUsize::new(1),
            completed: Default::default(),
        }),
        ..t.stack.pipeline.clone()
    };
    let prepublish: Gate = "prepublish".parse().unwrap();
    failing
        .decide_gate(&id, &prepublish, HitlDecision::Approved, "link", None, None)
        .await
        .unwrap_err();
    let e = t.wait_for_status(&id, RunStatus::Published).await;
    assert!(e.hitl_requests.iter().all(|g| g.delivered_at.is_some()));
    let approvals = e
        .artifacts
        .iter()
        .filter(|a| a.artifact_type.as_str() == "hitl.approval")
        .count();
    assert_eq!(
        approvals, 2,
        "one approval record per gate, however often it was sent"
    );
    // Approved once more after it all: nothing is sent, nothing changes.
    let (_, answer) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/prepublish"), json!({}))
        .await;
    assert_eq!(
        (answer["decided_now"].clone(), answer["resent"].clone()),
        (json!(false), json!(false))
    );
    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejection_whose_engine_call_failed_still_ends_the_run_rejected() {
    let t = TestStack::start(&[("RECONCILE_INTERVAL_SECS", "1")]).await;
    let run = t.start_run("aismr").await;
    let id = run["run_id"].as_str().unwrap().to_owned();
    t.wait_for_gate(&id, "ideate").await;
    let failing = myloware::pipeline::Pipeline {
        engine: Arc::new(FailingCompletions {
            inner: t.stack.pipeline.engine.clone(),
            failures: AtomicUsize::new(1),
            completed: Default::default(),
        }),
        ..t.stack.pipeline.clone()
    };
    failing
        .decide_gate(
            &id,
            &"ideate".parse().unwrap(),
            HitlDecision::Rejected,
            "link",
            None,
            Some("off brand".into()),
        )
        .await
        .unwrap_err();
    let e = t.wait_for_status(&id, RunStatus::Rejected).await;
    assert!(e.hitl_requests[0].delivered_at.is_some());
    assert_eq!(e.hitl_requests[0].comment.as_deref(), Some("off brand"));
    t.stack.shutdown().await;
}

/// A gate's task that comes again after its decision (the state machine
/// trying the gate again under a new token, or its message delivered twice)
/// is given the stored decision, not failed as "already decided".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_task_that_comes_again_after_its_decision_is_given_the_decision() {
    let t = TestStack::start(&[]).await;
    let run = t.start_run("aismr").await;
    let id = run["run_id"].as_str().unwrap().to_owned();
    t.wait_for_gate(&id, "ideate").await;
    let (status, body) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let again = myloware::pipeline::worker::TaskMessage {
        task: "gate".into(),
        run_id: id.parse().unwrap(),
        persona: None,
        gate: Some("ideate".parse::<Gate>().unwrap()),
        input: json!({}),
        // A token the engine no longer knows: the decision counts as given.
        task_token: "a-token-tried-again".into(),
        attempt: 1,
    };
    let engine = Arc::new(FailingCompletions {
        inner: t.stack.pipeline.engine.clone(),
        failures: AtomicUsize::new(0),
        completed: Default::default(),
    });
    let watched = myloware::pipeline::Pipeline {
        engine: engine.clone(),
        ..t.stack.pipeline.clone()
    };
    watched
        .run_task(again)
        .await
        .expect("the decision goes to the task that came again");
    assert_eq!(
        *engine.completed.lock().unwrap(),
        [("a-token-tried-again".to_owned(), "success".to_owned())],
        "the approval, not a failure"
    );
    let e = t.wait_for_gate(&id, "prepublish").await;
    let ideate = e
        .hitl_requests
        .iter()
        .find(|r| r.gate.as_str() == "ideate")
        .unwrap();
    assert_eq!(ideate.decision, Some(HitlDecision::Approved));
    assert_eq!(
        e.artifacts
            .iter()
            .filter(|a| a.artifact_type.as_str() == "hitl.approval")
            .count(),
        1,
        "the decision recorded once"
    );
}
