//! Every tool MyloWare knows: its name, what it is for, its argument schema
//! (derived from its `*Args` type, see `schema`), and who may be given it. Specs are checked against this list at load, the
//! scripted brain builds its calls from the typed arguments here, and tool
//! implementations parse into the same types, so the three cannot drift.
//!
//! Results are JSON objects chosen by each implementation; the fields listed
//! under each tool are the ones the scripted brain and the run summary read.
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{schema, ToolSpec};

/// Who a tool is for: the graph's personas, or Brendan in chat. A persona
/// holding a chat tool could start runs from inside a run, so specs may not
/// mix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Graph,
    Chat,
}

/// One catalog entry.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub audience: Audience,
    pub description: &'static str,
    parameters: fn() -> Value,
}

impl Entry {
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            parameters: (self.parameters)(),
        }
    }
}

pub const RECORD_IDEAS: &str = "record_ideas";
pub const WRITE_SCRIPT: &str = "write_script";
pub const SUBMIT_CLIP_JOBS: &str = "submit_clip_jobs";
pub const RENDER_VIDEO: &str = "render_video";
pub const WRITE_CAPTION: &str = "write_caption";
pub const PUBLISH_VIDEO: &str = "publish_video";
pub const LIST_MY_RUNS: &str = "list_my_runs";
pub const GET_RUN_STATUS: &str = "get_run_status";
pub const START_RUN: &str = "start_run";
pub const REQUEST_HITL_LINK: &str = "request_hitl_link";
pub const APPROVE_HITL_GATE: &str = "approve_hitl_gate";

/// The aspect ratios both the clip and the render providers accept.
pub const ASPECT_RATIOS: &[&str] = &["9:16", "16:9", "1:1"];

/// Longest clip a generation job may ask for, in seconds.
pub const MAX_CLIP_SECONDS: u32 = 60;

/// The platforms `publish_video` publishes to.
pub const PLATFORMS: &[&str] = &["tiktok", "instagram", "youtube"];

/// Longest caption, in characters (the platforms' own limit).
pub const MAX_CAPTION_CHARS: u32 = 2200;

fn aspect_ratio(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ASPECT_RATIOS})
}

fn platforms(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "enum": PLATFORMS}
    })
}

static ENTRIES: &[Entry] = &[
    Entry {
        name: RECORD_IDEAS,
        audience: Audience::Graph,
        description: "Record the video concept: a working title, a few distinct ideas and the opening hook. Result: {recorded: true}.",
        parameters: schema::of::<RecordIdeasArgs>,
    },
    Entry {
        name: WRITE_SCRIPT,
        audience: Audience::Graph,
        description: "Record the shot list: one scene per clip, each with a visual generation prompt and its length. Result: {scenes: n}.",
        parameters: schema::of::<WriteScriptArgs>,
    },
    Entry {
        name: SUBMIT_CLIP_JOBS,
        audience: Audience::Graph,
        description: "Submit one video generation job per clip (kie.ai). Clips arrive later by webhook. Result: {jobs: [{job_id, index}]}.",
        parameters: schema::of::<SubmitClipJobsArgs>,
    },
    Entry {
        name: RENDER_VIDEO,
        audience: Audience::Graph,
        description: "Render the final video from the clips, in order (Shotstack). The render URL arrives later by webhook. Result: {render_id}.",
        parameters: schema::of::<RenderVideoArgs>,
    },
    Entry {
        name: WRITE_CAPTION,
        audience: Audience::Graph,
        description: "Record the post caption and its hashtags. Result: {recorded: true}.",
        parameters: schema::of::<WriteCaptionArgs>,
    },
    Entry {
        name: PUBLISH_VIDEO,
        audience: Audience::Graph,
        description: "Publish the rendered video with its caption to social platforms (upload-post). Result: {publish_id, platforms}.",
        parameters: schema::of::<PublishVideoArgs>,
    },
    Entry {
        name: LIST_MY_RUNS,
        audience: Audience::Chat,
        description: "List the user's most recent runs, newest first. Result: {runs: [{run_id, job_code, project, status, created_at}]}.",
        parameters: schema::of::<ListMyRunsArgs>,
    },
    Entry {
        name: GET_RUN_STATUS,
        audience: Audience::Chat,
        description: "Get one run's status. Result: {run_id, job_code, project, status, current_step?, error?}.",
        parameters: schema::of::<GetRunStatusArgs>,
    },
    Entry {
        name: START_RUN,
        audience: Audience::Chat,
        description: "Start a video production run for a project. Result: {run_id, job_code, project, status}.",
        parameters: schema::of::<StartRunArgs>,
    },
    Entry {
        name: REQUEST_HITL_LINK,
        audience: Audience::Chat,
        description: "Get a signed approval link for a run's gate. Result: {url, expires_at, run_id, gate, review: what the gate asks to approve (title, ideas, hook, clips, render_url, next personas)}.",
        parameters: schema::of::<GateArgs>,
    },
    Entry {
        name: APPROVE_HITL_GATE,
        audience: Audience::Chat,
        description: "Approve a run's waiting gate so the run continues. Result: {run_id, job_code?, gate, status}.",
        parameters: schema::of::<GateArgs>,
    },
];

/// Every entry, graph tools first.
pub fn entries() -> &'static [Entry] {
    ENTRIES
}

pub fn entry(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|entry| entry.name == name)
}

/// The specs of the catalog's tools, built once per process: every persona
/// task registers its tools and hands their specs to the model.
fn specs() -> &'static [ToolSpec] {
    static SPECS: OnceLock<Vec<ToolSpec>> = OnceLock::new();
    SPECS.get_or_init(|| ENTRIES.iter().map(Entry::spec).collect())
}

/// The spec of a catalog tool; panics on an unknown name, which is a typo in
/// code (implementations pass the constants above).
pub fn spec(name: &str) -> ToolSpec {
    specs()
        .iter()
        .find(|spec| spec.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name:?} is not in the tool catalog"))
}

/// The argument schema of the catalog tool `name`, the one its calls are
/// checked against.
pub fn parameters(name: &str) -> Option<&'static Value> {
    specs()
        .iter()
        .find(|spec| spec.name == name)
        .map(|spec| &spec.parameters)
}

/// `record_ideas` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordIdeasArgs {
    /// Working title of the video
    #[schemars(length(min = 1))]
    pub title: String,
    /// Distinct ideas, best first
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub ideas: Vec<String>,
    /// What the viewer sees and hears in the first second
    #[schemars(length(min = 1))]
    pub hook: String,
}

/// `write_script` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriteScriptArgs {
    #[schemars(length(min = 1))]
    pub scenes: Vec<Scene>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Scene {
    #[schemars(length(min = 1))]
    pub prompt: String,
    #[schemars(range(min = 1, max = MAX_CLIP_SECONDS))]
    pub duration_seconds: u32,
}

/// `submit_clip_jobs` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitClipJobsArgs {
    #[schemars(length(min = 1))]
    pub clips: Vec<ClipRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClipRequest {
    #[schemars(length(min = 1))]
    pub prompt: String,
    #[schemars(range(min = 1, max = MAX_CLIP_SECONDS))]
    pub duration_seconds: u32,
    #[schemars(schema_with = "aspect_ratio")]
    pub aspect_ratio: String,
}

/// `render_video` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RenderVideoArgs {
    #[schemars(length(min = 1))]
    pub title: String,
    #[schemars(length(min = 1), inner(url))]
    pub clip_urls: Vec<String>,
    #[schemars(schema_with = "aspect_ratio")]
    pub aspect_ratio: String,
}

/// `write_caption` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriteCaptionArgs {
    #[schemars(length(min = 1, max = MAX_CAPTION_CHARS))]
    pub caption: String,
    #[schemars(inner(pattern(r"^#\w+$")))]
    pub hashtags: Vec<String>,
}

/// `publish_video` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PublishVideoArgs {
    #[schemars(url)]
    pub video_url: String,
    #[schemars(length(min = 1))]
    pub caption: String,
    #[schemars(schema_with = "platforms")]
    pub platforms: Vec<String>,
}

/// `list_my_runs` arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListMyRunsArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

/// `get_run_status` arguments: `run` is a run id or a job code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GetRunStatusArgs {
    /// Run id (UUID) or job code such as TVG-QXZ123
    pub run: String,
}

/// `start_run` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartRunArgs {
    /// Project name, e.g. test-video-gen or aismr
    pub project: String,
    /// What the video is about; the project's default when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `request_hitl_link` and `approve_hitl_gate` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateArgs {
    /// Run id or job code
    pub run: String,
    /// Gate name, e.g. ideate or prepublish
    pub gate: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_entry_has_an_object_schema_naming_real_properties() {
        let mut names = std::collections::HashSet::new();
        for entry in entries() {
            assert!(names.insert(entry.name), "{} listed twice", entry.name);
            let spec = entry.spec();
            assert_eq!(spec.parameters["type"], "object", "{}", entry.name);
            let properties = spec.parameters["properties"].as_object().unwrap();
            for required in spec.parameters["required"].as_array().unwrap() {
                assert!(
                    properties.contains_key(required.as_str().unwrap()),
                    "{}: {required} is required but not a property",
                    entry.name
                );
            }
        }
        assert_eq!(names.len(), 11);
        assert_eq!(spec(PUBLISH_VIDEO).name, "publish_video");
        assert!(entry("make_coffee").is_none());
    }

    #[test]
    fn typed_arguments_match_their_schemas() {
        let args = serde_json::to_value(SubmitClipJobsArgs {
            clips: vec![ClipRequest {
                prompt: "p".into(),
                duration_seconds: 8,
                aspect_ratio: "9:16".into(),
            }],
        })
        .unwrap();
        let schema = spec(SUBMIT_CLIP_JOBS).parameters;
        let item = &schema["properties"]["clips"]["items"]["properties"];
        for key in args["clips"][0].as_object().unwrap().keys() {
            assert!(item.get(key).is_some(), "{key} not in schema");
        }
        let start = serde_json::to_value(StartRunArgs {
            project: "aismr".into(),
            message: None,
        })
        .unwrap();
        assert_eq!(start, json!({"project": "aismr"}));
    }
}
