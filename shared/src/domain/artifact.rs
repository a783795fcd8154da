//! Artifacts: the evidence a run leaves behind, one row per fact
//! (`run.start`, `kieai.job`, `render.url`, …).
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{serde_via_str, ParseError, Persona, Provider, RunId};

/// An artifact type: dot-separated lowercase words. The well-known ones are
/// constants; new ones need no code change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactType(Cow<'static, str>);

impl ArtifactType {
    pub const RUN_START: Self = Self::known("run.start");
    /// Iggy's ideas, Riley's script, Quinn's caption: what the personas'
    /// recording tools keep (`pipeline::tools`).
    pub const IDEAS_LIST: Self = Self::known("ideas.list");
    pub const SCRIPT_TEXT: Self = Self::known("script.text");
    pub const CAPTION_TEXT: Self = Self::known("caption.text");
    pub const KIEAI_JOB: Self = Self::known("kieai.job");
    /// The clips about to be submitted to kie.ai, named before they are sent
    /// (`pipeline::intents`).
    pub const KIEAI_INTENT: Self = Self::known("kieai.intent");
    pub const KIEAI_CLIP: Self = Self::known("kieai.clip");
    pub const KIEAI_ERROR: Self = Self::known("kieai.error");
    /// The render about to be submitted to Shotstack, named before it is
    /// sent (`pipeline::intents`).
    pub const SHOTSTACK_INTENT: Self = Self::known("shotstack.intent");
    pub const SHOTSTACK_TIMELINE: Self = Self::known("shotstack.timeline");
    pub const RENDER_URL: Self = Self::known("render.url");
    pub const RENDER_ERROR: Self = Self::known("render.error");
    /// The upload's name (`request_id`), recorded before it is sent.
    pub const PUBLISH_INTENT: Self = Self::known("publish.intent");
    /// The upload as upload-post accepted it: its ids and platforms.
    pub const PUBLISH_REQUEST: Self = Self::known("publish.request");
    pub const PUBLISH_URL: Self = Self::known("publish.url");
    pub const PUBLISH_ERROR: Self = Self::known("publish.error");
    pub const HITL_REQUEST: Self = Self::known("hitl.request");
    pub const HITL_APPROVAL: Self = Self::known("hitl.approval");
    pub const RUN_FAILED: Self = Self::known("run.failed");
    pub const RUN_CANCELLED: Self = Self::known("run.cancelled");
    /// A failed run continued from the state that failed: from which state,
    /// by which execution (`Pipeline::redrive_run`).
    pub const RUN_REDRIVEN: Self = Self::known("run.redriven");
    /// On a replay: the run it replays and the state it starts at
    /// (`Pipeline::replay_run`).
    pub const RUN_REPLAY_OF: Self = Self::known("run.replay_of");
    /// On the origin of a replay: the replay, and the state it starts at.
    pub const RUN_REPLAYED: Self = Self::known("run.replayed");
    /// The worker's record that a persona's agent has ended (its summary,
    /// tools and usage): its task completes once its jobs have settled too.
    pub const PERSONA_COMPLETED: Self = Self::known("persona.completed");

    /// Every type the design names.
    pub const WELL_KNOWN: &'static [Self] = &[
        Self::RUN_START,
        Self::IDEAS_LIST,
        Self::SCRIPT_TEXT,
        Self::CAPTION_TEXT,
        Self::KIEAI_JOB,
        Self::KIEAI_INTENT,
        Self::KIEAI_CLIP,
        Self::KIEAI_ERROR,
        Self::SHOTSTACK_INTENT,
        Self::SHOTSTACK_TIMELINE,
        Self::RENDER_URL,
        Self::RENDER_ERROR,
        Self::PUBLISH_INTENT,
        Self::PUBLISH_REQUEST,
        Self::PUBLISH_URL,
        Self::PUBLISH_ERROR,
        Self::HITL_REQUEST,
        Self::HITL_APPROVAL,
        Self::RUN_FAILED,
        Self::RUN_CANCELLED,
        Self::RUN_REDRIVEN,
        Self::RUN_REPLAY_OF,
        Self::RUN_REPLAYED,
    ];

    const fn known(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ArtifactType {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(known) = Self::WELL_KNOWN.iter().find(|t| t.as_str() == s) {
            return Ok(known.clone());
        }
        let word_ok = |w: &str| {
            !w.is_empty()
                && w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        if s.len() <= 64 && s.contains('.') && s.split('.').all(word_ok) {
            Ok(Self(Cow::Owned(s.to_owned())))
        } else {
            Err(ParseError::new(
                "artifact type",
                s,
                "expected dot-separated lowercase words like render.url",
            ))
        }
    }
}

serde_via_str!(ArtifactType);

/// An artifact as stored: the `artifacts` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Artifact {
    pub id: Uuid,
    pub run_id: RunId,
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    pub provider: Option<Provider>,
    pub persona: Option<Persona>,
    pub url: Option<String>,
    pub checksum: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

impl Artifact {
    /// Whether this is the worker's record that `persona`'s agent has ended.
    pub fn is_persona_completed(&self, persona: Persona) -> bool {
        self.artifact_type == ArtifactType::PERSONA_COMPLETED && self.persona == Some(persona)
    }
}

// `NewArtifact` repeats most of `Artifact`'s fields on purpose: the stored
// artifact is the flat API shape and row every store reads and writes.
/// An artifact to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewArtifact {
    pub run_id: RunId,
    pub artifact_type: ArtifactType,
    pub provider: Option<Provider>,
    pub persona: Option<Persona>,
    pub url: Option<String>,
    pub checksum: Option<String>,
    pub metadata: Value,
}

impl NewArtifact {
    /// The artifact as stored: a fresh id, recorded `at`.
    pub fn stored_at(self, at: DateTime<Utc>) -> Artifact {
        Artifact {
            id: Uuid::now_v7(),
            run_id: self.run_id,
            artifact_type: self.artifact_type,
            provider: self.provider,
            persona: self.persona,
            url: self.url,
            checksum: self.checksum,
            metadata: self.metadata,
            created_at: at,
        }
    }

    pub fn new(run_id: RunId, artifact_type: ArtifactType, metadata: Value) -> Self {
        Self {
            run_id,
            artifact_type,
            provider: None,
            persona: None,
            url: None,
            checksum: None,
            metadata,
        }
    }

    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    pub fn persona(mut self, persona: Persona) -> Self {
        self.persona = Some(persona);
        self
    }

    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    pub fn checksum(mut self, checksum: impl Into<String>) -> Self {
        self.checksum = Some(checksum.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_types_parse_to_themselves() {
        for t in ArtifactType::WELL_KNOWN {
            assert_eq!(&t.as_str().parse::<ArtifactType>().unwrap(), t);
        }
    }

    #[test]
    fn new_types_need_no_code_but_a_shape() {
        assert_eq!(
            "shotstack.cdn_copy"
                .parse::<ArtifactType>()
                .unwrap()
                .as_str(),
            "shotstack.cdn_copy"
        );
        for bad in [
            "",
            "render",
            "Render.url",
            "render..url",
            ".url",
            "render.url.",
        ] {
            assert!(bad.parse::<ArtifactType>().is_err(), "{bad:?}");
        }
    }
}
