//! Task states: the SQS integrations, task tokens, and task timeouts and heartbeats.

use super::frame::{Deadline, TaskWait, TimerKind, Wait};
use super::history::{details, json_text};
use super::run::{Run, Work};
use super::Effect;
use crate::engine::asl::context::ContextObject;
use crate::engine::asl::error::{names, StatesError};
use crate::engine::asl::model::{Resource, Seconds, StateKind, TaskState};
use base64::Engine as _;
use chrono::Duration;
use rand::RngCore;
use serde_json::{json, Value};

/// Random bytes in a task token (256 bits).
const TOKEN_BYTES: usize = 32;
/// Length of a token: URL-safe base64 of [`TOKEN_BYTES`], unpadded.
const TOKEN_CHARS: usize = 43;

/// A new unguessable task token: the execution's prefix, then 256 random bits.
fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let random = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{prefix}{random}")
}

/// Whether `token` has the shape of a token this engine issues (its random
/// part; the prefix is the driver's business).
pub(super) fn is_well_formed(token: &str) -> bool {
    let Some(random) = token
        .len()
        .checked_sub(TOKEN_CHARS)
        .and_then(|at| token.get(at..))
    else {
        return false;
    };
    random
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `(resourceType, resource)` as Step Functions splits an integration ARN in history events.
fn resource_names(resource: &Resource) -> (String, String) {
    let arn = resource.arn();
    match arn.strip_prefix("arn:aws:states:::") {
        Some(rest) => match rest.split_once(':') {
            Some((service, action)) => (service.to_owned(), action.to_owned()),
            None => (rest.to_owned(), String::new()),
        },
        None => ("unknown".to_owned(), arn.to_owned()),
    }
}

fn task_of<'d>(run: &Run<'_, 'd>, frame: u64) -> Option<&'d TaskState> {
    match &run.state_of(frame)?.kind {
        StateKind::Task(t) => Some(t),
        _ => None,
    }
}

struct Prepared {
    parameters: Value,
    timeout: Option<u64>,
    heartbeat: Option<u64>,
}

fn seconds(
    spec: &Option<Seconds>,
    effective: &Value,
    ctx: &ContextObject<'_>,
    field: &str,
) -> Result<Option<u64>, StatesError> {
    match spec {
        None => Ok(None),
        Some(Seconds::Fixed(n)) => Ok(Some(*n)),
        Some(Seconds::Path(p)) => match p.select(effective, ctx).as_ref().and_then(Value::as_u64) {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(StatesError::runtime(format!(
                "The {field} '{}' must reference a positive whole number.",
                p.path()
            ))),
        },
    }
}

pub(super) fn attempt(run: &mut Run<'_, '_>, frame: u64) {
    let Some(task) = task_of(run, frame) else {
        return;
    };
    let token = matches!(task.resource, Resource::SqsSendMessageWaitForTaskToken)
        .then(|| new_token(&run.snap.context.token_prefix));
    let prepared = {
        let f = run.frame(frame);
        let ctx = ContextObject::lazy(run.context_parts(f, token.as_deref(), None));
        (|| {
            let effective = task.input_path.apply(f.input.clone(), &ctx)?;
            let timeout = seconds(&task.timeout, &effective, &ctx, "TimeoutSecondsPath")?;
            let heartbeat = seconds(&task.heartbeat, &effective, &ctx, "HeartbeatSecondsPath")?;
            let parameters = match &task.parameters {
                Some(t) => t.eval(&effective, &ctx)?,
                None => effective,
            };
            Ok(Prepared {
                parameters,
                timeout,
                heartbeat,
            })
        })()
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(error) => return run.then(frame, Err(error)),
    };
    if let Resource::Unsupported(arn) = &task.resource {
        let error = StatesError::runtime(format!(
            "The resource '{arn}' is not supported by the local engine; only {} and {} are.",
            Resource::SQS_SEND_MESSAGE,
            Resource::SQS_SEND_MESSAGE_WAIT
        ));
        return run.then(frame, Err(error));
    }
    let (queue_url, body) = match sqs_message(&prepared.parameters) {
        Ok(message) => message,
        Err(error) => return run.then(frame, Err(error)),
    };
    let (resource_type, resource) = resource_names(&task.resource);
    run.emit(
        Some(frame),
        "TaskScheduled",
        details([
            ("resourceType", json!(resource_type)),
            ("resource", json!(resource)),
            ("region", json!("local")),
            ("parameters", json_text(&prepared.parameters).into()),
            ("timeoutInSeconds", json!(prepared.timeout)),
            ("heartbeatInSeconds", json!(prepared.heartbeat)),
        ]),
    );
    let names_only = details([
        ("resourceType", json!(resource_type)),
        ("resource", json!(resource)),
    ]);
    run.emit(Some(frame), "TaskStarted", names_only);
    let sent = json!({
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "MD5OfMessageBody": format!("{:x}", md5::compute(body.as_bytes())),
    });
    run.effect(Effect::SendMessage {
        queue_url,
        message_body: body,
        task_token: token.clone(),
    });
    let with_output = |output: &Value| {
        details([
            ("resourceType", json!(resource_type)),
            ("resource", json!(resource)),
            ("output", json_text(output).into()),
        ])
    };
    run.emit(Some(frame), "TaskSubmitted", with_output(&sent));
    let Some(token) = token else {
        run.emit(Some(frame), "TaskSucceeded", with_output(&sent));
        return run.push(Work::Result {
            frame,
            result: sent,
        });
    };
    let deadline = |run: &mut Run<'_, '_>, kind, seconds: Option<u64>| {
        seconds.map(|seconds| {
            let at = run.now + Duration::seconds(seconds as i64);
            let timer = run.schedule(Some(frame), kind, at);
            Deadline { timer, at, seconds }
        })
    };
    let timeout = deadline(run, TimerKind::TaskTimeout, prepared.timeout);
    let heartbeat = deadline(run, TimerKind::Heartbeat, prepared.heartbeat);
    run.snap.tokens.insert(token.clone(), frame);
    run.frame_mut(frame).wait = Wait::Task(TaskWait {
        token,
        timeout,
        heartbeat,
    });
}

/// `QueueUrl` and `MessageBody` (text as is, anything else as JSON text).
fn sqs_message(parameters: &Value) -> Result<(String, String), StatesError> {
    let queue_url = match parameters.get("QueueUrl") {
        Some(Value::String(url)) => url.clone(),
        _ => {
            return Err(StatesError::runtime(
                "The SQS task's Parameters need a string QueueUrl.",
            ))
        }
    };
    let body = match parameters.get("MessageBody") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => {
            return Err(StatesError::runtime(
                "The SQS task's Parameters need a MessageBody.",
            ))
        }
        Some(other) => json_text(other),
    };
    Ok((queue_url, body))
}

/// Stops waiting for the frame's token: cancels its timers and forgets the token.
fn close(run: &mut Run<'_, '_>, frame: u64) -> Option<TaskWait> {
    let Wait::Task(wait) = std::mem::take(&mut run.frame_mut(frame).wait) else {
        return None;
    };
    for deadline in [&wait.timeout, &wait.heartbeat].into_iter().flatten() {
        run.cancel_timer(&deadline.timer);
    }
    run.snap.tokens.remove(&wait.token);
    Some(wait)
}

fn event_names(run: &Run<'_, '_>, frame: u64) -> (String, String) {
    task_of(run, frame).map_or_else(
        || ("unknown".to_owned(), String::new()),
        |t| resource_names(&t.resource),
    )
}

pub(super) fn succeeded(run: &mut Run<'_, '_>, frame: u64, output: Value) {
    close(run, frame);
    let (resource_type, resource) = event_names(run, frame);
    run.emit(
        Some(frame),
        "TaskSucceeded",
        details([
            ("resourceType", json!(resource_type)),
            ("resource", json!(resource)),
            ("output", json_text(&output).into()),
        ]),
    );
    run.push(Work::Result {
        frame,
        result: output,
    });
}

pub(super) fn failed(run: &mut Run<'_, '_>, frame: u64, error: StatesError) {
    close(run, frame);
    task_error(run, frame, "TaskFailed", error);
}

/// Records a task's failure (`TaskFailed`, `TaskTimedOut`) and hands the
/// error to Retry/Catch.
fn task_error(run: &mut Run<'_, '_>, frame: u64, event_type: &str, error: StatesError) {
    let (resource_type, resource) = event_names(run, frame);
    run.emit(
        Some(frame),
        event_type,
        details([
            ("resourceType", json!(resource_type)),
            ("resource", json!(resource)),
            ("error", json!(error.error)),
            ("cause", json!(error.cause)),
        ]),
    );
    run.push(Work::Error { frame, error });
}

pub(super) fn heartbeat(run: &mut Run<'_, '_>, frame: u64) {
    let Wait::Task(TaskWait {
        heartbeat: Some(old),
        ..
    }) = &run.frame(frame).wait
    else {
        return; // no HeartbeatSeconds: nothing to extend
    };
    let (old_timer, seconds) = (old.timer.clone(), old.seconds);
    run.cancel_timer(&old_timer);
    let at = run.now + Duration::seconds(seconds as i64);
    let timer = run.schedule(Some(frame), TimerKind::Heartbeat, at);
    if let Wait::Task(TaskWait {
        heartbeat: Some(hb),
        ..
    }) = &mut run.frame_mut(frame).wait
    {
        *hb = Deadline { timer, at, seconds };
    }
}

pub(super) fn timed_out(run: &mut Run<'_, '_>, frame: u64, kind: TimerKind, timer_id: &str) {
    let Wait::Task(wait) = &run.frame(frame).wait else {
        return;
    };
    let current = match kind {
        TimerKind::Heartbeat => wait.heartbeat.as_ref(),
        _ => wait.timeout.as_ref(),
    };
    let Some(seconds) = current.filter(|d| d.timer == timer_id).map(|d| d.seconds) else {
        return; // a stale timer
    };
    let Some(wait) = close(run, frame) else {
        return;
    };
    run.snap.expired_tokens.push(wait.token);
    let error = match kind {
        TimerKind::Heartbeat => StatesError::heartbeat_timeout(format!(
            "The task sent no heartbeat for {seconds} s (HeartbeatSeconds)."
        )),
        _ => StatesError::new(
            names::TIMEOUT,
            format!("The task did not complete within {seconds} s (TimeoutSeconds)."),
        ),
    };
    task_error(run, frame, "TaskTimedOut", error);
}
