//! How a frame moves through its states: entering a state, running it, passing a result
//! through `ResultSelector`/`ResultPath`/`OutputPath`, leaving along its transition, and ending
//! the frame (the execution itself, or a branch or iteration reporting to its Parallel/Map state).

use super::frame::Wait;
use super::history::{details, json_text};
use super::run::{Run, Work};
use super::{fanout, task, ExecutionStatus};
use crate::engine::asl::context::ContextObject;
use crate::engine::asl::error::StatesError;
use crate::engine::asl::model::{StateKind, Transition};
use serde_json::{json, Value};

impl Run<'_, '_> {
    pub(super) fn enter(&mut self, frame: u64, state: String, input: Value) {
        let Some(def_state) = self.def.lookup(self.frame(frame).scope, &state) else {
            let error =
                StatesError::runtime(format!("The state {state:?} is not in the definition."));
            return self.finish(ExecutionStatus::Failed, None, Some(error));
        };
        let event_type = format!("{}StateEntered", def_state.type_name());
        let event_details = details([("name", json!(state)), ("input", json_text(&input).into())]);
        let now = self.now;
        let f = self.frame_mut(frame);
        f.state = state;
        f.entered_at = now;
        f.retry_count = 0;
        f.attempts.clear();
        f.input = input;
        f.wait = Wait::None;
        let id = self.emit(Some(frame), &event_type, event_details);
        self.frame_mut(frame).entered_event = id;
        self.push(Work::Attempt { frame });
    }

    pub(super) fn attempt(&mut self, frame: u64) {
        let Some(state) = self.state_of(frame) else {
            let error = StatesError::runtime("The snapshot does not match the definition.");
            return self.finish(ExecutionStatus::Failed, None, Some(error));
        };
        match &state.kind {
            StateKind::Task(_) => task::attempt(self, frame),
            StateKind::Parallel(_) => fanout::start_parallel(self, frame),
            StateKind::Map(_) => fanout::start_map(self, frame),
            StateKind::Wait(w) => {
                let outcome = self.start_wait(frame, &w.wait, &w.input_path);
                if let Err(error) = outcome {
                    self.then(frame, Err(error));
                }
            }
            _ => {
                let outcome = self.instant(frame, state);
                self.then(frame, outcome);
            }
        }
    }

    /// ResultSelector, ResultPath and OutputPath for a Task/Parallel/Map result.
    pub(super) fn result(&mut self, frame: u64, result: Value) {
        let Some(state) = self.state_of(frame) else {
            return;
        };
        let Some(handling) = state.kind.result_handling() else {
            return;
        };
        let (selector, result_path, output_path) = (
            &handling.result_selector,
            &handling.result_path,
            &handling.output_path,
        );
        let outcome = {
            let f = self.frame(frame);
            let ctx = ContextObject::lazy(self.context_parts(f, None, None));
            (|| {
                let result = match selector {
                    Some(t) => t.eval(&result, &ctx)?,
                    None => result,
                };
                let output = result_path.apply(f.input.clone(), result)?;
                let output = output_path.apply(output, &ctx)?;
                Ok(Work::Exit {
                    frame,
                    output,
                    next: None,
                })
            })()
        };
        self.then(frame, outcome);
    }

    pub(super) fn exit(&mut self, frame: u64, output: Value, next: Option<String>) {
        let Some(state) = self.state_of(frame) else {
            return;
        };
        if let StateKind::Fail(_) = state.kind {
            return;
        }
        let event_type = format!("{}StateExited", state.type_name());
        let event_details = details([
            ("name", json!(state.name)),
            ("output", json_text(&output).into()),
        ]);
        self.emit(Some(frame), &event_type, event_details);
        let transition = match (&state.kind, next) {
            (_, Some(next)) => Transition::Next(next),
            (StateKind::Pass(s), None) => s.transition.clone(),
            (StateKind::Task(s), None) => s.transition.clone(),
            (StateKind::Wait(s), None) => s.transition.clone(),
            (StateKind::Parallel(s), None) => s.transition.clone(),
            (StateKind::Map(s), None) => s.transition.clone(),
            _ => Transition::End,
        };
        match transition {
            Transition::Next(state) => self.push(Work::Enter {
                frame,
                state,
                input: output,
            }),
            Transition::End => self.push(Work::Done { frame, output }),
        }
    }

    pub(super) fn done(&mut self, frame: u64, output: Value) {
        if self.frame(frame).parent.is_some() {
            fanout::child_done(self, frame, output);
        } else {
            self.finish(ExecutionStatus::Succeeded, Some(output), None);
        }
    }

    pub(super) fn failed(&mut self, frame: u64, error: StatesError) {
        if self.frame(frame).parent.is_some() {
            fanout::child_failed(self, frame, error);
        } else {
            self.finish(ExecutionStatus::Failed, None, Some(error));
        }
    }
}
