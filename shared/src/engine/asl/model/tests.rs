use super::*;
use serde_json::json;

fn errors(def: Value) -> Vec<String> {
    StateMachine::parse(&def)
        .expect_err("should be invalid")
        .errors()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_has(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|e| e == expected),
        "missing {expected:?} in:\n{}",
        errors.join("\n")
    );
}

#[test]
fn parses_every_state_type() {
    let def = json!({
        "Comment": "all types", "Version": "1.0", "TimeoutSeconds": 60,
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.r", "Next": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                  "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                  "ResultSelector": {"x.$": "$.x"}, "ResultPath": null, "OutputPath": "$",
                  "TimeoutSeconds": 30, "HeartbeatSecondsPath": "$.hb",
                  "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 2, "MaxAttempts": 0, "BackoffRate": 1.0, "MaxDelaySeconds": 3, "JitterStrategy": "FULL"},
                            {"ErrorEquals": ["States.ALL"]}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F", "ResultPath": "$.error"}],
                  "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "W"}], "Default": "S"},
            "W": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Par"},
            "Par": {"Type": "Parallel", "Branches": [
                {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "End": true}}},
                {"StartAt": "B2", "States": {"B2": {"Type": "Succeed"}}}
            ], "Next": "M"},
            "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
                  "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                  "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
                  "Next": "Legacy"},
            "Legacy": {"Type": "Map", "Iterator": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}, "End": true},
            "S": {"Type": "Succeed", "QueryLanguage": "JSONPath"},
            "F": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "States.Format('x {}', $.a)"}
        }
    });
    let sm = StateMachine::parse(&def).unwrap();
    assert_eq!(sm.start_at(), "P");
    assert_eq!(sm.timeout_seconds(), Some(60));
    assert_eq!(sm.comment(), Some("all types"));
    assert_eq!(sm.version(), Some("1.0"));
    assert_eq!(sm.state_names().count(), 9);
    assert_eq!(sm.state("M").unwrap().type_name(), "Map");
    assert_eq!(sm.scopes.len(), 5);
    assert!(sm.unsupported_resources().is_empty());
    let StateKind::Task(t) = sm.state("T").unwrap().kind() else {
        panic!()
    };
    assert_eq!(t.resource, Resource::SqsSendMessageWaitForTaskToken);
    assert_eq!(t.handling.retry.len(), 2);
    assert_eq!(t.handling.retry[0].jitter, Jitter::Full);
    assert_eq!(t.handling.result_path, ResultPath::Discard);
    let StateKind::Map(m) = sm.state("M").unwrap().kind() else {
        panic!()
    };
    assert_eq!(m.max_concurrency, MaxConcurrency::Fixed(2));
    assert_eq!(sm.scope(m.processor).start_at(), "I");
}

#[test]
fn from_json_str_reports_bad_json() {
    let err = StateMachine::from_json_str("{ nope").unwrap_err();
    assert!(err.to_string().contains("not valid JSON"));
}

#[test]
fn reports_graph_problems_with_locations() {
    let errs = errors(json!({
        "StartAt": "Iggy",
        "States": {
            "Iggy": {"Type": "Pass", "Next": "Riley"},
            "Riley": {"Type": "Pass", "Next": "Alex2"},
            "Alex": {"Type": "Succeed"}
        }
    }));
    assert_has(&errs, "state \"Riley\": Next \"Alex2\" does not exist");
    let errs = errors(json!({
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "End": true}, "Orphan": {"Type": "Pass", "End": true}}
    }));
    assert_eq!(
        errs,
        ["state \"Orphan\": the state is not reachable from StartAt \"A\""]
    );
    assert_has(
        &errors(json!({"States": {"A": {"Type": "Succeed"}}})),
        "StartAt is missing",
    );
    assert_has(
        &errors(json!({"StartAt": "B", "States": {"A": {"Type": "Succeed"}}})),
        "StartAt \"B\" does not exist",
    );
    assert_has(&errors(json!({"StartAt": "A"})), "States is missing");
    assert_has(&errors(json!([1])), "the definition must be a JSON object");
}

#[test]
fn reports_state_rules() {
    let errs = errors(json!({
        "StartAt": "A",
        "Bogus": 1,
        "States": {
            "A": {"Type": "Pass", "Next": "B", "End": true},
            "B": {"Type": "Pass"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "A"}], "End": true},
            "D": {"Type": "Succeed", "Next": "A"},
            "E": {"Type": "Fail", "Error": "X", "ErrorPath": "$.e"},
            "F": {"Type": "Pass", "InputPath": "$.a[", "Parameters": {"x.$": "oops", "y.$": "States.Nope()"}, "End": true},
            "G": {"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "End": true},
            "H": {"Type": "Wait", "End": true},
            "I": {"Type": "Teleport"},
            "J": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 5, "HeartbeatSeconds": 5, "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}], "End": true},
            "K": {"Type": "Pass", "ResultPath": "$.a.*", "End": true, "Assign": {}},
            "L": {"Type": "Task", "End": true},
            "N": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": true}]}
        }
    }));
    for expected in [
        "unknown field \"Bogus\" for a state machine",
        "state \"A\": the state has both Next and End",
        "state \"B\": the state has neither Next nor End: true",
        "state \"C\": Choices[0]: the rule has no comparison operator",
        "state \"C\": a Choice state cannot have End",
        "state \"D\": a Succeed state cannot have Next",
        "state \"E\": a Fail state cannot have both Error and ErrorPath",
        "state \"G\": a Wait state needs exactly one of Seconds, SecondsPath, Timestamp or TimestampPath (found Seconds, Timestamp)",
        "state \"H\": a Wait state needs exactly one of Seconds, SecondsPath, Timestamp or TimestampPath (found none)",
        "state \"I\": unknown state Type \"Teleport\" (expected Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)",
        "state \"J\": HeartbeatSeconds must be smaller than TimeoutSeconds",
        "state \"J\": Retry[0]: the entry with States.ALL must be the last in Retry",
        "state \"K\": Assign (workflow variables) is not supported",
        "state \"L\": Resource is missing",
        "state \"N\": Choices[0]: Next is missing",
    ] {
        assert_has(&errs, expected);
    }
    let joined = errs.join("\n");
    assert!(
        joined.contains("state \"F\": InputPath: invalid JSONPath \"$.a[\""),
        "{joined}"
    );
    assert!(
        joined.contains("state \"F\": Parameters: field \"x.$\": \"oops\" is neither a path"),
        "{joined}"
    );
    assert!(
        joined.contains("state \"F\": Parameters: field \"y.$\": invalid intrinsic function"),
        "{joined}"
    );
    assert!(
        joined.contains("state \"K\": ResultPath: invalid JSONPath \"$.a.*\""),
        "{joined}"
    );
}

#[test]
fn nested_scopes_are_validated_with_their_location() {
    let errs = errors(json!({
        "StartAt": "Map1",
        "States": {
            "Map1": {"Type": "Map", "ItemProcessor": {"StartAt": "Inner", "States": {
                "Inner": {"Type": "Pass", "Next": "Gone"}
            }}, "Next": "Par"},
            "Par": {"Type": "Parallel", "Branches": [
                {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}},
                {"StartAt": "Y", "States": {"Y": {"Type": "Pass", "End": true}, "Z": {"Type": "Pass", "End": true}}},
                {"States": {"Q": {"Type": "Succeed"}}}
            ], "End": true},
            "Dist": {"Type": "Map", "ItemReader": {}, "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "A", "States": {"A": {"Type": "Succeed"}}}, "End": true},
            "NoProc": {"Type": "Map", "End": true}
        }
    }));
    for expected in [
        "state \"Map1\" > state \"Inner\": Next \"Gone\" does not exist",
        "state \"Par\" > branch 1 > state \"Z\": the state is not reachable from StartAt \"Y\"",
        "state \"Par\" > branch 2: StartAt is missing",
        "state \"Dist\": ItemReader is only for Distributed Map, which is not supported",
        "state \"Dist\": ItemProcessor.ProcessorConfig.Mode \"DISTRIBUTED\" is not supported (only INLINE)",
        "state \"NoProc\": a Map state needs an ItemProcessor (or Iterator)",
    ] {
        assert_has(&errs, expected);
    }
}

#[test]
fn lists_unsupported_resources_at_any_depth() {
    let sm = StateMachine::parse(&json!({
        "StartAt": "L",
        "States": {
            "L": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {
                "I": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}
            }}, "End": true}
        }
    }))
    .unwrap();
    assert_eq!(
        sm.unsupported_resources(),
        [
            UnsupportedResource {
                state: "state \"L\"".into(),
                resource: "arn:aws:states:::lambda:invoke".into()
            },
            UnsupportedResource {
                state: "state \"M\" > state \"I\"".into(),
                resource: "arn:aws:lambda:us-east-1:1:function:f".into()
            },
        ]
    );
}

#[test]
fn display_lists_every_problem() {
    let err = StateMachine::parse(
        &json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}, "B": {"Type": "Nope"}}}),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("invalid state machine definition (2 problems):"),
        "{text}"
    );
    assert!(
        text.contains("\n  state \"A\": the state has neither Next nor End: true"),
        "{text}"
    );
}
