//! The graph personas' parts: a fixed plan of tools per persona, arguments
//! built from the run context and from the persona's own earlier calls, and a
//! one-line summary at the end. On a failed tool the brain stops and says so,
//! since retrying the same arguments would fail the same way.
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::Transcript;
use crate::domain::{Persona, RunId};
use crate::personas::agent::error_in_content;
use crate::personas::tools::catalog::{
    self, ClipRequest, PublishVideoArgs, RecordIdeasArgs, RenderVideoArgs, Scene,
    SubmitClipJobsArgs, WriteCaptionArgs, WriteScriptArgs,
};
use crate::personas::{Agent, ClipSpec, PersonaContext};
use crate::providers::llm::AssistantMessage;

/// Each persona's tools, in the order it calls them.
fn plan(persona: Persona) -> &'static [&'static str] {
    match persona {
        Persona::Iggy => &[catalog::RECORD_IDEAS],
        Persona::Riley => &[catalog::WRITE_SCRIPT, catalog::SUBMIT_CLIP_JOBS],
        Persona::Alex => &[catalog::RENDER_VIDEO],
        Persona::Quinn => &[catalog::WRITE_CAPTION, catalog::PUBLISH_VIDEO],
    }
}

const ANGLES: &[&str] = &[
    "macro close-up",
    "slow overhead push-in",
    "eye-level tracking shot",
    "low-angle detail shot",
];

pub(super) const PLATFORMS: &[&str] = &["tiktok", "youtube"];

pub(super) fn reply(persona: Persona, transcript: &Transcript<'_>) -> AssistantMessage {
    if let Some((call_id, content)) = transcript.last_tool_result() {
        if let Some(error) = error_in_content(content) {
            let tool = transcript
                .calls_after(0)
                .into_iter()
                .find(|past| past.call.id == call_id)
                .map_or("a tool", |past| past.call.name.as_str());
            return AssistantMessage::text(format!("I could not finish: {tool} failed: {error}"));
        }
    }
    let brief = Brief::read(transcript);
    let done: Vec<&str> = transcript
        .calls_after(0)
        .iter()
        .map(|past| past.call.name.as_str())
        .collect();
    let next = plan(persona)
        .iter()
        .find(|tool| transcript.offers(tool) && !done.contains(tool));
    match next {
        Some(tool) => {
            let args = brief.args_for(tool);
            AssistantMessage::calls(vec![transcript.call(Agent::Persona(persona), tool, args)])
        }
        None => AssistantMessage::text(brief.summary(persona)),
    }
}

/// What the brain knows: the run context and its own earlier arguments.
struct Brief {
    context: PersonaContext,
    earlier: Vec<(String, Value)>,
}

impl Brief {
    fn read(transcript: &Transcript<'_>) -> Self {
        let text = transcript.first_user().unwrap_or_default();
        let context = PersonaContext::from_user_message(text).unwrap_or_else(|| PersonaContext {
            run_id: RunId::from(uuid::Uuid::nil()),
            project: "unknown".parse().expect("a slug"),
            message: text.trim().to_owned(),
            clips: ClipSpec {
                count: 2,
                duration_seconds: 8,
                aspect_ratio: "9:16".to_owned(),
            },
            state: Default::default(),
            gates: Default::default(),
        });
        let earlier = transcript
            .calls_after(0)
            .into_iter()
            .map(|past| (past.call.name.clone(), past.call.arguments.clone()))
            .collect();
        Self { context, earlier }
    }

    fn earlier<T: DeserializeOwned>(&self, tool: &str) -> Option<T> {
        let (_, args) = self.earlier.iter().rev().find(|(name, _)| name == tool)?;
        serde_json::from_value(args.clone()).ok()
    }

    fn topic(&self) -> &str {
        match self.context.message.trim() {
            "" => "a quiet, satisfying moment",
            topic => topic,
        }
    }

    fn iggy(&self) -> Option<RecordIdeasArgs> {
        self.context
            .output(Persona::Iggy)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    fn title(&self) -> String {
        self.iggy()
            .map(|iggy| iggy.title)
            .unwrap_or_else(|| title_case(self.topic()))
    }

    fn args_for(&self, tool: &str) -> Value {
        match tool {
            catalog::RECORD_IDEAS => json!(self.ideas()),
            catalog::WRITE_SCRIPT => json!(WriteScriptArgs {
                scenes: self.scenes()
            }),
            catalog::SUBMIT_CLIP_JOBS => json!(self.clip_jobs()),
            catalog::RENDER_VIDEO => json!(RenderVideoArgs {
                title: self.title(),
                clip_urls: self.context.clip_urls(),
                aspect_ratio: self.context.clips.aspect_ratio.clone(),
            }),
            catalog::WRITE_CAPTION => json!(self.caption()),
            catalog::PUBLISH_VIDEO => json!(self.publish()),
            _ => json!({}),
        }
    }

    fn ideas(&self) -> RecordIdeasArgs {
        let topic = self.topic();
        let subject = title_case(topic);
        RecordIdeasArgs {
            title: truncate(&subject, 60),
            ideas: vec![
                format!("{subject} in extreme close-up, revealed slowly out of darkness"),
                format!("{subject}: one slow, deliberate action from first touch to last"),
                format!("{subject} seen from three angles: macro, overhead and eye level"),
            ],
            hook: format!("Open tight on {topic} just as the first sound lands."),
        }
    }

    fn scenes(&self) -> Vec<Scene> {
        let clips = &self.context.clips;
        let ideas = self
            .iggy()
            .map(|iggy| iggy.ideas)
            .filter(|ideas| !ideas.is_empty())
            .unwrap_or_else(|| vec![self.topic().to_owned()]);
        (0..clips.count as usize)
            .map(|i| Scene {
                prompt: format!(
                    "Scene {} of {}: {}. {}, soft studio light, shallow depth of field, smooth slow motion, {} framing, no text or logos.",
                    i + 1,
                    clips.count,
                    ideas[i % ideas.len()].trim_end_matches('.'),
                    capitalize(ANGLES[i % ANGLES.len()]),
                    clips.aspect_ratio
                ),
                duration_seconds: clips.duration_seconds,
            })
            .collect()
    }

    /// One job per clip of the spec: the script's scenes when there is one,
    /// padded or cut to `clips.count`.
    fn clip_jobs(&self) -> SubmitClipJobsArgs {
        let clips = &self.context.clips;
        let written = self
            .earlier::<WriteScriptArgs>(catalog::WRITE_SCRIPT)
            .map(|script| script.scenes)
            .unwrap_or_default();
        let fresh = self.scenes();
        SubmitClipJobsArgs {
            clips: (0..clips.count as usize)
                .map(|i| ClipRequest {
                    prompt: written.get(i).unwrap_or(&fresh[i]).prompt.clone(),
                    duration_seconds: clips.duration_seconds,
                    aspect_ratio: clips.aspect_ratio.clone(),
                })
                .collect(),
        }
    }

    fn caption(&self) -> WriteCaptionArgs {
        let mut hashtags: Vec<String> = match self.context.project.as_str() {
            "aismr" => vec!["#asmr", "#aismr", "#satisfying", "#oddlysatisfying"],
            _ => vec!["#myloware", "#aivideo", "#shorts"],
        }
        .into_iter()
        .map(str::to_owned)
        .collect();
        if let Some(word) = self
            .topic()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .rfind(|w| w.len() > 2)
        {
            let tag = format!("#{}", word.to_ascii_lowercase());
            if !hashtags.contains(&tag) {
                hashtags.push(tag);
            }
        }
        WriteCaptionArgs {
            caption: truncate(&format!("{}. Sound on.", self.title()), 150),
            hashtags,
        }
    }

    fn publish(&self) -> PublishVideoArgs {
        let caption = self
            .earlier::<WriteCaptionArgs>(catalog::WRITE_CAPTION)
            .unwrap_or_else(|| self.caption());
        PublishVideoArgs {
            video_url: self.context.render_url().unwrap_or_default().to_owned(),
            caption: format!("{} {}", caption.caption, caption.hashtags.join(" "))
                .trim()
                .to_owned(),
            platforms: PLATFORMS.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn summary(&self, persona: Persona) -> String {
        match persona {
            Persona::Iggy => {
                let ideas = self.earlier::<RecordIdeasArgs>(catalog::RECORD_IDEAS);
                match ideas {
                    Some(ideas) => format!(
                        "Recorded {} ideas for \"{}\".",
                        ideas.ideas.len(),
                        ideas.title
                    ),
                    None => "I had no way to record ideas.".to_owned(),
                }
            }
            Persona::Riley => {
                let scenes = self
                    .earlier::<WriteScriptArgs>(catalog::WRITE_SCRIPT)
                    .map_or(0, |s| s.scenes.len());
                let jobs = self
                    .earlier::<SubmitClipJobsArgs>(catalog::SUBMIT_CLIP_JOBS)
                    .map_or(0, |s| s.clips.len());
                format!("Wrote {scenes} scenes and submitted {jobs} clip jobs.")
            }
            Persona::Alex => match self.earlier::<RenderVideoArgs>(catalog::RENDER_VIDEO) {
                Some(render) => format!(
                    "Submitted the render of \"{}\" from {} clips.",
                    render.title,
                    render.clip_urls.len()
                ),
                None => "I had no way to render the video.".to_owned(),
            },
            Persona::Quinn => match self.earlier::<PublishVideoArgs>(catalog::PUBLISH_VIDEO) {
                Some(publish) => format!(
                    "Submitted \"{}\" for publishing to {}.",
                    self.title(),
                    publish.platforms.join(" and ")
                ),
                None => "I had no way to publish the video.".to_owned(),
            },
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "a glass apple" → "Glass Apple": leading articles dropped, words capitalized.
fn title_case(topic: &str) -> String {
    let words: Vec<&str> = topic.split_whitespace().collect();
    let skip = usize::from(
        matches!(
            words.first().map(|w| w.to_ascii_lowercase()).as_deref(),
            Some("a" | "an" | "the")
        ) && words.len() > 1,
    );
    words[skip..]
        .iter()
        .map(|w| capitalize(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].trim_end().to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_drop_articles_and_capitalize() {
        assert_eq!(title_case("a glass apple"), "Glass Apple");
        assert_eq!(title_case("the"), "The");
        assert_eq!(title_case(""), "");
        assert_eq!(truncate("abcdef", 3), "abc");
    }
}
