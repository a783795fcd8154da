use super::*;
use crate::engine::asl::driver::test_start_time;
use crate::engine::asl::{Event, EventError};
use chrono::Duration;

#[test]
fn send_message_completes_at_once() {
    let def = sm(json!({
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": "https://queue/events", "MessageBody": {"run.$": "$.run_id"}},
                "ResultPath": "$.sent",
                "Next": "Raw"
            },
            "Raw": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": "https://queue/events", "MessageBody": "plain text"},
                "ResultSelector": {"md5.$": "$.MD5OfMessageBody"},
                "ResultPath": "$.raw",
                "End": true
            }
        }
    }));
    let d = Driver::start(&def, json!({"run_id": "r1"}));
    let out = finished(&d).output.unwrap();
    assert_eq!(d.messages.len(), 2);
    assert_eq!(d.messages[0].message_body, r#"{"run":"r1"}"#);
    assert_eq!(d.messages[0].task_token, None);
    assert_eq!(d.messages[1].message_body, "plain text");
    assert_eq!(
        out["sent"]["MD5OfMessageBody"],
        format!("{:x}", md5::compute(r#"{"run":"r1"}"#))
    );
    assert!(uuid::Uuid::parse_str(out["sent"]["MessageId"].as_str().unwrap()).is_ok());
    assert_eq!(
        out["raw"],
        json!({"md5": format!("{:x}", md5::compute("plain text"))})
    );
    assert_eq!(
        &d.event_types()[1..7],
        [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited"
        ]
    );
    let scheduled = detail(&d, "TaskScheduled")[0];
    assert_eq!(scheduled["resourceType"], "sqs");
    assert_eq!(scheduled["resource"], "sendMessage");
    assert_eq!(
        scheduled["parameters"],
        r#"{"QueueUrl":"https://queue/events","MessageBody":{"run":"r1"}}"#
    );
}

#[test]
fn wait_for_task_token_round_trip() {
    let def = sm(json!({
        "StartAt": "Iggy",
        "States": {
            "Iggy": task("ideate", json!({"ResultSelector": {"idea.$": "$.input.topic"}, "ResultPath": "$.iggy", "Next": "Riley"})),
            "Riley": task("script", json!({"End": true, "OutputPath": "$.input"}))
        }
    }));
    let mut d = Driver::start(&def, json!({"topic": "cats"}));
    assert_eq!(d.snapshot.current_states(), ["Iggy"]);
    let pending = d.snapshot.pending_tokens();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state_name, "Iggy");
    let m = d.messages[0].clone();
    let token = m.task_token.clone().unwrap();
    assert_eq!(body(&m)["task_token"], json!(token));
    assert_eq!(token.len(), 43);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(d.event_types().last(), Some(&"TaskSubmitted"));
    d.run(echo_worker);
    assert_succeeded(&d, json!({"topic": "cats", "iggy": {"idea": "cats"}}));
    assert_ne!(d.messages[0].task_token, d.messages[1].task_token);
    let succeeded = detail(&d, "TaskSucceeded")[0];
    assert_eq!(succeeded["resource"], "sendMessage.waitForTaskToken");
}

#[test]
fn token_events_are_checked() {
    let def = sm(json!({"StartAt": "T", "States": {"T": task("t", json!({"End": true}))}}));
    let mut d = Driver::start(&def, json!({}));
    let token = d.messages[0].task_token.clone().unwrap();
    let other = "A".repeat(43);
    assert_eq!(
        d.send(Event::TaskHeartbeat {
            token: other.clone()
        }),
        Err(EventError::TaskDoesNotExist)
    );
    assert_eq!(
        d.send(Event::TaskHeartbeat {
            token: "nope".into()
        }),
        Err(EventError::InvalidToken)
    );
    assert_eq!(EventError::InvalidToken.aws_error_name(), "InvalidToken");
    d.send(Event::TaskHeartbeat {
        token: token.clone(),
    })
    .unwrap();
    d.send(Event::TaskSucceeded {
        token: token.clone(),
        output: json!({"done": 1}),
    })
    .unwrap();
    assert_succeeded(&d, json!({"done": 1}));
    assert_eq!(
        d.send(Event::TaskSucceeded {
            token,
            output: json!(1)
        }),
        Err(EventError::ExecutionNotRunning)
    );
    assert_eq!(
        EventError::ExecutionNotRunning.aws_error_name(),
        "TaskDoesNotExist"
    );
}

#[test]
fn task_failure_without_an_error_name_stays_null() {
    let def = sm(json!({"StartAt": "T", "States": {"T": task("t", json!({"End": true}))}}));
    let mut d = Driver::start(&def, json!({}));
    let token = d.messages[0].task_token.clone().unwrap();
    d.send(Event::TaskFailed {
        token,
        error: None,
        cause: None,
    })
    .unwrap();
    let r = finished(&d);
    assert_eq!(
        (r.status, r.error, r.cause),
        (ExecutionStatus::Failed, None, None)
    );
    assert_eq!(
        detail(&d, "TaskFailed")[0],
        &json!({"resourceType": "sqs", "resource": "sendMessage.waitForTaskToken"})
    );
    assert_eq!(detail(&d, "ExecutionFailed")[0], &json!({}));
}

#[test]
fn task_timeout_fails_the_task_and_expires_its_token() {
    let def = sm(
        json!({"StartAt": "T", "States": {"T": task("t", json!({"TimeoutSecondsPath": "$.limit", "End": true}))}}),
    );
    let mut d = Driver::start(&def, json!({"limit": 30}));
    let token = d.messages[0].task_token.clone().unwrap();
    assert_eq!(
        d.snapshot.pending_tokens()[0].timeout_at,
        Some(test_start_time() + Duration::seconds(30))
    );
    assert!(d.fire_next_timer());
    let r = assert_failed(&d, "States.Timeout");
    assert_eq!(
        r.cause.as_deref(),
        Some("The task did not complete within 30 s (TimeoutSeconds).")
    );
    assert_eq!(detail(&d, "TaskTimedOut")[0]["error"], "States.Timeout");
    assert_eq!(d.now, test_start_time() + Duration::seconds(30));
    assert_eq!(
        d.send(Event::TaskSucceeded {
            token,
            output: json!(1)
        }),
        Err(EventError::ExecutionNotRunning)
    );

    // Caught, the execution goes on, and the expired token is recognised as timed out.
    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({"TimeoutSeconds": 5, "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "After"}], "Next": "After"})),
            "After": task("after", json!({"End": true}))
        }
    }));
    let mut d = Driver::start(&def, json!({}));
    let token = d.messages[0].task_token.clone().unwrap();
    d.fire_next_timer();
    assert_eq!(d.snapshot.current_states(), ["After"]);
    assert_eq!(
        d.send(Event::TaskSucceeded {
            token,
            output: json!(1)
        }),
        Err(EventError::TaskTimedOut)
    );
    assert_eq!(EventError::TaskTimedOut.aws_error_name(), "TaskTimedOut");
}

#[test]
fn heartbeats_extend_the_deadline() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({"TimeoutSeconds": 100, "HeartbeatSeconds": 10,
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.err", "Next": "Caught"}], "End": true})),
            "Caught": {"Type": "Pass", "OutputPath": "$.err.Error", "End": true}
        }
    }));
    let mut d = Driver::start(&def, json!({}));
    let token = d.messages[0].task_token.clone().unwrap();
    assert_eq!(d.timers.len(), 2);
    d.now += Duration::seconds(8);
    d.send(Event::TaskHeartbeat {
        token: token.clone(),
    })
    .unwrap();
    assert_eq!(d.timers.len(), 2);
    assert_eq!(
        d.snapshot.pending_tokens()[0].heartbeat_at,
        Some(test_start_time() + Duration::seconds(18))
    );
    assert!(d.history.iter().all(|e| e.event_type != "TaskTimedOut"));
    d.fire_next_timer();
    assert_eq!(d.now, test_start_time() + Duration::seconds(18));
    // AWS reports a missed heartbeat as States.Timeout.
    assert_succeeded(&d, json!("States.Timeout"));
    assert!(d.timers.is_empty(), "the task timeout timer was cancelled");
}

#[test]
fn a_missed_heartbeat_is_caught_by_heartbeat_timeout_too() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({"HeartbeatSeconds": 5,
                "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.err", "Next": "Caught"}], "End": true})),
            "Caught": {"Type": "Pass", "OutputPath": "$.err.Error", "End": true}
        }
    }));
    let mut d = Driver::start(&def, json!({}));
    d.fire_next_timer();
    assert_succeeded(&d, json!("States.Timeout"));
}

#[test]
fn unsupported_resources_fail_at_run_time() {
    let def = sm(json!({
        "StartAt": "L",
        "States": {
            "L": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Never"}], "End": true},
            "Never": {"Type": "Succeed"}
        }
    }));
    assert_eq!(def.unsupported_resources().len(), 1);
    let r = assert_failed(&run_echo(&def, json!({})), "States.Runtime");
    assert!(r
        .cause
        .unwrap()
        .contains("The resource 'arn:aws:states:::lambda:invoke' is not supported"));
}

#[test]
fn bad_sqs_parameters_are_runtime_errors() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": WAIT_TASK, "Parameters": {"MessageBody": "x"}, "End": true}}
    }));
    let r = assert_failed(&run_echo(&def, json!({})), "States.Runtime");
    assert!(r.cause.unwrap().contains("QueueUrl"));
}
