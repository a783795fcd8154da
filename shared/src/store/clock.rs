//! The store's clock: times are assigned by the store, to the microsecond,
//! the precision every backend keeps, so a value read back equals the value
//! written.
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Now, truncated to microseconds.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// `t`, truncated to microseconds.
pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}
