//! One call into the interpreter: a work queue drained until every frame waits or the
//! execution ends, and the bookkeeping every state shares (history events, timers, frames, the
//! context object, the end of the execution).

use super::frame::{Frame, Timer, TimerKind, Wait};
use super::history::{details, json_text, HistoryEvent};
use super::{recovery, task};
use super::{Effect, Event, EventError, ExecutionResult, ExecutionStatus, Snapshot, Step};
use crate::engine::asl::context::ContextParts;
use crate::engine::asl::error::{names, StatesError};
use crate::engine::asl::model::{ScopeId, State, StateMachine};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// Step Functions' limit on an execution's history; it also stops a loop of instant states.
const MAX_HISTORY_EVENTS: i64 = 25_000;

pub(super) enum Work {
    /// Enter a state.
    Enter {
        frame: u64,
        state: String,
        input: Value,
    },
    /// Run (or re-run, after a retry interval) the frame's current state.
    Attempt { frame: u64 },
    /// A Task/Parallel/Map result to pass through ResultSelector, ResultPath and OutputPath.
    Result { frame: u64, result: Value },
    /// The current state reported an error: retry, catch or fail the frame.
    Error { frame: u64, error: StatesError },
    /// Leave the current state with `output`, to `next` or along its transition.
    Exit {
        frame: u64,
        output: Value,
        next: Option<String>,
    },
    /// The frame reached its end.
    Done { frame: u64, output: Value },
    /// The frame failed.
    Failed { frame: u64, error: StatesError },
}

impl Work {
    fn frame(&self) -> u64 {
        match self {
            Work::Enter { frame, .. }
            | Work::Attempt { frame }
            | Work::Result { frame, .. }
            | Work::Error { frame, .. }
            | Work::Exit { frame, .. }
            | Work::Done { frame, .. }
            | Work::Failed { frame, .. } => *frame,
        }
    }
}

pub(super) struct Run<'s, 'd> {
    pub(super) snap: &'s mut Snapshot,
    pub(super) def: &'d StateMachine,
    pub(super) now: DateTime<Utc>,
    step: Step,
    queue: VecDeque<Work>,
}

impl<'s, 'd> Run<'s, 'd> {
    pub(super) fn new(snap: &'s mut Snapshot, def: &'d StateMachine, now: DateTime<Utc>) -> Self {
        Run {
            snap,
            def,
            now,
            step: Step::default(),
            queue: VecDeque::new(),
        }
    }

    pub(super) fn start(mut self) -> Step {
        let input = self.snap.context.input.clone();
        self.emit(
            None,
            "ExecutionStarted",
            details([("input", json_text(&input).into())]),
        );
        if let Some(seconds) = self.def.timeout_seconds {
            let at = self.now + Duration::seconds(seconds as i64);
            self.schedule(None, TimerKind::ExecutionTimeout, at);
        }
        let start_at = self.def.scope(ScopeId::ROOT).start_at.clone();
        let started = self.snap.last_event_id;
        let root = self.new_frame(ScopeId::ROOT, None, &start_at, started);
        self.push(Work::Enter {
            frame: root,
            state: start_at,
            input,
        });
        self.drain();
        self.step
    }

    pub(super) fn handle(mut self, event: Event) -> Result<Step, EventError> {
        match event {
            Event::TaskSucceeded { token, output } => {
                let frame = self.token_frame(&token)?;
                task::succeeded(&mut self, frame, output);
            }
            Event::TaskFailed {
                token,
                error,
                cause,
            } => {
                let frame = self.token_frame(&token)?;
                task::failed(
                    &mut self,
                    frame,
                    StatesError {
                        error,
                        cause,
                        heartbeat: false,
                    },
                );
            }
            Event::TaskHeartbeat { token } => {
                let frame = self.token_frame(&token)?;
                task::heartbeat(&mut self, frame);
            }
            Event::TimerFired { timer_id } => self.timer_fired(&timer_id),
            Event::Stop { error, cause } => self.finish(
                ExecutionStatus::Aborted,
                None,
                Some(StatesError {
                    error,
                    cause,
                    heartbeat: false,
                }),
            ),
        }
        self.drain();
        Ok(self.step)
    }

    fn token_frame(&self, token: &str) -> Result<u64, EventError> {
        match self.snap.tokens.get(token) {
            Some(frame) => Ok(*frame),
            None if self.snap.expired_tokens.iter().any(|t| t == token) => {
                Err(EventError::TaskTimedOut)
            }
            None if task::is_well_formed(token) => Err(EventError::TaskDoesNotExist),
            None => Err(EventError::InvalidToken),
        }
    }

    fn timer_fired(&mut self, timer_id: &str) {
        let Some(timer) = self.snap.timers.remove(timer_id) else {
            return; // cancelled or already handled
        };
        let frame = match (timer.kind, timer.frame) {
            (TimerKind::ExecutionTimeout, _) => {
                let cause = format!(
                    "The execution ran longer than its TimeoutSeconds ({} s).",
                    self.def.timeout_seconds.unwrap_or_default()
                );
                let error = StatesError::new(names::TIMEOUT, cause);
                return self.finish(ExecutionStatus::TimedOut, None, Some(error));
            }
            (_, Some(frame)) if self.snap.frames.contains_key(&frame) => frame,
            _ => return,
        };
        match (timer.kind, &self.frame(frame).wait) {
            (TimerKind::Wait, Wait::Timer(id)) if id == timer_id => {
                self.frame_mut(frame).wait = Wait::None;
                self.wait_elapsed(frame);
            }
            (TimerKind::Retry, Wait::Retry(id)) if id == timer_id => {
                self.frame_mut(frame).wait = Wait::None;
                self.push(Work::Attempt { frame });
            }
            (TimerKind::TaskTimeout | TimerKind::Heartbeat, Wait::Task(_)) => {
                task::timed_out(self, frame, timer.kind, timer_id)
            }
            _ => {}
        }
    }

    fn drain(&mut self) {
        while let Some(work) = self.queue.pop_front() {
            if self.snap.status != ExecutionStatus::Running {
                break;
            }
            if self.snap.next_event_id > MAX_HISTORY_EVENTS {
                let error = StatesError::runtime(format!(
                    "The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
                ));
                self.finish(ExecutionStatus::Failed, None, Some(error));
                break;
            }
            if !self.snap.frames.contains_key(&work.frame()) {
                continue; // the frame was cancelled
            }
            match work {
                Work::Enter {
                    frame,
                    state,
                    input,
                } => self.enter(frame, state, input),
                Work::Attempt { frame } => self.attempt(frame),
                Work::Result { frame, result } => self.result(frame, result),
                Work::Error { frame, error } => recovery::state_error(self, frame, error),
                Work::Exit {
                    frame,
                    output,
                    next,
                } => self.exit(frame, output, next),
                Work::Done { frame, output } => self.done(frame, output),
                Work::Failed { frame, error } => self.failed(frame, error),
            }
        }
    }

    pub(super) fn push(&mut self, work: Work) {
        self.queue.push_back(work);
    }

    pub(super) fn effect(&mut self, effect: Effect) {
        self.step.effects.push(effect);
    }

    /// Records an event following the frame's latest one (or the execution's latest).
    pub(super) fn emit(&mut self, frame: Option<u64>, event_type: &str, details: Value) -> i64 {
        let previous = match frame.and_then(|f| self.snap.frames.get(&f)) {
            Some(f) => f.last_event,
            None => self.snap.last_event_id,
        };
        let id = self.emit_after(previous, event_type, details);
        if let Some(f) = frame.and_then(|f| self.snap.frames.get_mut(&f)) {
            f.last_event = id;
        }
        id
    }

    /// Records an event following event `previous`.
    pub(super) fn emit_after(&mut self, previous: i64, event_type: &str, details: Value) -> i64 {
        let id = self.snap.next_event_id;
        self.snap.next_event_id += 1;
        self.snap.last_event_id = id;
        self.step.history.push(HistoryEvent {
            id,
            previous_event_id: previous,
            timestamp: self.now,
            event_type: event_type.to_owned(),
            details,
        });
        id
    }

    pub(super) fn schedule(
        &mut self,
        frame: Option<u64>,
        kind: TimerKind,
        at: DateTime<Utc>,
    ) -> String {
        self.snap.next_id += 1;
        let timer_id = format!("{}-{}", kind.label(), self.snap.next_id);
        self.snap
            .timers
            .insert(timer_id.clone(), Timer { frame, kind, at });
        self.effect(Effect::ScheduleTimer {
            timer_id: timer_id.clone(),
            at,
        });
        timer_id
    }

    pub(super) fn cancel_timer(&mut self, timer_id: &str) {
        if self.snap.timers.remove(timer_id).is_some() {
            self.effect(Effect::CancelTimer {
                timer_id: timer_id.to_owned(),
            });
        }
    }

    pub(super) fn new_frame(
        &mut self,
        scope: ScopeId,
        parent: Option<(u64, usize)>,
        state: &str,
        last_event: i64,
    ) -> u64 {
        self.snap.next_id += 1;
        let id = self.snap.next_id;
        self.snap.frames.insert(
            id,
            Frame {
                scope,
                parent,
                state: state.to_owned(),
                entered_at: self.now,
                entered_event: last_event,
                last_event,
                retry_count: 0,
                attempts: Vec::new(),
                input: Value::Null,
                wait: Wait::None,
            },
        );
        id
    }

    pub(super) fn frame(&self, id: u64) -> &Frame {
        &self.snap.frames[&id]
    }

    pub(super) fn frame_mut(&mut self, id: u64) -> &mut Frame {
        self.snap.frames.get_mut(&id).expect("frame exists")
    }

    /// The frame's current state in the definition.
    pub(super) fn state_of(&self, frame: u64) -> Option<&'d State> {
        let f = self.frame(frame);
        self.def.lookup(f.scope, &f.state)
    }

    /// The context object's parts for a frame.
    pub(super) fn context_parts<'x>(
        &'x self,
        frame: &'x Frame,
        task_token: Option<&'x str>,
        map_item: Option<(usize, &'x Value)>,
    ) -> ContextParts<'x> {
        let ctx = &self.snap.context;
        ContextParts {
            execution_id: &ctx.execution_id,
            execution_name: &ctx.name,
            execution_input: &ctx.input,
            start_time: ctx.start_time,
            state_machine_id: &ctx.state_machine_id,
            state_machine_name: &ctx.state_machine_name,
            state_name: &frame.state,
            entered_time: frame.entered_at,
            retry_count: frame.retry_count,
            task_token,
            map_item,
        }
    }

    /// Adds AWS's "An error occurred while executing the state …" prefix to runtime errors.
    pub(super) fn located(&self, frame: u64, error: StatesError) -> StatesError {
        if error.name() == Some(names::RUNTIME) {
            let f = self.frame(frame);
            error.in_state(&f.state, f.entered_event)
        } else {
            error
        }
    }

    /// Turns the outcome of a state's processing into the next work item.
    pub(super) fn then(&mut self, frame: u64, outcome: Result<Work, StatesError>) {
        match outcome {
            Ok(work) => self.push(work),
            Err(error) => {
                let error = self.located(frame, error);
                self.push(Work::Error { frame, error });
            }
        }
    }

    /// Ends the execution, cancelling everything still pending.
    pub(super) fn finish(
        &mut self,
        status: ExecutionStatus,
        output: Option<Value>,
        error: Option<StatesError>,
    ) {
        let (error, cause) = error.map_or((None, None), |e| (e.error, e.cause));
        let event_details = match status {
            ExecutionStatus::Succeeded => details([(
                "output",
                json_text(output.as_ref().unwrap_or(&Value::Null)).into(),
            )]),
            _ => details([("error", json!(error)), ("cause", json!(cause))]),
        };
        let event_type = match status {
            ExecutionStatus::Succeeded => "ExecutionSucceeded",
            ExecutionStatus::Failed => "ExecutionFailed",
            ExecutionStatus::Aborted => "ExecutionAborted",
            ExecutionStatus::TimedOut | ExecutionStatus::Running => "ExecutionTimedOut",
        };
        self.emit(None, event_type, event_details);
        for timer_id in std::mem::take(&mut self.snap.timers).into_keys() {
            self.effect(Effect::CancelTimer { timer_id });
        }
        self.snap.frames.clear();
        self.snap.tokens.clear();
        self.queue.clear();
        let result = ExecutionResult {
            status,
            output,
            error,
            cause,
        };
        self.snap.status = status;
        self.snap.result = Some(result.clone());
        self.effect(Effect::Finished(result));
    }
}
