//! What happens when a state reports an error: the first matching retrier retries it (until its
//! `MaxAttempts` are used up); otherwise the first matching catcher sends the error output to
//! its `Next`; otherwise the frame fails. `States.Runtime` is never retried or caught.

use super::frame::{TimerKind, Wait};
use super::run::{Run, Work};
use crate::engine::asl::error::StatesError;
use crate::engine::asl::model::{Catcher, Retrier};
use chrono::Duration;

pub(super) fn state_error(run: &mut Run<'_, '_>, frame: u64, error: StatesError) {
    let (retry, catch): (&[Retrier], &[Catcher]) =
        match run.state_of(frame).and_then(|s| s.kind.result_handling()) {
            Some(h) => (&h.retry, &h.catch),
            None => (&[], &[]),
        };
    if !error.is_recoverable() {
        return run.push(Work::Failed { frame, error });
    }
    if let Some((index, retrier)) = retry.iter().enumerate().find(|(_, r)| r.matches(&error)) {
        let f = run.frame_mut(frame);
        if f.attempts.len() < retry.len() {
            f.attempts.resize(retry.len(), 0);
        }
        if f.attempts[index] < retrier.max_attempts() {
            f.attempts[index] += 1;
            f.retry_count += 1;
            let delay = retrier.delay_millis(f.attempts[index]);
            let at = run.now + Duration::milliseconds(delay);
            let timer = run.schedule(Some(frame), TimerKind::Retry, at);
            run.frame_mut(frame).wait = Wait::Retry(timer);
            return;
        }
    }
    if let Some(catcher) = catch.iter().find(|c| c.matches(&error)) {
        let input = run.frame(frame).input.clone();
        match catcher.result_path.apply(input, error.to_catch_output()) {
            Ok(output) => run.push(Work::Exit {
                frame,
                output,
                next: Some(catcher.next().to_owned()),
            }),
            Err(error) => run.push(Work::Failed { frame, error }),
        }
        return;
    }
    run.push(Work::Failed { frame, error });
}
