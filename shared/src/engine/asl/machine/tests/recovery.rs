use super::*;
use crate::engine::asl::driver::test_start_time;
use chrono::Duration;

#[test]
fn retries_with_backoff_then_succeeds() {
    let def = sm(json!({
        "StartAt": "Riley",
        "States": {
            "Riley": {
                "Type": "Task", "Resource": WAIT_TASK,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"task": "script", "retry.$": "$$.State.RetryCount", "task_token.$": "$$.Task.Token"}},
                "Retry": [{"ErrorEquals": ["Provider.Busy"], "IntervalSeconds": 2, "BackoffRate": 3.0}],
                "End": true
            }
        }
    }));
    let mut calls = 0;
    let d = {
        let mut d = Driver::start(&def, json!({}));
        d.run(|m: &SentMessage| {
            calls += 1;
            let retry = body(m)["retry"].clone();
            Some(if calls < 3 {
                fail("Provider.Busy", "try later")
            } else {
                TaskAnswer::Succeeded(json!({"retry": retry}))
            })
        });
        d
    };
    assert_succeeded(&d, json!({"retry": 2}));
    let scheduled = scheduled_at(&d);
    assert_eq!(
        scheduled,
        [0, 2, 8].map(|s| test_start_time() + Duration::seconds(s))
    );
    assert_eq!(
        d.event_types()
            .iter()
            .filter(|t| **t == "TaskStateEntered")
            .count(),
        1
    );
}

#[test]
fn exhausted_retries_fall_back_to_catch() {
    let def = sm(json!({
        "StartAt": "Alex",
        "States": {
            "Alex": task("render", json!({
                "Retry": [
                    {"ErrorEquals": ["Render.Failed"], "MaxAttempts": 1},
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}
                ],
                "Catch": [{"ErrorEquals": ["Render.Failed"], "ResultPath": "$.error", "Next": "Recover"}],
                "End": true
            })),
            "Recover": {"Type": "Pass", "End": true}
        }
    }));
    let mut calls = 0;
    let mut d = Driver::start(&def, json!({"clip": 1}));
    d.run(|_: &SentMessage| {
        calls += 1;
        Some(fail("Render.Failed", "bad timeline"))
    });
    assert_eq!(calls, 2, "only the first matching retrier applies");
    assert_succeeded(
        &d,
        json!({"clip": 1, "error": {"Error": "Render.Failed", "Cause": "bad timeline"}}),
    );
    let exited = detail(&d, "TaskStateExited")[0];
    assert_eq!(exited["name"], "Alex");
}

#[test]
fn max_attempts_zero_and_max_delay_and_jitter() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {"T": task("t", json!({"Retry": [{"ErrorEquals": ["X"], "MaxAttempts": 0}], "End": true}))}
    }));
    let mut calls = 0;
    let mut d = Driver::start(&def, json!({}));
    d.run(|_: &SentMessage| {
        calls += 1;
        Some(fail("X", "no"))
    });
    assert_eq!(calls, 1);
    assert_failed(&d, "X");

    let def = sm(json!({
        "StartAt": "T",
        "States": {"T": task("t", json!({"Retry": [{"ErrorEquals": ["X"], "MaxAttempts": 4, "IntervalSeconds": 10, "MaxDelaySeconds": 15, "JitterStrategy": "NONE"}], "End": true}))}
    }));
    let mut d = Driver::start(&def, json!({}));
    d.run(|_: &SentMessage| Some(fail("X", "no")));
    let scheduled = scheduled_at(&d);
    assert_eq!(
        scheduled,
        [0, 10, 25, 40, 55].map(|s| test_start_time() + Duration::seconds(s))
    );

    let def = sm(json!({
        "StartAt": "T",
        "States": {"T": task("t", json!({"Retry": [{"ErrorEquals": ["X"], "MaxAttempts": 3, "IntervalSeconds": 10, "JitterStrategy": "FULL"}], "End": true}))}
    }));
    let mut d = Driver::start(&def, json!({}));
    d.run(|_: &SentMessage| Some(fail("X", "no")));
    assert!(d.now <= test_start_time() + Duration::seconds(10 + 20 + 40));
}

#[test]
fn task_failed_does_not_match_timeouts_and_runtime_is_never_caught() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({"TimeoutSeconds": 1, "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "C"}], "End": true})),
            "C": {"Type": "Succeed"}
        }
    }));
    let mut d = Driver::start(&def, json!({}));
    d.run(|_: &SentMessage| None);
    assert_failed(&d, "States.Timeout");
    let mut d = Driver::start(&def, json!({}));
    d.run(|_: &SentMessage| Some(fail("Any.Error", "x")));
    assert_succeeded(&d, json!({"Error": "Any.Error", "Cause": "x"}));

    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({"InputPath": "$.missing", "Retry": [{"ErrorEquals": ["States.ALL"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}], "End": true})),
            "C": {"Type": "Succeed"}
        }
    }));
    assert_failed(&run_echo(&def, json!({})), "States.Runtime");
}

#[test]
fn data_errors_after_the_task_are_catchable() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({
                "ResultPath": "$.x.y",
                "Catch": [{"ErrorEquals": ["States.ResultPathMatchFailure"], "ResultPath": "$.err", "Next": "C"}],
                "End": true
            })),
            "C": {"Type": "Pass", "OutputPath": "$.err.Error", "End": true}
        }
    }));
    assert_succeeded(
        &run_echo(&def, json!({"x": "not an object"})),
        json!("States.ResultPathMatchFailure"),
    );

    let def = sm(json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Task", "Resource": WAIT_TASK,
                  "Parameters": {"QueueUrl": "q", "MessageBody": {"n.$": "States.MathAdd($.n, 'x')"}},
                  "Catch": [{"ErrorEquals": ["States.IntrinsicFailure"], "Next": "C"}], "End": true},
            "C": {"Type": "Pass", "OutputPath": "$.Error", "End": true}
        }
    }));
    assert_succeeded(
        &run_echo(&def, json!({"n": 1})),
        json!("States.IntrinsicFailure"),
    );
}

#[test]
fn a_failing_catcher_result_path_fails_the_state() {
    let def = sm(json!({
        "StartAt": "T",
        "States": {
            "T": task("t", json!({"Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.a.b", "Next": "C"}], "End": true})),
            "C": {"Type": "Succeed"}
        }
    }));
    let mut d = Driver::start(&def, json!({"a": 1}));
    d.run(|_: &SentMessage| Some(fail("X", "y")));
    assert_failed(&d, "States.ResultPathMatchFailure");
}
