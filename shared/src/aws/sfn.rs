//! The `Engine` port on AWS Step Functions (or an emulator at
//! `AWS_ENDPOINT_URL`): each call is the API call of the same name, each
//! error the API's error by name, history events with the local engine's
//! shapes (`details` = the API's `…EventDetails` structure, as JSON).
//! Also here: deploying the persona graphs (`mw statemachine deploy`) and
//! finding the deployed ones by name.
use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::HistoryEvent as SdkEvent;
use aws_sdk_sfn::Client;
use serde_json::{json, Map, Value};

use super::{error_parts, to_chrono};
use crate::engine::asl::machine::HistoryEvent;
use crate::engine::{
    validate_execution_name, Engine, EngineError, ExecutionDescription, StartedExecution,
};

/// The Step Functions engine.
#[derive(Debug, Clone)]
pub struct StepFunctionsEngine {
    client: Client,
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
        Self {
            client: Client::new(config),
        }
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
        let name = match name {
            Some(name) => {
                validate_execution_name(name)?;
                name.to_owned()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(engine_error)?;
        Ok(StartedExecution {
            execution_arn: out.execution_arn().to_owned(),
            start_date: to_chrono(out.start_date()),
        })
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), EngineError> {
        self.client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        self.client
            .send_task_failure()
            .task_token(token)
            .set_error(error.map(str::to_owned))
            .set_cause(cause.map(str::to_owned))
            .send()
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), EngineError> {
        self.client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map_err(engine_error)?;
        Ok(())
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
