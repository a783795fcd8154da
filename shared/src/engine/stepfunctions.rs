//! The `Engine` port on AWS Step Functions (or an emulator at
//! `AWS_ENDPOINT_URL`): each call is the API call of the same name, each
//! error the API's error by name, history events with the local engine's
//! shapes (`details` = the API's `…EventDetails` structure, as JSON).
//! Also here: deploying the persona graphs (`mw statemachine deploy`) and
//! finding the deployed ones by name.
//!
//! The calls that move runs forward — `StartExecution`, `SendTaskSuccess`,
//! `SendTaskFailure`, `SendTaskHeartbeat` — are retried here, not by the
//! SDK: a throttle, a 5xx or no answer is tried again up to
//! `CALL_ATTEMPTS` times with full-jitter exponential backoff (at most about
//! `CALL_BUDGET` in all, well within any function's timeout). Owning the
//! loop tells a re-send from a first send: a re-sent task completion that
//! finds its token done (`TaskDoesNotExist`, `TaskTimedOut`, or
//! `InvalidToken`, which Step Functions answers once the execution has
//! moved on) means an earlier try took effect and its answer was lost — it
//! is done; a re-sent start that finds its execution already there answers
//! that execution.
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::HistoryEvent as SdkEvent;
use aws_sdk_sfn::Client;
use serde_json::{json, Map, Value};

use crate::aws::error_parts;
use crate::engine::asl::machine::HistoryEvent;
use crate::engine::{execution_name, Engine, EngineError, ExecutionDescription, StartedExecution};

/// The Step Functions engine.
#[derive(Debug, Clone)]
pub struct StepFunctionsEngine {
    client: Client,
    /// The same client without the SDK's own retries: the calls that move
    /// runs forward retry in `retrying`, which knows a re-send from a first
    /// send.
    once: Client,
}

/// Tries of a run-moving call (the SDK's default is 3).
pub const CALL_ATTEMPTS: u32 = 8;
/// The first backoff; each next one doubles, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// The most all the backoffs of one call add up to: 0.1 + 0.2 + … + 4 + 4 s
/// at worst, 10.3 s; the full jitter halves that on average.
pub const CALL_BUDGET: Duration = Duration::from_millis(10_300);

/// The backoff before try `attempt + 1`: a random time up to
/// `FIRST_BACKOFF × 2^(attempt-1)`, at most `MAX_BACKOFF` ("full jitter"),
/// so that many callers throttled together do not come back together.
fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    ceiling.mul_f64(rand::random::<f64>())
}

/// How a call ended after its tries: its outcome, and whether an earlier
/// try may have taken effect (it was answered with a 5xx or not at all).
struct Tried<T> {
    outcome: Result<T, EngineError>,
    resent: bool,
}

/// Runs `call` until it succeeds, fails for good, or `CALL_ATTEMPTS` tries
/// were throttled, failed inside the service or went unanswered.
async fn retrying<T, F, Fut>(operation: &'static str, mut call: F) -> Tried<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let mut attempt = 1;
    let mut resent = false;
    loop {
        match call().await {
            Err(err) if err.is_transient() && attempt < CALL_ATTEMPTS => {
                let wait = backoff(attempt);
                tracing::warn!(operation, attempt, retry_in_ms = wait.as_millis() as u64, error = %err,
                    "Step Functions call not done; trying again");
                crate::telemetry::metrics::count(
                    "mw_aws_call_retries_total",
                    "AWS calls tried again after a throttle, a 5xx or no answer, by operation and error.",
                    &[("operation", operation), ("error", err.aws_name())],
                );
                // A throttle is refused before it acts; anything else may
                // have acted with its answer lost.
                resent |= !err.is_throttle();
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            outcome => return Tried { outcome, resent },
        }
    }
}

/// A task completion's outcome: after a re-send, a token found done means
/// an earlier try completed it.
fn completed<T: Default>(operation: &'static str, tried: Tried<T>) -> Result<T, EngineError> {
    match tried.outcome {
        Err(
            err @ (EngineError::TaskDoesNotExist
            | EngineError::TaskTimedOut
            | EngineError::InvalidToken),
        ) if tried.resent => {
            tracing::info!(
                operation,
                answer = err.aws_name(),
                "a re-sent task completion found its token done: an earlier try took effect"
            );
            Ok(T::default())
        }
        other => other,
    }
}

/// Maps an SDK error to the port's error of the same name.
fn engine_error<E>(err: aws_sdk_sfn::error::SdkError<E>) -> EngineError
where
    E: aws_sdk_sfn::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message) = error_parts(&err);
    match code.as_str() {
        "ExecutionAlreadyExists" => EngineError::ExecutionAlreadyExists(message),
        "ExecutionDoesNotExist" => EngineError::ExecutionDoesNotExist(message),
        "StateMachineDoesNotExist" => EngineError::StateMachineDoesNotExist(message),
        "InvalidName" => EngineError::InvalidName(message),
        "InvalidDefinition" => EngineError::InvalidDefinition(message),
        "InvalidToken" => EngineError::InvalidToken,
        "TaskDoesNotExist" => EngineError::TaskDoesNotExist,
        "TaskTimedOut" => EngineError::TaskTimedOut,
        _ => EngineError::Service { code, message },
    }
}

impl StepFunctionsEngine {
    pub fn new(config: &SdkConfig) -> Self {
        let once = aws_sdk_sfn::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: Client::new(config),
            once: Client::from_conf(once),
        }
    }

    /// The execution `name` of `state_machine_arn`, when it exists: what a
    /// start whose answer was lost (or a second start of a queued run)
    /// finds. Step Functions names executions
    /// `arn:…:execution:<machine>:<name>`.
    pub async fn existing_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
    ) -> Result<StartedExecution, EngineError> {
        let arn = crate::engine::arn::execution_of(state_machine_arn, name).ok_or_else(|| {
            EngineError::ExecutionDoesNotExist(format!(
                "{state_machine_arn} is not a state machine ARN"
            ))
        })?;
        let described = self.describe_execution(&arn).await?;
        Ok(StartedExecution {
            execution_arn: described.execution_arn,
            start_date: described.start_date,
        })
    }

    /// Creates the state machine `name` from `definition`, or updates its
    /// definition when it exists; answers its ARN. `role_arn` is the role
    /// Step Functions assumes to send the task messages.
    pub async fn deploy(
        &self,
        name: &str,
        definition: &str,
        role_arn: &str,
    ) -> Result<String, EngineError> {
        let created = self
            .client
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(role_arn)
            .send()
            .await;
        match created {
            Ok(out) => Ok(out.state_machine_arn().to_owned()),
            Err(err) if err.code() == Some("StateMachineAlreadyExists") => {
                let arn = self
                    .find_by_names(&[name])
                    .await?
                    .remove(name)
                    .ok_or_else(|| EngineError::StateMachineDoesNotExist(name.to_owned()))?;
                self.client
                    .update_state_machine()
                    .state_machine_arn(&arn)
                    .definition(definition)
                    .role_arn(role_arn)
                    .send()
                    .await
                    .map_err(engine_error)?;
                Ok(arn)
            }
            Err(err) => Err(engine_error(err)),
        }
    }

    /// The ARNs of the state machines with these names (the ones found).
    pub async fn find_by_names(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, String>, EngineError> {
        let mut found = HashMap::new();
        let mut pages = self.client.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            for machine in page.map_err(engine_error)?.state_machines() {
                if names.contains(&machine.name()) {
                    found.insert(
                        machine.name().to_owned(),
                        machine.state_machine_arn().to_owned(),
                    );
                }
            }
        }
        Ok(found)
    }

    /// The state machine of each project in `projects`: the ARN `explicit`
    /// gives, else the one named `<prefix><project>`. A project with
    /// neither is an error that says how to deploy it.
    pub async fn resolve(
        &self,
        projects: &[&str],
        explicit: &BTreeMap<String, String>,
        prefix: &str,
    ) -> Result<HashMap<String, String>, EngineError> {
        let wanted: Vec<String> = projects
            .iter()
            .filter(|p| !explicit.contains_key(**p))
            .map(|p| format!("{prefix}{p}"))
            .collect();
        let by_name = if wanted.is_empty() {
            HashMap::new()
        } else {
            let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
            self.find_by_names(&names).await?
        };
        let mut arns = HashMap::new();
        let mut missing = Vec::new();
        for project in projects {
            let arn = explicit
                .get(*project)
                .or_else(|| by_name.get(&format!("{prefix}{project}")));
            match arn {
                Some(arn) => {
                    arns.insert((*project).to_owned(), arn.clone());
                }
                None => missing.push(format!("{prefix}{project}")),
            }
        }
        if missing.is_empty() {
            Ok(arns)
        } else {
            Err(EngineError::StateMachineDoesNotExist(format!(
                "no state machine named {}: deploy them (`sam deploy`, or `mw statemachine deploy` \
                 against an emulator) or set STATE_MACHINE_ARNS",
                missing.join(", ")
            )))
        }
    }
}

// Each method's signature repeats the `Engine` trait's, as every adapter's must.
#[async_trait]
impl Engine for StepFunctionsEngine {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: &Value,
    ) -> Result<StartedExecution, EngineError> {
        // Checked here as Step Functions checks it, so an emulator that
        // does not check answers the same.
        let name = execution_name(name)?;
        let input = input.to_string();
        let tried = retrying("StartExecution", || async {
            let out = self
                .once
                .start_execution()
                .state_machine_arn(state_machine_arn)
                .name(&name)
                .input(&input)
                .send()
                .await
                .map_err(engine_error)?;
            Ok(StartedExecution {
                execution_arn: out.execution_arn().to_owned(),
                start_date: to_chrono(out.start_date()),
            })
        })
        .await;
        match tried.outcome {
            // Started by a try whose answer was lost: that execution.
            Err(EngineError::ExecutionAlreadyExists(_)) if tried.resent => {
                tracing::info!(execution = %name, "a re-sent start found its execution: an earlier try started it");
                self.existing_execution(state_machine_arn, &name).await
            }
            other => other,
        }
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), EngineError> {
        let output = output.to_string();
        let tried = retrying("SendTaskSuccess", || async {
            self.once
                .send_task_success()
                .task_token(token)
                .output(&output)
                .send()
                .await
                .map(|_| ())
                .map_err(engine_error)
        })
        .await;
        completed("SendTaskSuccess", tried)
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        let tried = retrying("SendTaskFailure", || async {
            self.once
                .send_task_failure()
                .task_token(token)
                .set_error(error.map(str::to_owned))
                .set_cause(cause.map(str::to_owned))
                .send()
                .await
                .map(|_| ())
                .map_err(engine_error)
        })
        .await;
        completed("SendTaskFailure", tried)
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), EngineError> {
        let tried = retrying("SendTaskHeartbeat", || async {
            self.once
                .send_task_heartbeat()
                .task_token(token)
                .send()
                .await
                .map(|_| ())
                .map_err(engine_error)
        })
        .await;
        tried.outcome
    }

    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        self.client
            .stop_execution()
            .execution_arn(execution_arn)
            .set_error(error.map(str::to_owned))
            .set_cause(cause.map(str::to_owned))
            .send()
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, EngineError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(engine_error)?;
        Ok(ExecutionDescription {
            execution_arn: out.execution_arn().to_owned(),
            state_machine_arn: out.state_machine_arn().to_owned(),
            name: out.name().unwrap_or_default().to_owned(),
            status: out.status().as_str().to_owned(),
            input: out.input().map(json_or_text).unwrap_or(Value::Null),
            output: out.output().map(json_or_text),
            error: out.error().map(str::to_owned),
            cause: out.cause().map(str::to_owned),
            start_date: to_chrono(out.start_date()),
            stop_date: out.stop_date().map(to_chrono),
        })
    }

    async fn get_execution_history(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            events.extend(
                page.map_err(engine_error)?
                    .events()
                    .iter()
                    .map(history_event),
            );
        }
        Ok(events)
    }
}

/// JSON text as JSON; text that is not JSON as a string (an emulator may
/// answer a bare string output unquoted).
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// An API history event in the local engine's shape.
fn history_event(e: &SdkEvent) -> HistoryEvent {
    HistoryEvent {
        id: e.id(),
        previous_event_id: e.previous_event_id(),
        timestamp: to_chrono(e.timestamp()),
        event_type: e.r#type().as_str().to_owned(),
        details: event_details(e),
    }
}

/// The event's details structure as JSON, with the API's field names;
/// absent fields left out.
fn event_details(e: &SdkEvent) -> Value {
    let mut d = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            d.insert(key.to_owned(), v);
        }
    };
    let text = |s: Option<&str>| s.map(|s| json!(s));
    if let Some(x) = e.state_entered_event_details() {
        put("name", Some(json!(x.name())));
        put("input", text(x.input()));
    } else if let Some(x) = e.state_exited_event_details() {
        put("name", Some(json!(x.name())));
        put("output", text(x.output()));
    } else if let Some(x) = e.execution_started_event_details() {
        put("input", text(x.input()));
        put("roleArn", text(x.role_arn()));
    } else if let Some(x) = e.execution_succeeded_event_details() {
        put("output", text(x.output()));
    } else if let Some(x) = e.execution_failed_event_details() {
        put("error", text(x.error()));
        put("cause", text(x.cause()));
    } else if let Some(x) = e.execution_aborted_event_details() {
        put("error", text(x.error()));
        put("cause", text(x.cause()));
    } else if let Some(x) = e.execution_timed_out_event_details() {
        put("error", text(x.error()));
        put("cause", text(x.cause()));
    } else if let Some(x) = e.task_scheduled_event_details() {
        put("resourceType", Some(json!(x.resource_type())));
        put("resource", Some(json!(x.resource())));
        put("region", Some(json!(x.region())));
        put("parameters", Some(json!(x.parameters())));
        put("timeoutInSeconds", x.timeout_in_seconds().map(|v| json!(v)));
        put(
            "heartbeatInSeconds",
            x.heartbeat_in_seconds().map(|v| json!(v)),
        );
    } else if let Some(x) = e.task_started_event_details() {
        put("resourceType", Some(json!(x.resource_type())));
        put("resource", Some(json!(x.resource())));
    } else if let Some(x) = e.task_submitted_event_details() {
        put("resourceType", Some(json!(x.resource_type())));
        put("resource", Some(json!(x.resource())));
        put("output", text(x.output()));
    } else if let Some(x) = e.task_succeeded_event_details() {
        put("resourceType", Some(json!(x.resource_type())));
        put("resource", Some(json!(x.resource())));
        put("output", text(x.output()));
    } else if let Some(x) = e.task_failed_event_details() {
        put("resourceType", Some(json!(x.resource_type())));
        put("resource", Some(json!(x.resource())));
        put("error", text(x.error()));
        put("cause", text(x.cause()));
    } else if let Some(x) = e.task_timed_out_event_details() {
        put("resourceType", Some(json!(x.resource_type())));
        put("resource", Some(json!(x.resource())));
        put("error", text(x.error()));
        put("cause", text(x.cause()));
    } else if let Some(x) = e.map_state_started_event_details() {
        put("length", Some(json!(x.length())));
    } else if let Some(x) = e
        .map_iteration_started_event_details()
        .or(e.map_iteration_succeeded_event_details())
        .or(e.map_iteration_failed_event_details())
        .or(e.map_iteration_aborted_event_details())
    {
        put("name", text(x.name()));
        put("index", Some(json!(x.index())));
    }
    Value::Object(d)
}

/// An SDK time as a `chrono` time.
fn to_chrono(t: &aws_sdk_sfn::primitives::DateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs_grow_with_full_jitter_and_stay_within_the_budget() {
        let mut ceilings = Duration::ZERO;
        for attempt in 1..CALL_ATTEMPTS {
            let ceiling = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1))
                .min(MAX_BACKOFF);
            ceilings += ceiling;
            for _ in 0..50 {
                assert!(backoff(attempt) <= ceiling);
            }
        }
        assert!(ceilings <= CALL_BUDGET, "{ceilings:?}");
    }

    #[test]
    fn an_execution_arn_is_its_machine_s_with_its_name() {
        assert_eq!(
            crate::engine::arn::execution_of(
                "arn:aws:states:us-east-1:123:stateMachine:mw-aismr",
                "r1"
            )
            .as_deref(),
            Some("arn:aws:states:us-east-1:123:execution:mw-aismr:r1")
        );
        assert_eq!(crate::engine::arn::execution_of("nonsense", "r1"), None);
    }
}
