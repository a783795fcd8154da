use super::*;
use crate::engine::asl::driver::test_start_time;
use chrono::Duration;

#[test]
fn pass_states_process_input_and_output() {
    let def = sm(json!({
        "StartAt": "Shape",
        "States": {
            "Shape": {
                "Type": "Pass",
                "InputPath": "$.run",
                "Parameters": {
                    "id.$": "$.id",
                    "code.$": "States.Format('TVG-{}', $.id)",
                    "exec.$": "$$.Execution.Name",
                    "state.$": "$$.State.Name",
                    "fixed": [1, {"k": "v"}]
                },
                "ResultPath": "$.shaped",
                "Next": "Constant"
            },
            "Constant": {"Type": "Pass", "Result": {"ok": true}, "ResultPath": "$.constant", "Next": "Discard"},
            "Discard": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "OutputPath": "$.shaped", "End": true}
        }
    }));
    let d = run_echo(&def, json!({"run": {"id": 7}, "other": 1}));
    assert_succeeded(
        &d,
        json!({"id": 7, "code": "TVG-7", "exec": "exec-1", "state": "Shape", "fixed": [1, {"k": "v"}]}),
    );
    assert_eq!(
        d.event_types(),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "PassStateEntered",
            "PassStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    for (i, e) in d.history.iter().enumerate() {
        assert_eq!(e.id, i as i64 + 1);
        assert_eq!(e.previous_event_id, i as i64);
    }
    assert_eq!(
        d.history[1].details,
        json!({"name": "Shape", "input": "{\"run\":{\"id\":7},\"other\":1}"}),
        "history keeps the input's key order, as AWS does"
    );
    assert_eq!(d.history[1].details_key(), Some("stateEnteredEventDetails"));
}

#[test]
fn choice_routes_and_reports_no_match() {
    let def = sm(json!({
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.kind", "StringEquals": "video", "Next": "Video"},
                    {"And": [{"Variable": "$.n", "IsNumeric": true}, {"Variable": "$.n", "NumericGreaterThan": 10}], "Next": "Big"}
                ],
                "Default": "Other"
            },
            "Video": {"Type": "Pass", "Result": "video", "End": true},
            "Big": {"Type": "Pass", "Result": "big", "End": true},
            "Other": {"Type": "Pass", "Result": "other", "End": true}
        }
    }));
    assert_succeeded(&run_echo(&def, json!({"kind": "video"})), json!("video"));
    assert_succeeded(&run_echo(&def, json!({"kind": "x", "n": 11})), json!("big"));
    assert_succeeded(
        &run_echo(&def, json!({"kind": "x", "n": "11"})),
        json!("other"),
    );
    let d = run_echo(&def, json!({"n": 1}));
    let r = assert_failed(&d, "States.Runtime");
    assert_eq!(
        r.cause.as_deref(),
        Some("An error occurred while executing the state 'Route' (entered at the event id #2). Invalid path '$.kind': The choice state's condition path references an invalid value.")
    );

    let strict = sm(json!({
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "BooleanEquals": true, "Next": "Y"}]},
            "Y": {"Type": "Succeed"}
        }
    }));
    let d = run_echo(&strict, json!({"a": false}));
    assert_failed(&d, "States.NoChoiceMatched");
    assert_eq!(
        d.event_types(),
        ["ExecutionStarted", "ChoiceStateEntered", "ExecutionFailed"]
    );
}

#[test]
fn wait_states_schedule_timers() {
    let def = sm(json!({
        "StartAt": "W1",
        "States": {
            "W1": {"Type": "Wait", "Seconds": 10, "Next": "W2"},
            "W2": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "W3"},
            "W3": {"Type": "Wait", "TimestampPath": "$.until", "Next": "W4"},
            "W4": {"Type": "Wait", "Seconds": 0, "OutputPath": "$.delay", "End": true}
        }
    }));
    let mut d = Driver::start(&def, json!({"delay": 5, "until": "2024-01-01T00:01:00Z"}));
    assert_eq!(d.timers.len(), 1);
    assert_eq!(d.snapshot.current_states(), ["W1"]);
    assert_eq!(
        d.timers.values().next(),
        Some(&(test_start_time() + Duration::seconds(10)))
    );
    d.run(echo_worker);
    assert_succeeded(&d, json!(5));
    assert_eq!(d.now, test_start_time() + Duration::seconds(60));
    let exits: Vec<_> = d
        .history
        .iter()
        .filter(|e| e.event_type == "WaitStateExited")
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(
        exits,
        [10, 15, 60, 60].map(|s| test_start_time() + Duration::seconds(s))
    );

    let past = sm(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2000-01-01T00:00:00Z", "End": true}}}),
    );
    let d = Driver::start(&past, json!({}));
    assert!(d.timers.is_empty());
    assert_succeeded(&d, json!({}));

    let bad = sm(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
    );
    for input in [json!({"s": -1}), json!({"s": "5"}), json!({})] {
        assert_failed(&run_echo(&bad, input), "States.Runtime");
    }
}

#[test]
fn succeed_and_fail_states() {
    let def = sm(json!({
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Done"}], "Default": "Boom"},
            "Done": {"Type": "Succeed", "InputPath": "$.data", "OutputPath": "$.x"},
            "Boom": {"Type": "Fail", "ErrorPath": "$.code", "CausePath": "States.Format('failed with {}', $.code)"}
        }
    }));
    assert_succeeded(
        &run_echo(&def, json!({"ok": true, "data": {"x": 3}})),
        json!(3),
    );
    let d = run_echo(&def, json!({"ok": false, "code": "Quinn.PublishFailed"}));
    let r = assert_failed(&d, "Quinn.PublishFailed");
    assert_eq!(r.cause.as_deref(), Some("failed with Quinn.PublishFailed"));
    assert_eq!(
        d.event_types(),
        [
            "ExecutionStarted",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "FailStateEntered",
            "ExecutionFailed"
        ]
    );
    let fixed = sm(json!({"StartAt": "F", "States": {"F": {"Type": "Fail"}}}));
    let r = finished(&run_echo(&fixed, json!({})));
    assert_eq!(
        (r.status, r.error, r.cause),
        (ExecutionStatus::Failed, None, None)
    );
}

#[test]
fn missing_paths_are_runtime_errors_with_aws_causes() {
    let def = sm(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.nope", "End": true}}}),
    );
    let r = assert_failed(&run_echo(&def, json!({})), "States.Runtime");
    assert_eq!(
        r.cause.as_deref(),
        Some("An error occurred while executing the state 'P' (entered at the event id #2). Invalid path '$.nope' : No results for path: $['nope']")
    );
    let def = sm(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"JobName.$": "$.JobName"}, "End": true}}}),
    );
    let r = assert_failed(&run_echo(&def, json!({})), "States.Runtime");
    assert!(r.cause.unwrap().ends_with("The JSONPath '$.JobName' specified for the field 'JobName.$' could not be found in the input '{}'"));
    let def = sm(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": "$.a.b", "End": true}}}),
    );
    assert_failed(
        &run_echo(&def, json!({"a": 1})),
        "States.ResultPathMatchFailure",
    );
    let def = sm(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": null, "OutputPath": null, "End": true}}}),
    );
    assert_succeeded(&run_echo(&def, json!({"a": 1})), json!({}));
}

#[test]
fn an_endless_loop_stops_at_the_history_limit() {
    let def = sm(json!({
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}
    }));
    let d = Driver::start(&def, json!({}));
    let r = assert_failed(&d, "States.Runtime");
    assert!(r
        .cause
        .unwrap()
        .contains("maximum number of history events"));
    assert!(d.history.len() <= 25_001);
}
