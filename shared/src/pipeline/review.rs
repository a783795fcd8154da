//! What a gate asks a human to approve. A gate task receives the state the
//! graph carried to it — the personas' outputs so far — and keeps what a
//! reviewer needs from it in its `hitl.request` record: the ideas at
//! `ideate`, the rendered video and its clips at `prepublish`. The approval
//! page, its JSON, the dashboard and Brendan all show that record, so a
//! reviewer sees exactly what the run will go on with.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Pipeline, PipelineError};
use crate::domain::{ArtifactType, Gate, HitlRequest, Persona, Run};

/// The personas' work a gate is about; a field is empty when the graph has
/// not produced it before this gate (at `ideate` there is no video yet; the
/// caption is written after `prepublish`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateReview {
    /// Iggy's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Iggy's ideas, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ideas: Vec<String>,
    /// Iggy's hook: the first second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// Riley's clips' URLs, in scene order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clips: Vec<String>,
    /// Alex's rendered video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_url: Option<String>,
    /// Quinn's caption, when a gate comes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The personas still to run after this gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<Persona>,
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl GateReview {
    /// The review in a gate task's input: the state machine's state, with
    /// one key per persona that has finished (`iggy`, `riley`, …).
    pub fn from_state(state: &Value) -> Self {
        let iggy = &state[Persona::Iggy.as_str()];
        let riley = &state[Persona::Riley.as_str()];
        let alex = &state[Persona::Alex.as_str()];
        let quinn = &state[Persona::Quinn.as_str()];
        let strings = |list: &Value, key: Option<&str>| -> Vec<String> {
            list.as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| text(key.map_or(item, |k| &item[k])))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            title: text(&iggy["title"]),
            ideas: strings(&iggy["ideas"], None),
            hook: text(&iggy["hook"]),
            clips: strings(&riley["clips"], Some("url")),
            render_url: text(&alex["render_url"]),
            caption: text(&quinn["caption"]),
            next: Persona::ALL
                .iter()
                .copied()
                .filter(|p| state.get(p.as_str()).is_none())
                .collect(),
        }
    }
}

/// A gate as a reviewer sees it.
#[derive(Debug, Clone)]
pub struct GateView {
    pub run: Run,
    pub request: HitlRequest,
    pub review: GateReview,
}

impl Pipeline {
    /// Gate `gate` of run `key` with what it asks to approve (empty for a
    /// request recorded without one).
    pub async fn gate_view(&self, key: &str, gate: &Gate) -> Result<GateView, PipelineError> {
        let (run, request) = self.waiting_gate(key, gate).await?;
        let review = self
            .store
            .list_artifacts_of(run.run_id, &[ArtifactType::HITL_REQUEST.as_str()])
            .await?
            .into_iter()
            .rev()
            .find(|a| a.metadata["gate"] == gate.as_str())
            .and_then(|a| serde_json::from_value(a.metadata["review"].clone()).ok())
            .unwrap_or_default();
        Ok(GateView {
            run,
            request,
            review,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_review_takes_what_the_personas_made_before_the_gate() {
        let ideate = GateReview::from_state(&json!({
            "run_id": "r", "iggy": {"title": " Glass apple ", "ideas": ["slice", "", "crush"], "hook": "snap", "summary": "done"}
        }));
        assert_eq!(ideate.title.as_deref(), Some("Glass apple"));
        assert_eq!(ideate.ideas, ["slice", "crush"]);
        assert!(ideate.clips.is_empty() && ideate.render_url.is_none());
        assert_eq!(ideate.next, [Persona::Riley, Persona::Alex, Persona::Quinn]);

        let prepublish = GateReview::from_state(&json!({
            "iggy": {"title": "T"},
            "riley": {"clips": [{"job_id": "a", "url": "https://c/0"}, {"job_id": "b", "url": null}, {"url": "https://c/2"}]},
            "alex": {"render_url": "https://r/1.mp4"},
            "gates": {"ideate": {"decision": "approved"}}
        }));
        assert_eq!(prepublish.clips, ["https://c/0", "https://c/2"]);
        assert_eq!(prepublish.render_url.as_deref(), Some("https://r/1.mp4"));
        assert_eq!(prepublish.next, [Persona::Quinn]);
        assert_eq!(prepublish.caption, None);
    }

    #[test]
    fn a_state_without_outputs_is_an_empty_review_of_every_persona() {
        let review = GateReview::from_state(&json!({"run_id": "r"}));
        assert_eq!(review.next.len(), Persona::ALL.len());
        assert_eq!(review.title, None);
        let back: GateReview =
            serde_json::from_value(serde_json::to_value(&review).unwrap()).unwrap();
        assert_eq!(back, review);
    }
}
