use super::*;
use crate::engine::asl::{Event, EventError};

fn parallel_def() -> StateMachine {
    sm(json!({
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Parameters": {"topic.$": "$.topic"},
                "Branches": [
                    {"StartAt": "A", "States": {"A": task("a", json!({"End": true}))}},
                    {"StartAt": "B", "States": {"B": task("b", json!({"Next": "B2"})), "B2": {"Type": "Pass", "Result": "b2", "End": true}}}
                ],
                "ResultSelector": {"a.$": "$[0].input.topic", "b.$": "$[1]"},
                "ResultPath": "$.both",
                "Catch": [{"ErrorEquals": ["Branch.Failed"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "End": true}
        }
    }))
}

#[test]
fn parallel_results_come_back_in_branch_order() {
    let def = parallel_def();
    let mut d = Driver::start(&def, json!({"topic": "dogs", "x": 1}));
    assert_eq!(d.snapshot.pending_tokens().len(), 2);
    assert_eq!(d.snapshot.current_states(), ["Both", "A", "B"]);
    // Answer the second branch first.
    let tokens = task_tokens(&d);
    d.send(Event::TaskSucceeded {
        token: tokens[1].clone(),
        output: json!("b-out"),
    })
    .unwrap();
    d.send(Event::TaskSucceeded {
        token: tokens[0].clone(),
        output: json!({"input": {"topic": "dogs"}}),
    })
    .unwrap();
    assert_succeeded(
        &d,
        json!({"topic": "dogs", "x": 1, "both": {"a": "dogs", "b": "b2"}}),
    );
    let types = d.event_types();
    assert!(types.contains(&"ParallelStateStarted") && types.contains(&"ParallelStateSucceeded"));
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "ParallelStateExited")
            .count(),
        1
    );
}

#[test]
fn a_failing_branch_cancels_the_others() {
    let def = parallel_def();
    let mut d = Driver::start(&def, json!({"topic": "dogs"}));
    let tokens = task_tokens(&d);
    d.send(Event::TaskFailed {
        token: tokens[0].clone(),
        error: Some("Branch.Failed".into()),
        cause: Some("a broke".into()),
    })
    .unwrap();
    assert_succeeded(
        &d,
        json!({"topic": "dogs", "error": {"Error": "Branch.Failed", "Cause": "a broke"}}),
    );
    assert!(d.event_types().contains(&"ParallelStateFailed"));

    // Uncaught: the execution fails, and the cancelled branch's token is refused.
    let mut d = Driver::start(&def, json!({"topic": "dogs"}));
    let tokens = task_tokens(&d);
    d.send(Event::TaskFailed {
        token: tokens[1].clone(),
        error: Some("Other".into()),
        cause: None,
    })
    .unwrap();
    assert_failed(&d, "Other");
    assert_eq!(
        d.send(Event::TaskSucceeded {
            token: tokens[0].clone(),
            output: json!(1)
        }),
        Err(EventError::ExecutionNotRunning)
    );
}

#[test]
fn cancelled_branch_tokens_and_timers_are_dropped_while_running() {
    let def = sm(json!({
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": task("a", json!({"HeartbeatSeconds": 50, "End": true}))}},
                    {"StartAt": "B", "States": {"B": task("b", json!({"End": true}))}}
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Wait"}],
                "End": true
            },
            "Wait": task("wait", json!({"End": true}))
        }
    }));
    let mut d = Driver::start(&def, json!({}));
    let tokens = task_tokens(&d);
    assert_eq!(d.timers.len(), 1);
    d.send(Event::TaskFailed {
        token: tokens[1].clone(),
        error: Some("E".into()),
        cause: None,
    })
    .unwrap();
    assert!(
        d.timers.is_empty(),
        "the heartbeat timer of the cancelled branch is cancelled"
    );
    assert_eq!(d.snapshot.current_states(), ["Wait"]);
    assert_eq!(
        d.send(Event::TaskSucceeded {
            token: tokens[0].clone(),
            output: json!(1)
        }),
        Err(EventError::TaskDoesNotExist)
    );
}

#[test]
fn map_runs_items_with_selector_and_concurrency_limit() {
    let def = sm(json!({
        "StartAt": "Clips",
        "States": {
            "Clips": {
                "Type": "Map",
                "ItemsPath": "$.scenes",
                "MaxConcurrency": 2,
                "ItemSelector": {"scene.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "style.$": "$.style"},
                "ItemProcessor": {"StartAt": "Clip", "States": {"Clip": task("clip", json!({"OutputPath": "$.input", "End": true}))}},
                "ResultPath": "$.clips",
                "End": true
            }
        }
    }));
    let mut d = Driver::start(
        &def,
        json!({"scenes": ["a", "b", "c", "d", "e"], "style": "noir"}),
    );
    assert_eq!(d.snapshot.pending_tokens().len(), 2);
    let mut max_pending = 0;
    // Answer the newest message first each time, to shuffle completion order.
    let mut answered = 0;
    while d.snapshot.status() == ExecutionStatus::Running {
        max_pending = max_pending.max(d.snapshot.pending_tokens().len());
        let m = d
            .messages
            .iter()
            .rev()
            .find(|m| {
                d.snapshot
                    .pending_tokens()
                    .iter()
                    .any(|p| Some(&p.token) == m.task_token.as_ref())
            })
            .unwrap()
            .clone();
        let TaskAnswer::Succeeded(out) = crate::engine::asl::driver::echo_answer(&m.message_body)
        else {
            panic!()
        };
        d.send(Event::TaskSucceeded {
            token: m.task_token.unwrap(),
            output: out,
        })
        .unwrap();
        answered += 1;
    }
    assert_eq!((answered, max_pending), (5, 2));
    let clips: Vec<Value> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"scene": s, "index": i, "style": "noir"}))
        .collect();
    assert_succeeded(
        &d,
        json!({"scenes": ["a", "b", "c", "d", "e"], "style": "noir", "clips": clips}),
    );
    assert_eq!(detail(&d, "MapStateStarted")[0], &json!({"length": 5}));
    assert_eq!(detail(&d, "MapIterationStarted").len(), 5);
    assert_eq!(detail(&d, "MapIterationSucceeded").len(), 5);
    assert_eq!(
        detail(&d, "MapIterationStarted")[4],
        &json!({"name": "Clips", "index": 4})
    );
}

#[test]
fn map_edge_cases() {
    let def = sm(json!({
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "Iterator": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
                         "Parameters": {"v.$": "$$.Map.Item.Value"}, "End": true}}
    }));
    assert_succeeded(&run_echo(&def, json!([])), json!([]));
    assert_succeeded(&run_echo(&def, json!([1, 2])), json!([{"v": 1}, {"v": 2}]));
    assert_failed(
        &run_echo(&def, json!({"not": "an array"})),
        "States.Runtime",
    );
}

#[test]
fn a_failing_iteration_aborts_the_others() {
    let def = sm(json!({
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": WAIT_TASK, "Parameters": {"QueueUrl": "q", "MessageBody.$": "$"}, "End": true
        }}}, "End": true}}
    }));
    let mut d = Driver::start(
        &def,
        json!([{"fail": {"error": "Clip.Failed", "cause": "nsfw"}}, {"ok": 1}, {"ok": 2}]),
    );
    let tokens = task_tokens(&d);
    assert_eq!(tokens.len(), 3);
    d.send(Event::TaskSucceeded {
        token: tokens[2].clone(),
        output: json!(2),
    })
    .unwrap();
    d.run(crate::engine::asl::driver::echo_worker);
    let r = assert_failed(&d, "Clip.Failed");
    assert_eq!(r.cause.as_deref(), Some("nsfw"));
    let types = d.event_types();
    for t in [
        "MapIterationFailed",
        "MapIterationAborted",
        "MapStateFailed",
        "MapIterationSucceeded",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

#[test]
fn nested_map_in_parallel_and_retry_of_a_parallel_state() {
    let def = sm(json!({
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
                        "ItemProcessor": {"StartAt": "T", "States": {"T": task("t", json!({"End": true}))}}, "End": true}}},
                    {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "Result": "q", "End": true}}}
                ],
                "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}],
                "End": true
            }
        }
    }));
    let mut failures = 0;
    let mut d = Driver::start(&def, json!({"items": [1, 2]}));
    d.run(|m: &SentMessage| {
        if failures < 1 {
            failures += 1;
            return Some(fail("Flaky", "once"));
        }
        Some(TaskAnswer::Succeeded(body(m)["input"].clone()))
    });
    assert_succeeded(&d, json!([[1, 2], "q"]));
    assert_eq!(
        d.event_types()
            .iter()
            .filter(|t| **t == "ParallelStateStarted")
            .count(),
        2
    );
    assert_eq!(
        d.event_types()
            .iter()
            .filter(|t| **t == "ParallelStateEntered")
            .count(),
        1
    );
}

#[test]
fn max_concurrency_path_and_a_whole_graph_with_the_echo_worker() {
    let def = sm(json!({
        "Comment": "a persona graph in miniature",
        "StartAt": "Iggy",
        "States": {
            "Iggy": task("ideate", json!({"ResultSelector": {"scenes.$": "$.input.scenes"}, "ResultPath": "$.ideas", "Next": "Gate"})),
            "Gate": {"Type": "Choice", "Choices": [{"Variable": "$.approved", "BooleanEquals": true, "Next": "Clips"}], "Default": "Rejected"},
            "Clips": {
                "Type": "Map", "ItemsPath": "$.ideas.scenes", "MaxConcurrencyPath": "$.parallelism",
                "ItemSelector": {"n.$": "$$.Map.Item.Index", "scene.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "Clip", "States": {"Clip": task("clip", json!({"OutputPath": "$.input", "End": true}))}},
                "ResultPath": "$.clips", "Next": "Publish"
            },
            "Publish": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "TikTok", "States": {"TikTok": {"Type": "Pass", "Result": "tiktok-url", "End": true}}},
                    {"StartAt": "YouTube", "States": {"YouTube": {"Type": "Pass", "Result": "youtube-url", "End": true}}}
                ],
                "ResultPath": "$.published", "OutputPath": "$['clips','published']", "Next": "Done"
            },
            "Done": {"Type": "Succeed"},
            "Rejected": {"Type": "Fail", "Error": "Run.Rejected", "Cause": "not approved"}
        }
    }));
    let d = crate::engine::asl::driver::run_to_completion(
        &def,
        json!({"approved": true, "parallelism": 1, "scenes": ["a", "b", "c"]}),
        echo_worker,
    );
    assert_succeeded(
        &d,
        json!([[{"n": 0, "scene": "a"}, {"n": 1, "scene": "b"}, {"n": 2, "scene": "c"}], ["tiktok-url", "youtube-url"]]),
    );
    // With MaxConcurrency 1 each iteration starts only after the previous one succeeded.
    let order: Vec<&str> = d
        .event_types()
        .into_iter()
        .filter(|t| t.starts_with("MapIteration"))
        .collect();
    assert_eq!(
        order,
        ["MapIterationStarted", "MapIterationSucceeded"].repeat(3)
    );
    let d = crate::engine::asl::driver::run_to_completion(
        &def,
        json!({"approved": false, "scenes": []}),
        echo_worker,
    );
    assert_failed(&d, "Run.Rejected");
}
