//! Timestamps as ASL writes them: RFC 3339 with an uppercase `T` and, when there is no numeric
//! offset, an uppercase `Z` (stricter than RFC 3339 itself, as AWS is).

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

/// Parses an ASL timestamp; `None` when it is not one.
pub fn parse(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.as_bytes().get(10) != Some(&b'T') || text.ends_with('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok()
}

/// Formats a timestamp the way Step Functions does: RFC 3339, milliseconds, `Z`.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_asl_rules() {
        assert!(parse("2016-03-14T01:59:00Z").is_some());
        assert!(parse("2016-03-14T01:59:00.123+02:00").is_some());
        assert!(parse("2016-03-14t01:59:00Z").is_none());
        assert!(parse("2016-03-14T01:59:00z").is_none());
        assert!(parse("2016-03-14 01:59:00Z").is_none());
        assert!(parse("2016-03-14").is_none());
        assert!(parse("yesterday").is_none());
    }
}
