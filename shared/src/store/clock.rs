//! The store's clock: times are assigned by the store, to the microsecond,
//! the precision every backend keeps, so a value read back equals the value
//! written.
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::domain::Span;

/// Now, truncated to microseconds.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// `t`, truncated to microseconds.
pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// `span` with its times truncated to microseconds: what every backend
/// records and `SpanStore::record_span` returns.
pub(crate) fn truncate_span(mut span: Span) -> Span {
    span.start_time = truncate(span.start_time);
    span.end_time = span.end_time.map(truncate);
    span
}
