//! kie.ai's Veo 3 wire format, as documented at docs.kie.ai (`veo3-api`:
//! "Generate Veo3.1 Video", "Get Veo3.1 Video Details", "Veo3.1 Video
//! Generation Callbacks"). Every answer is an envelope `{code, msg, data}`
//! sent with HTTP 200; `code` carries the real outcome.
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// `POST /api/v1/veo/generate`. Field names follow the current docs:
/// `aspect_ratio` in snake case, `callBackUrl` with a capital B. There is no
/// duration parameter: Veo 3 clips have a fixed length.
#[derive(Debug, Clone, Serialize)]
pub struct VeoGenerate<'a> {
    pub prompt: &'a str,
    /// `veo3` (quality) or `veo3_fast` (the documented default).
    pub model: &'a str,
    /// `16:9`, `9:16` or `Auto`.
    pub aspect_ratio: &'a str,
    #[serde(rename = "callBackUrl")]
    pub callback_url: &'a str,
    /// One image (the video unfolds around it) or two (first and last frame).
    #[serde(rename = "imageUrls", skip_serializing_if = "<[_]>::is_empty")]
    pub image_urls: &'a [&'a str],
    #[serde(rename = "generationType", skip_serializing_if = "Option::is_none")]
    pub generation_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<&'a str>,
    #[serde(rename = "enableTranslation", skip_serializing_if = "Option::is_none")]
    pub enable_translation: Option<bool>,
}

impl<'a> VeoGenerate<'a> {
    /// A text-to-video request with the documented defaults (`veo3_fast`,
    /// `16:9`); set the other fields as needed.
    pub fn new(prompt: &'a str, callback_url: &'a str) -> Self {
        Self {
            prompt,
            model: "veo3_fast",
            aspect_ratio: "16:9",
            callback_url,
            image_urls: &[],
            generation_type: None,
            seeds: None,
            watermark: None,
            enable_translation: None,
        }
    }
}

/// The `{code, msg, data}` envelope of every kie.ai answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub code: i64,
    #[serde(default)]
    pub msg: String,
    pub data: Option<T>,
}

/// `data` of a generate answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    #[serde(rename = "taskId")]
    pub task_id: String,
}

/// `data` of `GET /api/v1/veo/record-info?taskId=…`. The docs' example
/// writes the times as `"2025-06-06 10:30:00"`; real answers carry epoch
/// milliseconds, so they are kept as given. `errorMessage` is `""` in the
/// docs and `null` in real answers; the URL lists may be `null` or absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordInfo {
    pub task_id: String,
    #[serde(default)]
    pub param_json: Option<String>,
    /// Epoch milliseconds (real answers) or `YYYY-MM-DD hh:mm:ss` (the docs).
    #[serde(default)]
    pub complete_time: Option<Value>,
    #[serde(default)]
    pub response: Option<RecordResponse>,
    /// 0 generating, 1 success, 2 failed, 3 generation failed.
    pub success_flag: i64,
    /// `null` or an HTTP-like code such as 400, 422, 500 or 501.
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub error_message: Option<String>,
    /// Like `complete_time`.
    #[serde(default)]
    pub create_time: Option<Value>,
    #[serde(default)]
    pub fallback_flag: Option<bool>,
}

/// The result part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordResponse {
    pub task_id: String,
    #[serde(default, deserialize_with = "urls")]
    pub result_urls: Vec<String>,
    /// Only set when the aspect ratio is not 16:9; `null` otherwise.
    #[serde(default, deserialize_with = "urls")]
    pub origin_urls: Vec<String>,
    #[serde(default)]
    pub resolution: Option<String>,
}

/// The body kie.ai POSTs to `callBackUrl` when a task ends: `code` 200 on
/// success; 400, 422, 500 or 501 with the reason in `msg` on failure.
pub type Callback = Envelope<CallbackData>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackData {
    /// The docs spell it `taskId`; their signature example reads `task_id`.
    #[serde(alias = "task_id")]
    pub task_id: String,
    /// The request echoed as JSON text (current docs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<CallbackInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_flag: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackInfo {
    #[serde(default, deserialize_with = "urls")]
    pub result_urls: Vec<String>,
    /// Absent from a fallback model's result.
    #[serde(default, deserialize_with = "urls")]
    pub origin_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// A list of URLs as kie.ai sends one: an array (the callback page), `null`
/// (real record-info answers), or a string — `"[http://…]"` in the generate
/// page's callback schema, or a JSON-encoded array.
fn urls<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Urls>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Urls::List(urls)) => urls,
        Some(Urls::Text(text)) => {
            let text = text.trim();
            if let Ok(urls) = serde_json::from_str::<Vec<String>>(text) {
                urls
            } else {
                text.trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(|url| url.trim().trim_matches('"').to_owned())
                    .filter(|url| !url.is_empty())
                    .collect()
            }
        }
    })
}

/// The callback headers of kie.ai's webhook HMAC scheme.
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

/// The signature kie.ai sends for `task_id` at `timestamp` (unix seconds):
/// base64 of HMAC-SHA256 over `task_id.timestamp`.
pub fn sign(secret: &SecretString, task_id: &str, timestamp: i64) -> String {
    let mac = signature_mac(secret, task_id, &timestamp.to_string());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The MAC `sign` encodes, to check a received signature in constant time.
pub fn signature_mac(secret: &SecretString, task_id: &str, timestamp: &str) -> Hmac<Sha256> {
    super::super::signature::dotted_hmac(secret, task_id.as_bytes(), timestamp.as_bytes())
}
