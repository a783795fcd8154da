//! Projects, the personas of the graph, and the human-in-the-loop gates.
use std::fmt;
use std::str::FromStr;

use super::{is_slug, named_enum, serde_via_str, ParseError};

/// A project name such as `test-video-gen` or `aismr`: a lowercase slug. Which
/// projects exist is data (their specs); this type only guarantees the shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Project(String);

impl Project {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The job-code prefix: the initials of a multi-word name (`test-video-gen`
    /// → `TVG`), else its first three letters (`aismr` → `AIS`).
    pub fn job_code_prefix(&self) -> String {
        let initials: String = self
            .0
            .split('-')
            .filter_map(|word| word.chars().next())
            .filter(char::is_ascii_alphabetic)
            .take(5)
            .collect();
        let prefix = if initials.len() >= 2 {
            initials
        } else {
            self.0
                .chars()
                .filter(char::is_ascii_alphabetic)
                .take(3)
                .collect()
        };
        let mut prefix = prefix.to_ascii_uppercase();
        while prefix.len() < 2 {
            prefix.push('X');
        }
        prefix
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Project {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_slug(s, 64) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "project",
                s,
                "expected a lowercase slug like test-video-gen",
            ))
        }
    }
}

serde_via_str!(Project);

named_enum! {
    /// The personas of the production graph, in graph order.
    pub enum Persona: "persona" {
        Iggy => "iggy",
        Riley => "riley",
        Alex => "alex",
        Quinn => "quinn",
    }
}

/// A human-in-the-loop gate such as `ideate` or `prepublish`; projects declare
/// theirs as data, so this is a slug rather than a closed enum.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gate(String);

impl Gate {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Gate {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_slug(s, 32) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "gate",
                s,
                "expected a lowercase slug like prepublish",
            ))
        }
    }
}

serde_via_str!(Gate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_come_from_the_project_name() {
        let prefix = |p: &str| p.parse::<Project>().unwrap().job_code_prefix();
        assert_eq!(prefix("test-video-gen"), "TVG");
        assert_eq!(prefix("aismr"), "AIS");
        assert_eq!(prefix("a"), "AX");
        assert_eq!(prefix("x-2"), "XX");
    }

    #[test]
    fn projects_and_gates_are_slugs() {
        for bad in ["", "Test", "a b", "-a", "a-", "a--b", "9lives", "a_b"] {
            assert!(bad.parse::<Project>().is_err(), "{bad:?}");
            assert!(bad.parse::<Gate>().is_err(), "{bad:?}");
        }
        assert!("prepublish".parse::<Gate>().is_ok());
    }

    #[test]
    fn personas_parse_by_name() {
        assert_eq!("riley".parse::<Persona>().unwrap(), Persona::Riley);
        assert!("Riley".parse::<Persona>().is_err());
    }
}
