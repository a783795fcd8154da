//! Fake tools for tests: every catalog tool, parsing its typed arguments
//! (so a brain that drifts from the catalog fails), answering with a
//! plausible result, and logging each call in one shared, ordered log.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::tools::catalog::{self, *};
use super::tools::{parse_args, Tool, ToolContext, ToolError, ToolRegistry, ToolSpec};

pub(crate) type Log = Arc<Mutex<Vec<(String, Value)>>>;
type Respond = Box<dyn Fn(usize, &Value) -> Result<Value, ToolError> + Send + Sync>;

pub(crate) struct FakeTool {
    name: &'static str,
    respond: Respond,
    calls: AtomicUsize,
    log: Log,
}

impl FakeTool {
    /// The tool answering like its real implementation would.
    pub fn ok(name: &'static str) -> Arc<Self> {
        Self::with(name, Box::new(move |_, args| plausible(name, args)))
    }

    /// The tool failing with `message` on calls for which `fails(n)` holds
    /// (n counts from 0).
    pub fn failing(
        name: &'static str,
        message: &'static str,
        fails: impl Fn(usize) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with(
            name,
            Box::new(move |n, args| {
                if fails(n) {
                    Err(ToolError::failed(message))
                } else {
                    plausible(name, args)
                }
            }),
        )
    }

    fn with(name: &'static str, respond: Respond) -> Arc<Self> {
        Arc::new(Self {
            name,
            respond,
            calls: AtomicUsize::new(0),
            log: Log::default(),
        })
    }
}

#[async_trait]
impl Tool for FakeTool {
    fn spec(&self) -> ToolSpec {
        catalog::spec(self.name)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        self.log
            .lock()
            .unwrap()
            .push((self.name.to_owned(), args.clone()));
        match catalog::entry(self.name).map(|e| e.audience) {
            Some(Audience::Graph) => drop(ctx.run_scope()?),
            _ => drop(ctx.chat_scope()?),
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        (self.respond)(n, &args)
    }
}

/// A registry of every catalog tool, all logging to one log.
pub(crate) struct Fakes {
    pub registry: ToolRegistry,
    pub log: Log,
}

impl Fakes {
    pub fn all() -> Self {
        let mut fakes = Self {
            registry: ToolRegistry::new(),
            log: Log::default(),
        };
        for entry in catalog::entries() {
            fakes = fakes.with(FakeTool::ok(entry.name));
        }
        fakes
    }

    /// Replaces the tool of that name, sharing the log.
    pub fn with(mut self, tool: Arc<FakeTool>) -> Self {
        let mut tool = Arc::into_inner(tool).expect("a fresh fake");
        tool.log = self.log.clone();
        self.registry.register(Arc::new(tool));
        self
    }

    pub fn calls(&self) -> Vec<(String, Value)> {
        self.log.lock().unwrap().clone()
    }

    pub fn names(&self) -> Vec<String> {
        self.calls().into_iter().map(|(name, _)| name).collect()
    }
}

fn plausible(name: &str, args: &Value) -> Result<Value, ToolError> {
    let args = args.clone();
    Ok(match name {
        RECORD_IDEAS => {
            parse_args::<RecordIdeasArgs>(args)?;
            json!({"recorded": true})
        }
        WRITE_SCRIPT => json!({"scenes": parse_args::<WriteScriptArgs>(args)?.scenes.len()}),
        SUBMIT_CLIP_JOBS => {
            let clips = parse_args::<SubmitClipJobsArgs>(args)?.clips;
            json!({"jobs": (0..clips.len()).map(|i| json!({"job_id": format!("job-{i}"), "index": i})).collect::<Vec<_>>()})
        }
        RENDER_VIDEO => {
            let render = parse_args::<RenderVideoArgs>(args)?;
            if render.clip_urls.is_empty() {
                return Err(ToolError::InvalidArguments(
                    "clip_urls is empty: there are no clips to render".into(),
                ));
            }
            json!({"render_id": "render-1"})
        }
        WRITE_CAPTION => {
            parse_args::<WriteCaptionArgs>(args)?;
            json!({"recorded": true})
        }
        PUBLISH_VIDEO => {
            let publish = parse_args::<PublishVideoArgs>(args)?;
            if publish.video_url.is_empty() {
                return Err(ToolError::InvalidArguments(
                    "video_url is empty: there is no rendered video to publish".into(),
                ));
            }
            json!({"publish_id": "pub-1", "platforms": publish.platforms})
        }
        LIST_MY_RUNS => {
            parse_args::<ListMyRunsArgs>(args)?;
            json!({"runs": [
                {"run_id": "0190a0a0-0000-7000-8000-000000000002", "job_code": "AIS-ABC123", "project": "aismr", "status": "awaiting_approval"},
                {"run_id": "0190a0a0-0000-7000-8000-000000000001", "job_code": "TVG-QXZ123", "project": "test-video-gen", "status": "published"}
            ]})
        }
        GET_RUN_STATUS => {
            let run = parse_args::<GetRunStatusArgs>(args)?.run;
            json!({"run_id": "0190a0a0-0000-7000-8000-000000000001", "job_code": run, "project": "test-video-gen", "status": "running", "current_step": "riley"})
        }
        START_RUN => {
            let start = parse_args::<StartRunArgs>(args)?;
            let code = if start.project == "aismr" {
                "AIS-ABC123"
            } else {
                "TVG-ABC123"
            };
            json!({"run_id": "0190a0a0-0000-7000-8000-00000000000a", "job_code": code, "project": start.project, "status": "pending"})
        }
        REQUEST_HITL_LINK => {
            let gate = parse_args::<GateArgs>(args)?;
            json!({"url": format!("http://127.0.0.1:8080/v1/hitl/approve/{}/{}?token=signed", gate.run, gate.gate), "run_id": gate.run, "gate": gate.gate})
        }
        APPROVE_HITL_GATE => {
            let gate = parse_args::<GateArgs>(args)?;
            json!({"run_id": "0190a0a0-0000-7000-8000-000000000002", "job_code": gate.run, "gate": gate.gate, "status": "running"})
        }
        other => return Err(ToolError::failed(format!("no fake for {other}"))),
    })
}
