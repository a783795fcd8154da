//! Identifiers: `RunId` (a UUID) and `JobCode` (`TVG-QXZ123`), the short code
//! people say out loud and type into chat.
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use uuid::Uuid;

use super::{serde_via_str, ParseError, Project};

/// The id of a run: a UUID (time-ordered v7 when we mint it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Uuid);

impl RunId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The run a client's idempotency key names: the same key (from the same
    /// user) always names the same run, so a start sent again after a lost
    /// answer finds the run the first one made. A UUID v8 from the SHA-256
    /// of the user and the key.
    pub fn for_idempotency_key(user_id: Option<&str>, key: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"myloware run\0");
        hash.update(user_id.unwrap_or_default().as_bytes());
        hash.update(b"\0");
        hash.update(key.as_bytes());
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The name of the run's execution: its id for the first, `<id>-r<n>`
    /// for its `n`th redrive (an execution name is used once per state
    /// machine, and 36 + 2 + digits stays under Step Functions' 80).
    pub fn execution_name(&self, redrive: u32) -> String {
        match redrive {
            0 => self.to_string(),
            n => format!("{self}-r{n}"),
        }
    }

    /// The run and redrive an execution name names (`execution_name`'s
    /// inverse); `None` for an execution that is not a run's.
    pub fn of_execution_name(name: &str) -> Option<(RunId, u32)> {
        let (id, rest) = (name.get(..36)?, name.get(36..)?);
        let redrive = match rest {
            "" => 0,
            _ => rest
                .strip_prefix("-r")
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))?
                .parse()
                .ok()
                .filter(|n| *n > 0)?,
        };
        Some((id.parse().ok()?, redrive))
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RunId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| ParseError::new("run id", s, "expected a UUID"))
    }
}

impl From<Uuid> for RunId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

serde_via_str!(RunId);

/// A job code: the project's prefix, a dash, three capital letters and three
/// digits, e.g. `TVG-QXZ123`. Unique across runs (the store enforces it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobCode(String);

impl JobCode {
    /// A fresh random code for `project`. 17,576,000 codes per prefix; the
    /// store's unique index catches the rare collision and the caller retries.
    pub fn generate(project: &Project) -> Self {
        let mut rng = rand::rng();
        let letters: String = (0..3)
            .map(|_| char::from(b'A' + rng.random_range(0..26u8)))
            .collect();
        let digits: u32 = rng.random_range(0..1000);
        Self(format!(
            "{}-{letters}{digits:03}",
            project.job_code_prefix()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for JobCode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHY: &str =
            "expected PREFIX-ABC123 (2-5 capital letters, a dash, 3 letters, 3 digits)";
        let code = s.trim().to_ascii_uppercase();
        let (prefix, rest) = code
            .split_once('-')
            .ok_or_else(|| ParseError::new("job code", s, WHY))?;
        let prefix_ok =
            (2..=5).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
        let rest = rest.as_bytes();
        let rest_ok = rest.len() == 6
            && rest[..3].iter().all(u8::is_ascii_uppercase)
            && rest[3..].iter().all(u8::is_ascii_digit);
        if prefix_ok && rest_ok {
            Ok(Self(code))
        } else {
            Err(ParseError::new("job code", s, WHY))
        }
    }
}

serde_via_str!(JobCode);

/// How people name a run: by its id or by its job code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRef {
    Id(RunId),
    Code(JobCode),
}

impl FromStr for RunRef {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = s.parse() {
            Ok(Self::Id(id))
        } else if let Ok(code) = s.parse() {
            Ok(Self::Code(code))
        } else {
            Err(ParseError::new(
                "run",
                s,
                "expected a run id (UUID) or a job code (like TVG-QXZ123)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_codes_round_trip_and_carry_the_project_prefix() {
        let project: Project = "test-video-gen".parse().unwrap();
        for _ in 0..100 {
            let code = JobCode::generate(&project);
            assert!(code.as_str().starts_with("TVG-"), "{code}");
            assert_eq!(code.as_str().parse::<JobCode>().unwrap(), code);
        }
    }

    #[test]
    fn job_codes_parse_case_insensitively_and_refuse_junk() {
        assert_eq!(
            "tvg-qxz123".parse::<JobCode>().unwrap().as_str(),
            "TVG-QXZ123"
        );
        for bad in [
            "",
            "TVG",
            "TVG-QX1234",
            "TVG-QXZ12",
            "T-QXZ123",
            "TVG_QXZ123",
            "TVG-123QXZ",
        ] {
            assert!(bad.parse::<JobCode>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn runs_are_named_by_id_or_job_code() {
        let id = RunId::new();
        assert_eq!(id.to_string().parse::<RunRef>().unwrap(), RunRef::Id(id));
        assert!(matches!(
            "tvg-abc123".parse::<RunRef>().unwrap(),
            RunRef::Code(_)
        ));
        assert!("nonsense".parse::<RunRef>().is_err());
    }

    #[test]
    fn execution_names_name_the_run_and_its_redrive() {
        let id = RunId::new();
        for n in [0, 1, 12] {
            let name = id.execution_name(n);
            assert!(name.len() <= 80, "{name}");
            assert_eq!(RunId::of_execution_name(&name), Some((id, n)));
        }
        assert_eq!(id.execution_name(0), id.to_string());
        for other in [
            "",
            "x",
            "nope-r1",
            &format!("{id}-r"),
            &format!("{id}-r0"),
            &format!("{id}-x1"),
            &format!("{id}-r1a"),
        ] {
            assert_eq!(RunId::of_execution_name(other), None, "{other:?}");
        }
    }

    #[test]
    fn run_ids_are_uuids() {
        let id = RunId::new();
        assert_eq!(id.to_string().parse::<RunId>().unwrap(), id);
        let err = "not-a-uuid".parse::<RunId>().unwrap_err();
        assert!(err.to_string().contains("run id"), "{err}");
    }
}
