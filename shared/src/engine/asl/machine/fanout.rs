//! Parallel and Map states: starting branches and iterations as child frames, collecting their
//! results in order, and failing fast: the first child to fail fails the state and cancels its
//! siblings (their tokens and timers are dropped, so later events for them are refused).

use super::frame::{Children, Wait};
use super::history::details;
use super::run::{Run, Work};
use crate::engine::asl::context::ContextObject;
use crate::engine::asl::error::StatesError;
use crate::engine::asl::model::{MaxConcurrency, StateKind};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

pub(super) fn start_parallel(run: &mut Run<'_, '_>, frame: u64) {
    let Some(StateKind::Parallel(p)) = run.state_of(frame).map(|s| &s.kind) else {
        return;
    };
    let effective = {
        let f = run.frame(frame);
        let ctx = ContextObject::lazy(run.context_parts(f, None, None));
        p.input_path
            .apply(f.input.clone(), &ctx)
            .and_then(|effective| match &p.parameters {
                Some(t) => t.eval(&effective, &ctx),
                None => Ok(effective),
            })
    };
    let effective = match effective {
        Ok(v) => v,
        Err(error) => return run.then(frame, Err(error)),
    };
    let started = run.emit(Some(frame), "ParallelStateStarted", json!({}));
    let mut running = BTreeMap::new();
    for (index, scope) in p.branches.iter().enumerate() {
        let start_at = run.def.scope(*scope).start_at.clone();
        let child = run.new_frame(*scope, Some((frame, index)), &start_at, started);
        running.insert(index, child);
        run.push(Work::Enter {
            frame: child,
            state: start_at,
            input: effective.clone(),
        });
    }
    let n = p.branches.len();
    run.frame_mut(frame).wait = Wait::Children(Children {
        running,
        results: vec![Value::Null; n],
        remaining: n,
        pending: VecDeque::new(),
        next_index: n,
        max_concurrency: 0,
    });
}

pub(super) fn start_map(run: &mut Run<'_, '_>, frame: u64) {
    let Some(StateKind::Map(m)) = run.state_of(frame).map(|s| &s.kind) else {
        return;
    };
    let prepared = {
        let f = run.frame(frame);
        let ctx = ContextObject::lazy(run.context_parts(f, None, None));
        (|| {
            let effective = m.input_path.apply(f.input.clone(), &ctx)?;
            let items = match &m.items_path {
                None => effective.clone(),
                Some(p) => p.select(&effective, &ctx).ok_or_else(|| {
                    StatesError::runtime(format!(
                        "Invalid path '{}' : No results for path: {}",
                        p.path(),
                        p.path().normalized()
                    ))
                })?,
            };
            let Value::Array(items) = items else {
                return Err(StatesError::runtime(format!(
                    "The Map state's items must be a JSON array, got: {items}"
                )));
            };
            let max = match &m.max_concurrency {
                MaxConcurrency::Fixed(n) => *n,
                MaxConcurrency::Path(p) => p
                    .select(&effective, &ctx)
                    .as_ref()
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        StatesError::runtime(format!(
                            "The MaxConcurrencyPath '{}' must reference a non-negative whole number.",
                            p.path()
                        ))
                    })?,
            };
            let mut inputs = VecDeque::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                inputs.push_back(match &m.item_selector {
                    None => item.clone(),
                    Some(t) => {
                        let item_ctx =
                            ContextObject::lazy(run.context_parts(f, None, Some((index, item))));
                        t.eval(&effective, &item_ctx)?
                    }
                });
            }
            Ok((inputs, usize::try_from(max).unwrap_or(usize::MAX)))
        })()
    };
    let (inputs, max_concurrency) = match prepared {
        Ok(p) => p,
        Err(error) => return run.then(frame, Err(error)),
    };
    let n = inputs.len();
    run.emit(Some(frame), "MapStateStarted", json!({ "length": n }));
    if n == 0 {
        run.emit(Some(frame), "MapStateSucceeded", json!({}));
        return run.push(Work::Result {
            frame,
            result: json!([]),
        });
    }
    run.frame_mut(frame).wait = Wait::Children(Children {
        running: BTreeMap::new(),
        results: vec![Value::Null; n],
        remaining: n,
        pending: inputs,
        next_index: 0,
        max_concurrency,
    });
    start_iterations(run, frame);
}

/// Starts pending Map iterations while `MaxConcurrency` allows.
fn start_iterations(run: &mut Run<'_, '_>, frame: u64) {
    let Some(state) = run.state_of(frame) else {
        return;
    };
    let StateKind::Map(m) = &state.kind else {
        return;
    };
    let start_at = run.def.scope(m.processor).start_at.clone();
    loop {
        let Wait::Children(c) = &mut run.frame_mut(frame).wait else {
            return;
        };
        if c.pending.is_empty() || (c.max_concurrency > 0 && c.running.len() >= c.max_concurrency) {
            return;
        }
        let input = c.pending.pop_front().unwrap_or_default();
        let index = c.next_index;
        c.next_index += 1;
        let started = run.emit(
            Some(frame),
            "MapIterationStarted",
            details([("name", json!(state.name)), ("index", json!(index))]),
        );
        let child = run.new_frame(m.processor, Some((frame, index)), &start_at, started);
        if let Wait::Children(c) = &mut run.frame_mut(frame).wait {
            c.running.insert(index, child);
        }
        run.push(Work::Enter {
            frame: child,
            state: start_at.clone(),
            input,
        });
    }
}

pub(super) fn child_done(run: &mut Run<'_, '_>, child: u64, output: Value) {
    let Some(done) = run.snap.frames.remove(&child) else {
        return;
    };
    let Some((parent, index)) = done.parent else {
        return;
    };
    let Some(state) = run.state_of(parent) else {
        return;
    };
    let is_map = matches!(state.kind, StateKind::Map(_));
    let mut previous = done.last_event;
    if is_map {
        previous = run.emit_after(
            previous,
            "MapIterationSucceeded",
            details([("name", json!(state.name)), ("index", json!(index))]),
        );
    }
    let Wait::Children(c) = &mut run.frame_mut(parent).wait else {
        return;
    };
    c.results[index] = output;
    c.running.remove(&index);
    c.remaining -= 1;
    let finished = c.remaining == 0;
    run.frame_mut(parent).last_event = previous;
    if !finished {
        if is_map {
            start_iterations(run, parent);
        }
        return;
    }
    let Wait::Children(c) = std::mem::take(&mut run.frame_mut(parent).wait) else {
        return;
    };
    let event_type = format!("{}StateSucceeded", state.type_name());
    run.emit(Some(parent), &event_type, json!({}));
    run.push(Work::Result {
        frame: parent,
        result: Value::Array(c.results),
    });
}

pub(super) fn child_failed(run: &mut Run<'_, '_>, child: u64, error: StatesError) {
    let Some(failed) = run.snap.frames.remove(&child) else {
        return;
    };
    let Some((parent, index)) = failed.parent else {
        return;
    };
    let Some(state) = run.state_of(parent) else {
        return;
    };
    let is_map = matches!(state.kind, StateKind::Map(_));
    let mut previous = failed.last_event;
    if is_map {
        previous = run.emit_after(
            previous,
            "MapIterationFailed",
            details([("name", json!(state.name)), ("index", json!(index))]),
        );
    }
    run.frame_mut(parent).last_event = previous;
    let Wait::Children(c) = std::mem::take(&mut run.frame_mut(parent).wait) else {
        return;
    };
    for (sibling_index, sibling) in c.running {
        if sibling == child {
            continue;
        }
        cancel_tree(run, sibling);
        if is_map {
            run.emit(
                Some(parent),
                "MapIterationAborted",
                details([("name", json!(state.name)), ("index", json!(sibling_index))]),
            );
        }
    }
    let event_type = format!("{}StateFailed", state.type_name());
    run.emit(
        Some(parent),
        &event_type,
        details([("error", json!(error.error)), ("cause", json!(error.cause))]),
    );
    run.push(Work::Error {
        frame: parent,
        error,
    });
}

/// Removes a frame and everything under it, dropping their tokens and timers.
fn cancel_tree(run: &mut Run<'_, '_>, frame: u64) {
    let Some(f) = run.snap.frames.remove(&frame) else {
        return;
    };
    match f.wait {
        Wait::None => {}
        Wait::Task(task) => {
            run.snap.tokens.remove(&task.token);
            for deadline in [task.timeout, task.heartbeat].into_iter().flatten() {
                run.cancel_timer(&deadline.timer);
            }
        }
        Wait::Timer(timer) | Wait::Retry(timer) => run.cancel_timer(&timer),
        Wait::Children(c) => {
            for child in c.running.into_values() {
                cancel_tree(run, child);
            }
        }
    }
}
