use super::*;
use crate::engine::asl::driver::{test_context, test_start_time};
use crate::engine::asl::{Effect, Event, EventError, Snapshot};
use chrono::Duration;

fn waiting_def() -> StateMachine {
    sm(json!({
        "TimeoutSeconds": 3600,
        "StartAt": "Gate",
        "States": {"Gate": task("gate", json!({"HeartbeatSeconds": 600, "End": true}))}
    }))
}

#[test]
fn stop_aborts_and_cancels_timers() {
    let def = waiting_def();
    let (mut snap, step) = Snapshot::start(&def, test_context(json!({})), test_start_time());
    assert_eq!(
        step.effects
            .iter()
            .filter(|e| matches!(e, Effect::ScheduleTimer { .. }))
            .count(),
        2
    );
    let step = snap
        .handle(
            &def,
            Event::Stop {
                error: Some("Cancelled".into()),
                cause: Some("by operator".into()),
            },
            test_start_time(),
        )
        .unwrap();
    assert_eq!(snap.status(), ExecutionStatus::Aborted);
    assert_eq!(step.history.len(), 1);
    assert_eq!(step.history[0].event_type, "ExecutionAborted");
    assert_eq!(
        step.history[0].details,
        json!({"error": "Cancelled", "cause": "by operator"})
    );
    assert_eq!(
        step.effects
            .iter()
            .filter(|e| matches!(e, Effect::CancelTimer { .. }))
            .count(),
        2
    );
    assert!(
        matches!(step.effects.last(), Some(Effect::Finished(r)) if r.status == ExecutionStatus::Aborted)
    );
    assert!(snap.pending_tokens().is_empty());
    assert!(snap.current_states().is_empty());
    assert_eq!(
        snap.handle(
            &def,
            Event::Stop {
                error: None,
                cause: None
            },
            test_start_time()
        ),
        Err(EventError::ExecutionNotRunning)
    );
    assert_eq!(
        snap.handle(
            &def,
            Event::TimerFired {
                timer_id: "x".into()
            },
            test_start_time()
        ),
        Ok(Default::default())
    );
}

#[test]
fn execution_timeout() {
    let def = waiting_def();
    let mut d = Driver::start(&def, json!({}));
    // Keep the task alive with heartbeats until the execution times out.
    let token = d.messages[0].task_token.clone().unwrap();
    for _ in 0..6 {
        d.now += Duration::seconds(599);
        d.send(Event::TaskHeartbeat {
            token: token.clone(),
        })
        .unwrap();
    }
    d.fire_next_timer();
    let r = finished(&d);
    assert_eq!(r.status, ExecutionStatus::TimedOut);
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert_eq!(d.event_types().last(), Some(&"ExecutionTimedOut"));
    assert_eq!(d.now, test_start_time() + Duration::seconds(3600));
}

#[test]
fn snapshots_round_trip_and_stay_small() {
    let def = waiting_def();
    let (snap, _) = Snapshot::start(
        &def,
        test_context(json!({"run_id": "r1"})),
        test_start_time(),
    );
    let text = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snap);
    assert!(text.len() < 1200, "{} bytes: {text}", text.len());
    assert_eq!(snap.next_event_id(), 6);
}

#[test]
fn stale_timers_are_ignored() {
    let def =
        sm(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": true}}}));
    let mut d = Driver::start(&def, json!({}));
    d.send(Event::TimerFired {
        timer_id: "wait-999".into(),
    })
    .unwrap();
    assert_eq!(d.snapshot.status(), ExecutionStatus::Running);
    d.run(echo_worker);
    assert_succeeded(&d, json!({}));
}

#[test]
fn history_links_follow_each_branch() {
    let def = sm(json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}
        ], "End": true}}
    }));
    let d = run_echo(&def, json!({}));
    let ids: Vec<i64> = d.history.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=d.history.len() as i64).collect::<Vec<_>>());
    for e in &d.history {
        assert!(e.previous_event_id < e.id);
    }
    let started = d
        .history
        .iter()
        .find(|e| e.event_type == "ParallelStateStarted")
        .unwrap()
        .id;
    let entered: Vec<i64> = d
        .history
        .iter()
        .filter(|e| e.event_type == "PassStateEntered")
        .map(|e| e.previous_event_id)
        .collect();
    assert_eq!(entered, [started, started]);
}
