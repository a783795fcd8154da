//! Run-tree spans: what a chat turn, a run, a persona step, a gate wait, an
//! LLM call or a tool call did, with inputs, outputs, error and timing.
//!
//! Ids follow OpenTelemetry: a 16-byte trace id and an 8-byte span id, both
//! hex. A run's trace id is its run id's 16 bytes, and its graph span id is
//! derived from the run id, so every process (chat, worker, callbacks) joins
//! the same trace and parents to the same root without a lookup.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{serde_via_str, ParseError, RunId};

/// A trace id: 16 bytes, shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// The trace of a run: the run id's bytes.
    pub fn of_run(run_id: RunId) -> Self {
        Self(*run_id.as_uuid().as_bytes())
    }

    /// A fresh trace (a chat turn that belongs to no run).
    pub fn random() -> Self {
        Self(*Uuid::now_v7().as_bytes())
    }

    /// The run whose trace this is, read back as a UUID (meaningful only for
    /// run traces).
    pub fn as_uuid(&self) -> Uuid {
        Uuid::from_bytes(self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for TraceId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| ParseError::new("trace id", s, "expected 32 hex digits"))?;
        Ok(Self(bytes))
    }
}

serde_via_str!(TraceId);

/// A span of another trace, as an OTLP span link names it: the chat turn
/// that started a run, linked from the run's graph span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// A span id: 8 bytes, shown as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

impl SpanId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// A span id every process derives alike from `key`: the first 8 bytes
    /// of its SHA-256.
    pub fn derived(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        Self(bytes)
    }

    /// The root span of a run (`<project>-graph`).
    pub fn graph(run_id: RunId) -> Self {
        Self::derived(&format!("graph:{run_id}"))
    }

    /// A persona step of a run; `attempt` tells repeated steps apart (the
    /// task token of the step).
    pub fn persona(run_id: RunId, persona: &str, attempt: &str) -> Self {
        Self::derived(&format!("persona:{run_id}:{persona}:{attempt}"))
    }

    /// A gate wait of a run.
    pub fn gate(run_id: RunId, gate: &str) -> Self {
        Self::derived(&format!("gate:{run_id}:{gate}"))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for SpanId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 8];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| ParseError::new("span id", s, "expected 16 hex digits"))?;
        Ok(Self(bytes))
    }
}

serde_via_str!(SpanId);

/// Where a span is: still running, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanStatus {
    Open,
    Ok,
    Error,
}

impl SpanStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for SpanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpanStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "ok" => Ok(Self::Ok),
            "error" => Ok(Self::Error),
            _ => Err(ParseError::new(
                "span status",
                s,
                "expected open, ok or error",
            )),
        }
    }
}

serde_via_str!(SpanStatus);

/// A span being opened. `run_id` is `None` for a chat turn that belongs to
/// no run (its trace id then stands alone).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub run_id: Option<RunId>,
    pub name: String,
    pub attributes: Map<String, Value>,
    pub input: Option<Value>,
    pub start_time: DateTime<Utc>,
}

impl NewSpan {
    /// A span of `run_id`'s trace, started now, with a random id.
    pub fn in_run(run_id: RunId, name: impl Into<String>) -> Self {
        Self {
            trace_id: TraceId::of_run(run_id),
            span_id: SpanId::random(),
            parent_span_id: None,
            run_id: Some(run_id),
            name: name.into(),
            attributes: Map::new(),
            input: None,
            start_time: Utc::now(),
        }
    }

    pub fn id(mut self, span_id: SpanId) -> Self {
        self.span_id = span_id;
        self
    }

    pub fn parent(mut self, parent: SpanId) -> Self {
        self.parent_span_id = Some(parent);
        self
    }

    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.to_owned(), value.into());
        self
    }

    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    pub fn started_at(mut self, at: DateTime<Utc>) -> Self {
        self.start_time = at;
        self
    }
}

/// How a span ended. `attributes` are added to the span's (token usage,
/// say); `end_time` defaults to when the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEnd {
    pub status: SpanStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub attributes: Map<String, Value>,
    pub end_time: DateTime<Utc>,
}

impl SpanEnd {
    pub fn ok(output: Option<Value>) -> Self {
        Self {
            status: SpanStatus::Ok,
            output,
            error: None,
            attributes: Map::new(),
            end_time: Utc::now(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            status: SpanStatus::Error,
            output: None,
            error: Some(message.into()),
            attributes: Map::new(),
            end_time: Utc::now(),
        }
    }

    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.to_owned(), value.into());
        self
    }

    pub fn ended_at(mut self, at: DateTime<Utc>) -> Self {
        self.end_time = at;
        self
    }
}

/// A span as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub run_id: Option<RunId>,
    pub name: String,
    pub status: SpanStatus,
    pub attributes: Map<String, Value>,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
}

impl Span {
    /// The span `new` describes, open.
    pub fn opened(new: NewSpan) -> Self {
        Self {
            trace_id: new.trace_id,
            span_id: new.span_id,
            parent_span_id: new.parent_span_id,
            run_id: new.run_id,
            name: new.name,
            status: SpanStatus::Open,
            attributes: new.attributes,
            input: new.input,
            output: None,
            error: None,
            start_time: new.start_time,
            end_time: None,
        }
    }

    /// This span closed as `end` says.
    pub fn closed(mut self, end: SpanEnd) -> Self {
        self.status = end.status;
        self.output = end.output;
        self.error = end.error;
        self.attributes.extend(end.attributes);
        self.end_time = Some(end.end_time.max(self.start_time));
        self
    }

    pub fn is_open(&self) -> bool {
        self.status == SpanStatus::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_derive_alike() {
        let run = RunId::new();
        let trace = TraceId::of_run(run);
        assert_eq!(trace.as_uuid(), run.as_uuid());
        assert_eq!(trace.to_string().len(), 32);
        assert_eq!(trace.to_string().parse::<TraceId>().unwrap(), trace);
        let graph = SpanId::graph(run);
        assert_eq!(graph, SpanId::graph(run));
        assert_ne!(graph, SpanId::graph(RunId::new()));
        assert_eq!(graph.to_string().len(), 16);
        assert_eq!(graph.to_string().parse::<SpanId>().unwrap(), graph);
        assert!("xyz".parse::<SpanId>().is_err());
        assert!("00".parse::<TraceId>().is_err());
    }
}
