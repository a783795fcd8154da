//! Shotstack's Edit and Serve API wire format, from Shotstack's OpenAPI
//! definition (`shotstack/oas-api-definition`: `schemas/edit.yaml`,
//! `clip.yaml`, `output.yaml`, `responses/queuedresponse.yaml`,
//! `renderresponsedata.yaml`, `assetrenderresponse.yaml`) and the guides
//! (shotstack.io/docs/guide/architecting-an-application/webhooks,
//! serving-assets/polling-vs-webhook and serve-api). The answers and
//! callbacks as documented are the fixtures under
//! `shared/fixtures/providers/shotstack/`, which the client and the mock are
//! tested against.
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /edit/{stage}/render`: an Edit — a timeline, an output and the callback.
#[derive(Debug, Clone, Serialize)]
pub struct RenderRequest<'a> {
    pub timeline: Timeline<'a>,
    pub output: Output<'a>,
    /// Shotstack POSTs here when the render ends, then again when the file
    /// has been copied to its hosting (the `serve` destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<&'a str>,
    pub tracks: Vec<Track<'a>>,
}

impl<'a> Timeline<'a> {
    /// One track that plays the clips back to back: each clip starts where
    /// the previous one ended.
    pub fn sequence(clips: &[ClipSource<'a>]) -> Self {
        let mut start = 0.0;
        let clips = clips
            .iter()
            .map(|source| {
                let clip = Clip {
                    asset: Asset::Video {
                        src: source.url,
                        trim: None,
                        volume: None,
                    },
                    start,
                    length: source.length,
                    fit: None,
                };
                start += source.length;
                clip
            })
            .collect();
        Self {
            background: None,
            tracks: vec![Track { clips }],
        }
    }
}

/// A video to place on the timeline and how many seconds of it to play.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSource<'a> {
    pub url: &'a str,
    pub length: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Track<'a> {
    pub clips: Vec<Clip<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Clip<'a> {
    pub asset: Asset<'a>,
    /// Seconds from the start of the timeline.
    pub start: f64,
    /// Seconds the clip plays for.
    pub length: f64,
    /// `crop` (Shotstack's default), `cover`, `contain` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Asset<'a> {
    Video {
        src: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        trim: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        volume: Option<f64>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Output<'a> {
    /// `mp4` for video.
    pub format: &'a str,
    /// `preview`, `mobile`, `sd`, `hd` or `1080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<&'a str>,
    /// `16:9` (Shotstack's default), `9:16`, `1:1`, `4:5` or `4:3`.
    #[serde(rename = "aspectRatio", skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

impl<'a> Output<'a> {
    /// An mp4 at the given resolution and aspect ratio.
    pub fn mp4(resolution: &'a str, aspect_ratio: &'a str) -> Self {
        Self {
            format: "mp4",
            resolution: Some(resolution),
            aspect_ratio: Some(aspect_ratio),
            fps: None,
        }
    }
}

/// Every Shotstack answer: `{success, message, response}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub message: String,
    pub response: T,
}

/// `response` of a queued render (HTTP 201).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub message: String,
    pub id: String,
}

/// `response` of `GET /edit/{stage}/render/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderData {
    pub id: String,
    pub owner: String,
    #[serde(default)]
    pub plan: Option<String>,
    pub status: RenderState,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub render_time: Option<f64>,
    /// Only when `done`; a temporary URL (24 h), the CDN copy is the lasting one.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub poster: Option<String>,
    #[serde(default)]
    pub thumbnail: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    /// The edit as submitted (timeline, output, callback), when asked for
    /// with `data=true`.
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub updated: Option<String>,
}

/// A render's status, in Shotstack's order. The list has grown before
/// (`preprocessing` is new in the 2026 definition): a status this client does
/// not know is `Other`, read as still in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderState {
    Queued,
    Fetching,
    Preprocessing,
    Rendering,
    Saving,
    Done,
    Failed,
    #[serde(other)]
    Other,
}

/// `GET /serve/{stage}/assets/render/{id}`: a json:api list of the render's
/// hosted assets (up to three: video, thumbnail, poster).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetList {
    #[serde(default)]
    pub data: Vec<AssetItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetItem {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub attributes: AssetAttributes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetAttributes {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub render_id: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    pub status: AssetState,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
}

/// A hosted asset's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetState {
    Importing,
    Ready,
    Failed,
    Deleted,
    #[serde(other)]
    Other,
}

/// The unsigned callback body: `type` `edit` with `action` `render` when the
/// render ends (`status` `done` or `failed`, `id` the render); `type` `serve`
/// with `action` `copy` when the file reached the CDN (`status` `ready` or
/// `failed`, `id` the asset, `render` the render).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<String>,
    #[serde(default)]
    pub owner: String,
    pub status: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub completed: Option<String>,
}

/// The header Shotstack authenticates API calls with.
pub const API_KEY_HEADER: &str = "x-api-key";
