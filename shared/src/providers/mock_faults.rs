//! Faults on demand: the mock providers misbehave the ways the real ones
//! do, at rates `MOCK_FAULTS` sets, so the pipeline's handling of them is
//! exercised by the soak command and the tests rather than assumed.
//!
//! `MOCK_FAULTS` is a list of `kind=rate` pairs (rates from 0 to 1, each the
//! chance per eligible request or callback), or `all=rate`:
//!
//! | kind | what the mock does |
//! |---|---|
//! | `429` | answers an API request with the provider's rate-limit answer, before handling it |
//! | `5xx` | answers an API request with 500, 502, 503 or 504, before handling it |
//! | `slow` | answers an API request late (`slow_delay`) |
//! | `lost` | never sends a callback |
//! | `duplicate` | sends a callback twice |
//! | `late` | sends a callback late (`late_delay`): after the reconciler has asked |
//! | `reorder` | sends callbacks out of order: before the submission's answer (kie.ai, upload-post), or the hosting copy's before the render's (Shotstack) |
//! | `null` | answers with the fields the providers document as sometimes absent or `null` left so (kie.ai URL lists, upload-post's `job_id`) |
//! | `unanswered` | takes a submission that creates work (a clip, a render, a new upload), then loses its answer: the connection ends mid-response |
//!
//! Refusals (`429`, `5xx`) come before the request is handled, so a refused
//! submission created nothing: what a client that tries again must not
//! double is the work of an accepted one, `unanswered` above all.
//!
//! The kinds are read in every build (`Config` parses `MOCK_FAULTS`); the
//! mock servers that act on them are the `mocks` feature's (`providers::mock`).
use std::str::FromStr;
use std::time::Duration;

#[cfg(feature = "mocks")]
use rand::Rng;

/// The fault rates; all zero by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MockFaults {
    pub throttle: f64,
    pub server_error: f64,
    pub slow: f64,
    pub lost: f64,
    pub duplicate: f64,
    pub late: f64,
    pub reorder: f64,
    pub nulls: f64,
    pub unanswered: f64,
}

impl MockFaults {
    /// The kinds `MOCK_FAULTS` names, in its spelling.
    pub const KINDS: [&'static str; 9] = [
        "429",
        "5xx",
        "slow",
        "lost",
        "duplicate",
        "late",
        "reorder",
        "null",
        "unanswered",
    ];

    /// Every kind at `rate`.
    pub fn all(rate: f64) -> Self {
        Self {
            throttle: rate,
            server_error: rate,
            slow: rate,
            lost: rate,
            duplicate: rate,
            late: rate,
            reorder: rate,
            nulls: rate,
            unanswered: rate,
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    fn rate_mut(&mut self, kind: &str) -> Option<&mut f64> {
        Some(match kind {
            "429" => &mut self.throttle,
            "5xx" => &mut self.server_error,
            "slow" => &mut self.slow,
            "lost" => &mut self.lost,
            "duplicate" => &mut self.duplicate,
            "late" => &mut self.late,
            "reorder" => &mut self.reorder,
            "null" => &mut self.nulls,
            "unanswered" => &mut self.unanswered,
            _ => return None,
        })
    }
}

impl std::fmt::Display for MockFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rates = [
            self.throttle,
            self.server_error,
            self.slow,
            self.lost,
            self.duplicate,
            self.late,
            self.reorder,
            self.nulls,
            self.unanswered,
        ];
        let pairs: Vec<String> = Self::KINDS
            .iter()
            .zip(rates)
            .filter(|(_, rate)| *rate > 0.0)
            .map(|(kind, rate)| format!("{kind}={rate}"))
            .collect();
        if pairs.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&pairs.join(","))
        }
    }
}

impl FromStr for MockFaults {
    type Err = String;

    /// `429=0.3,5xx=0.1,lost=0.2`, or `all=0.3` (later pairs override it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut faults = Self::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, rate) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected kind=rate"))?;
            let rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("{pair:?}: a rate is a number from 0 to 1"))?;
            match kind.trim() {
                "all" => faults = Self::all(rate),
                kind => {
                    *faults.rate_mut(kind).ok_or_else(|| {
                        format!(
                            "{kind:?} is not a fault kind (all, {})",
                            Self::KINDS.join(", ")
                        )
                    })? = rate
                }
            }
        }
        Ok(faults)
    }
}

/// Whether a fault of probability `rate` happens this time.
#[cfg(feature = "mocks")]
pub(crate) fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::rng().random_bool(rate.min(1.0))
}

/// One of the server errors a `5xx` fault answers with.
#[cfg(feature = "mocks")]
pub(crate) fn server_error_status() -> axum::http::StatusCode {
    use axum::http::StatusCode;
    [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::GATEWAY_TIMEOUT,
    ][rand::rng().random_range(0..4)]
}

/// How long `slow` and `late` faults wait, by default.
pub const DEFAULT_SLOW_DELAY: Duration = Duration::from_millis(1_500);
pub const DEFAULT_LATE_DELAY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_faults_parse_pairs_and_all() {
        let faults: MockFaults = "429=0.3, 5xx=0.1,lost=1".parse().unwrap();
        assert_eq!(faults.throttle, 0.3);
        assert_eq!(faults.server_error, 0.1);
        assert_eq!(faults.lost, 1.0);
        assert_eq!(faults.nulls, 0.0);
        assert_eq!(faults.to_string(), "429=0.3,5xx=0.1,lost=1");
        let all: MockFaults = "all=0.3,null=0".parse().unwrap();
        assert_eq!(all.duplicate, 0.3);
        assert_eq!(all.nulls, 0.0);
        assert!("".parse::<MockFaults>().unwrap().is_none());
        assert_eq!(MockFaults::default().to_string(), "none");
        for bad in ["lost", "lost=2", "lost=-0.1", "gremlins=0.1", "429=x"] {
            let error = bad.parse::<MockFaults>().unwrap_err();
            assert!(!error.is_empty(), "{bad}");
        }
    }

    #[test]
    fn rolls_follow_their_rate() {
        assert!(!roll(0.0));
        assert!(roll(1.0));
        let hits = (0..2_000).filter(|_| roll(0.3)).count();
        assert!((450..750).contains(&hits), "{hits}");
    }
}
