//! The domain model. Every value here is parsed once at the edge and is valid
//! from then on: a `RunId`, `JobCode` or `Gate` that exists in the program is a
//! well-formed one ("parse, don't validate").
mod artifact;
mod conversation;
mod hitl;
mod ids;
mod project;
mod provider_job;
mod run;
mod span;
mod status;
mod webhook;

pub use artifact::{Artifact, ArtifactType, NewArtifact};
pub use conversation::{ChatMessage, ChatRole};
pub use hitl::{HitlDecision, HitlRequest, NewHitlRequest};
pub use ids::{JobCode, RunId, RunRef};
pub use project::{Gate, Persona, Project};
pub use provider_job::{
    JobStatus, NewProviderJob, Provider, ProviderJob, SettledBy, INTENT_JOB_PREFIX,
};
pub use run::{NewRun, ProvidersMode, Run, RunLabels};
pub use span::{NewSpan, Span, SpanEnd, SpanId, SpanLink, SpanStatus, TraceId};
pub use status::RunStatus;
pub use webhook::{NewWebhookEvent, SignatureStatus, WebhookEvent, WebhookEventStatus};

/// A value that failed to parse into a domain type: says what and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct ParseError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl ParseError {
    pub(crate) fn new(kind: &'static str, value: &str, reason: &'static str) -> Self {
        Self {
            kind,
            value: value.chars().take(80).collect(),
            reason,
        }
    }
}

/// Implements `Display`, `FromStr`, serde and `as_str` for a closed set of
/// names, so each enum spells its wire form exactly once.
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident : $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::ParseError::new($kind, s, concat!("expected one of: ", $($text, " "),+))),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": [$($text),+] })
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use named_enum;

/// Implements serde for a newtype through its `Display`/`FromStr`, so every
/// deserialized value went through `parse`.
macro_rules! serde_via_str {
    ($name:ident) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_str;

/// True for lowercase slugs like `test-video-gen` or `prepublish`.
pub(crate) fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
