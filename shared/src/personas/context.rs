//! The run context a persona is given: the first user message of its
//! conversation, as JSON.
//!
//! One documented shape serves every brain: a real model reads it as part of
//! its prompt, the scripted brain parses it, and the worker builds it from
//! the run's input and what earlier personas produced. The format:
//!
//! ```json
//! {
//!   "run_id": "0190…",
//!   "project": "aismr",
//!   "message": "a glass apple",
//!   "clips": {"count": 12, "duration_seconds": 8, "aspect_ratio": "9:16"},
//!   "state": {
//!     "iggy":  {"title": "…", "ideas": ["…"], "hook": "…"},
//!     "riley": {"scenes": [{"prompt": "…", "duration_seconds": 8}], "clips": [{"index": 0, "url": "https://…"}]},
//!     "alex":  {"render_url": "https://…"},
//!     "quinn": {"publish_urls": ["https://…"]}
//!   },
//!   "gates": {
//!     "ideate": {"decision": "approved", "by": "api-key:cli", "comment": "more crunch"}
//!   }
//! }
//! ```
//!
//! `state` holds one object per persona that has finished; each key is
//! optional. Alex reads `state.riley.clips[].url`, Quinn `state.alex.render_url`.
//! `gates` holds the human decisions taken so far (absent when none): a
//! reviewer's `comment` is a note to the personas after that gate.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::spec::{ClipSpec, ProjectSpec};
use crate::domain::{Persona, Project, RunId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonaContext {
    pub run_id: RunId,
    pub project: Project,
    /// The brief: the user's message, or the project's default.
    pub message: String,
    pub clips: ClipSpec,
    /// Earlier personas' outputs, keyed by persona name.
    #[serde(default)]
    pub state: Map<String, Value>,
    /// The gates passed so far, keyed by gate: `{decision, by, comment}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub gates: Map<String, Value>,
}

impl PersonaContext {
    /// A fresh context; a missing or blank message becomes the project's
    /// `default_message`.
    pub fn new(run_id: RunId, spec: &ProjectSpec, message: Option<&str>) -> Self {
        let message = message
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or(&spec.default_message);
        Self {
            run_id,
            project: spec.name.clone(),
            message: message.to_owned(),
            clips: spec.clips.clone(),
            state: Map::new(),
            gates: Map::new(),
        }
    }

    /// Records what `persona` produced, for the personas after it.
    pub fn with_output(mut self, persona: Persona, output: Value) -> Self {
        self.state.insert(persona.as_str().to_owned(), output);
        self
    }

    pub fn output(&self, persona: Persona) -> Option<&Value> {
        self.state.get(persona.as_str())
    }

    /// `state.riley.clips[].url`, in order, skipping clips without one.
    pub fn clip_urls(&self) -> Vec<String> {
        self.output(Persona::Riley)
            .and_then(|riley| riley["clips"].as_array())
            .map(|clips| {
                clips
                    .iter()
                    .filter_map(|clip| clip["url"].as_str())
                    .filter(|url| !url.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `state.alex.render_url`.
    pub fn render_url(&self) -> Option<&str> {
        self.output(Persona::Alex)
            .and_then(|alex| alex["render_url"].as_str())
            .filter(|url| !url.is_empty())
    }

    /// The first user message of a persona's conversation.
    pub fn to_user_message(&self) -> String {
        serde_json::to_string_pretty(self).expect("a context always serializes")
    }

    /// Reads a context back from a user message; `None` when the message is
    /// not one.
    pub fn from_user_message(text: &str) -> Option<Self> {
        serde_json::from_str(text.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_context_round_trips_through_a_user_message() {
        let spec = ProjectSpec::load("aismr").unwrap();
        let context = PersonaContext::new(RunId::new(), &spec, Some("  a glass apple "))
            .with_output(
                Persona::Riley,
                json!({"clips": [{"url": "https://c/0"}, {"index": 1}, {"url": "https://c/2"}]}),
            )
            .with_output(Persona::Alex, json!({"render_url": "https://r/1"}));
        assert_eq!(context.message, "a glass apple");
        assert_eq!(context.clip_urls(), ["https://c/0", "https://c/2"]);
        assert_eq!(context.render_url(), Some("https://r/1"));
        let text = context.to_user_message();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json["clips"],
            json!({"count": 12, "duration_seconds": 8, "aspect_ratio": "9:16"})
        );
        assert_eq!(json["project"], "aismr");
        assert_eq!(PersonaContext::from_user_message(&text), Some(context));
        assert_eq!(PersonaContext::from_user_message("make a video"), None);
    }

    #[test]
    fn no_message_means_the_default_and_no_state_means_nothing_found() {
        let spec = ProjectSpec::load("test-video-gen").unwrap();
        let context = PersonaContext::new(RunId::new(), &spec, Some(" "));
        assert_eq!(context.message, spec.default_message);
        assert!(context.clip_urls().is_empty());
        assert_eq!(context.render_url(), None);
    }
}
