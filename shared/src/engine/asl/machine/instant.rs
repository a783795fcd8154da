//! The states that finish without any outside event: Pass, Choice, Succeed and Fail run in
//! one go; a Wait state schedules a timer unless it is already due.

use super::frame::{TimerKind, Wait};
use super::run::{Run, Work};
use crate::engine::asl::choice::choose;
use crate::engine::asl::context::ContextObject;
use crate::engine::asl::error::StatesError;
use crate::engine::asl::model::{FailText, State, StateKind, WaitFor};
use crate::engine::asl::path::{FieldPath, ReferencePath};
use crate::engine::asl::timestamp;
use chrono::{Duration, Utc};
use serde_json::Value;

impl<'d> Run<'_, 'd> {
    /// Pass, Choice, Succeed and Fail: done in one go.
    pub(super) fn instant(&self, frame: u64, state: &'d State) -> Result<Work, StatesError> {
        let f = self.frame(frame);
        let ctx = ContextObject::lazy(self.context_parts(f, None, None));
        Ok(match &state.kind {
            StateKind::Pass(p) => {
                let effective = p.input_path.apply(f.input.clone(), &ctx)?;
                let effective = match &p.parameters {
                    Some(t) => t.eval(&effective, &ctx)?,
                    None => effective,
                };
                let result = p.result.clone().unwrap_or(effective);
                let output = p.result_path.apply(f.input.clone(), result)?;
                let output = p.output_path.apply(output, &ctx)?;
                Work::Exit {
                    frame,
                    output,
                    next: None,
                }
            }
            StateKind::Choice(c) => {
                let effective = c.input_path.apply(f.input.clone(), &ctx)?;
                let next = choose(&c.choices, c.default.as_deref(), &effective, &ctx)?;
                let output = c.output_path.apply(effective, &ctx)?;
                Work::Exit {
                    frame,
                    output,
                    next: Some(next.to_owned()),
                }
            }
            StateKind::Succeed(s) => {
                let effective = s.input_path.apply(f.input.clone(), &ctx)?;
                let output = s.output_path.apply(effective, &ctx)?;
                Work::Exit {
                    frame,
                    output,
                    next: None,
                }
            }
            StateKind::Fail(s) => {
                let text = |t: &Option<FailText>| -> Result<Option<String>, StatesError> {
                    Ok(match t {
                        None => None,
                        Some(FailText::Literal(s)) => Some(s.clone()),
                        Some(FailText::Dynamic(expr)) => {
                            match expr.eval(&f.input, &ctx, "ErrorPath/CausePath")? {
                                Value::String(s) => Some(s),
                                other => Some(other.to_string()),
                            }
                        }
                    })
                };
                let error = StatesError {
                    error: text(&s.error)?,
                    cause: text(&s.cause)?,
                    heartbeat: false,
                };
                Work::Failed { frame, error }
            }
            _ => return Err(StatesError::runtime("not an instant state")),
        })
    }

    pub(super) fn start_wait(
        &mut self,
        frame: u64,
        wait: &WaitFor,
        input_path: &FieldPath,
    ) -> Result<(), StatesError> {
        let until = {
            let f = self.frame(frame);
            let ctx = ContextObject::lazy(self.context_parts(f, None, None));
            let effective = input_path.apply(f.input.clone(), &ctx)?;
            let read = |p: &ReferencePath| {
                p.select(&effective, &ctx).ok_or_else(|| {
                    StatesError::runtime(format!(
                        "Invalid path '{}': the Wait state's path references an invalid value.",
                        p.path()
                    ))
                })
            };
            match wait {
                WaitFor::Seconds(s) => self.now + Duration::seconds(*s as i64),
                WaitFor::Timestamp(t) => t.with_timezone(&Utc),
                WaitFor::SecondsPath(p) => match read(p)?.as_u64() {
                    Some(s) if s <= 99_999_999 => self.now + Duration::seconds(s as i64),
                    _ => {
                        return Err(StatesError::runtime(format!(
                            "The SecondsPath '{}' must reference a non-negative whole number.",
                            p.path()
                        )))
                    }
                },
                WaitFor::TimestampPath(p) => match read(p)?.as_str().and_then(timestamp::parse) {
                    Some(t) => t.with_timezone(&Utc),
                    None => {
                        return Err(StatesError::runtime(format!(
                            "The TimestampPath '{}' must reference an RFC 3339 timestamp.",
                            p.path()
                        )))
                    }
                },
            }
        };
        if until <= self.now {
            self.wait_elapsed(frame);
        } else {
            let timer = self.schedule(Some(frame), TimerKind::Wait, until);
            self.frame_mut(frame).wait = Wait::Timer(timer);
        }
        Ok(())
    }

    pub(super) fn wait_elapsed(&mut self, frame: u64) {
        let Some(StateKind::Wait(w)) = self.state_of(frame).map(|s| &s.kind) else {
            return;
        };
        let outcome = {
            let f = self.frame(frame);
            let ctx = ContextObject::lazy(self.context_parts(f, None, None));
            w.input_path
                .apply(f.input.clone(), &ctx)
                .and_then(|effective| w.output_path.apply(effective, &ctx))
                .map(|output| Work::Exit {
                    frame,
                    output,
                    next: None,
                })
        };
        self.then(frame, outcome);
    }
}
