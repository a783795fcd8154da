//! The tools behind the personas and Brendan: what a model's tool call does
//! to the world. Persona tools write artifacts and submit provider jobs (each
//! job registered with the persona's task token, so its callback can complete
//! the task); they are idempotent, so a task delivered twice, or re-run after
//! a crash, does not submit the same work twice. Brendan's tools call the
//! pipeline core like the API does.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{json, Value};

use super::{intents, Pipeline};
use crate::domain::{
    Artifact, ArtifactType, HitlDecision, JobStatus, NewArtifact, NewProviderJob, Provider,
};
use crate::personas::tools::catalog::{self, *};
use crate::personas::tools::{
    parse_args, RunScope, Tool, ToolContext, ToolError, ToolRegistry, ToolSpec,
};
use crate::personas::ProjectSpec;
use crate::pipeline::NewRunRequest;
use crate::providers::kieai::VeoGenerate;
use crate::providers::shotstack::wire::{ClipSource, Output, RenderRequest, Timeline};
use crate::providers::upload_post::Upload;
use crate::store::{RunFilter, StoreError};

/// The upload-post profile runs publish under.
pub const UPLOAD_POST_USER: &str = "myloware";

impl Pipeline {
    /// The six persona tools, bound to this pipeline.
    pub fn persona_tools(&self) -> ToolRegistry {
        let p = self.clone();
        ToolRegistry::new()
            .with(Arc::new(ArtifactTool {
                pipeline: p.clone(),
                name: RECORD_IDEAS,
                artifact: ArtifactType::IDEAS_LIST,
            }))
            .with(Arc::new(ArtifactTool {
                pipeline: p.clone(),
                name: WRITE_SCRIPT,
                artifact: ArtifactType::SCRIPT_TEXT,
            }))
            .with(Arc::new(ArtifactTool {
                pipeline: p.clone(),
                name: WRITE_CAPTION,
                artifact: ArtifactType::CAPTION_TEXT,
            }))
            .with(Arc::new(SubmitClipJobs(p.clone())))
            .with(Arc::new(RenderVideo(p.clone())))
            .with(Arc::new(PublishVideo(p)))
    }

    /// Brendan's five tools, bound to this pipeline.
    pub fn brendan_tools(&self) -> ToolRegistry {
        let p = self.clone();
        ToolRegistry::new()
            .with(Arc::new(ListMyRuns(p.clone())))
            .with(Arc::new(GetRunStatus(p.clone())))
            .with(Arc::new(StartRun(p.clone())))
            .with(Arc::new(RequestHitlLink(p.clone())))
            .with(Arc::new(ApproveHitlGate(p)))
    }

    fn webhook_url(&self, provider: Provider) -> String {
        format!(
            "{}/v1/webhooks/{provider}",
            self.settings.webhook_base_url.trim_end_matches('/')
        )
    }

    /// This run's artifacts of `artifact_type` written by the scope's persona.
    async fn mine(
        &self,
        scope: &RunScope,
        artifact_type: &str,
    ) -> Result<Vec<Artifact>, ToolError> {
        Ok(self
            .store
            .list_artifacts_of(scope.run_id, &[artifact_type])
            .await
            .map_err(|e| ToolError::caused_by("reading the run's artifacts", e))?
            .into_iter()
            .filter(|a| a.persona == Some(scope.persona))
            .collect())
    }

    async fn append(&self, artifact: NewArtifact) -> Result<Artifact, ToolError> {
        self.store
            .append_artifact(artifact)
            .await
            .map_err(|e| ToolError::caused_by("recording an artifact", e))
    }

    /// When a job registered now is first due for the reconciler: a callback
    /// not here by then is overdue, and the provider is asked from then on.
    pub(super) fn first_check_at(&self) -> chrono::DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.settings.reconcile.after)
                .unwrap_or(chrono::Duration::minutes(2))
    }

    /// Registers a job the provider accepted, with the task to complete.
    pub(super) async fn register(
        &self,
        scope: &RunScope,
        provider: Provider,
        job_id: &str,
    ) -> Result<(), ToolError> {
        let job = NewProviderJob {
            provider,
            job_id: job_id.to_owned(),
            run_id: scope.run_id,
            persona: scope.persona,
            task_token: scope.task_token.clone(),
            check_at: self.first_check_at(),
        };
        match self.store.register_provider_job(job).await {
            Ok(_) => {}
            Err(StoreError::Duplicate { .. }) => return Ok(()),
            Err(e) => {
                return Err(ToolError::caused_by(
                    format!("registering {provider} job {job_id}"),
                    e,
                ))
            }
        }
        self.adopt_orphans(provider, job_id).await;
        Ok(())
    }

    /// Callbacks that came before their job was registered, and were kept
    /// as orphans, are handed to the callbacks consumer now that it is. A
    /// failure here is only logged: the reconciler asks the provider about
    /// the job when its callback is overdue anyway.
    async fn adopt_orphans(&self, provider: Provider, job_id: &str) {
        let adopted = match self
            .store
            .adopt_orphaned_webhook_events(provider, job_id)
            .await
        {
            Ok(adopted) => adopted,
            Err(e) => {
                tracing::warn!(%provider, provider_job_id = job_id, error = %e, "could not look for the job's orphaned callbacks");
                return;
            }
        };
        for event in adopted {
            let Ok(Some(callback)) = crate::webhooks::stored_callback(&event) else {
                continue;
            };
            tracing::info!(%provider, provider_job_id = job_id, event_id = %event.id, "an orphaned callback found its job");
            let message = super::callbacks::CallbackMessage::new(event.id, callback);
            if let Err(e) = self.hand_over_callback(&message).await {
                tracing::warn!(%provider, provider_job_id = job_id, error = %e, "could not hand over an adopted callback");
            }
        }
    }
}

fn failed(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> ToolError {
    ToolError::caused_by(what, e)
}

/// A tool whose whole effect is one artifact holding its arguments.
struct ArtifactTool {
    pipeline: Pipeline,
    name: &'static str,
    artifact: ArtifactType,
}

#[async_trait]
impl Tool for ArtifactTool {
    fn spec(&self) -> ToolSpec {
        catalog::spec(self.name)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let scope = ctx.run_scope()?;
        // Check the arguments against the catalog's shape before recording.
        match self.name {
            RECORD_IDEAS => drop(parse_args::<RecordIdeasArgs>(args.clone())?),
            WRITE_SCRIPT => drop(parse_args::<WriteScriptArgs>(args.clone())?),
            WRITE_CAPTION => drop(parse_args::<WriteCaptionArgs>(args.clone())?),
            _ => {}
        }
        if let Some(existing) = self
            .pipeline
            .mine(scope, self.artifact.as_str())
            .await?
            .pop()
        {
            return Ok(json!({ "recorded": true, "artifact_id": existing.id, "again": true }));
        }
        let artifact =
            NewArtifact::new(scope.run_id, self.artifact.clone(), args).persona(scope.persona);
        let stored = self.pipeline.append(artifact).await?;
        Ok(json!({ "recorded": true, "artifact_id": stored.id }))
    }
}

/// Riley: one kie.ai Veo job per clip.
struct SubmitClipJobs(Pipeline);

#[async_trait]
impl Tool for SubmitClipJobs {
    fn spec(&self) -> ToolSpec {
        catalog::spec(SUBMIT_CLIP_JOBS)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let scope = ctx.run_scope()?;
        let args: SubmitClipJobsArgs = parse_args(args)?;
        if args.clips.is_empty() {
            return Err(ToolError::InvalidArguments("no clips to generate".into()));
        }
        let p = &self.0;
        // What earlier tries submitted is not submitted again: recorded
        // clips are registered again (a no-op once registered: a process
        // that stopped between the record and the registration left it), and
        // clips in doubt are left to their callback or the reconciler
        // (`pipeline::intents`).
        let pending = p.pending_submissions(scope, Provider::KieAi).await?;
        let mut task_ids = Vec::new();
        let mut items = Vec::new();
        for (index, clip) in (0u64..).zip(&args.clips) {
            if let Some(done) = pending.record(index) {
                if let Some(task_id) = done.metadata["task_id"].as_str() {
                    p.register(scope, Provider::KieAi, task_id).await?;
                }
                task_ids.push(done.metadata["task_id"].clone());
            } else if !pending.in_doubt.contains(&index) {
                items.push(json!({ "index": index, "prompt": clip.prompt,
                    "aspect_ratio": clip.aspect_ratio, "duration_seconds": clip.duration_seconds }));
            }
        }
        let mut unavailable = Vec::new();
        let mut in_doubt = pending.in_doubt.len();
        if !items.is_empty() {
            let intent = p
                .begin_intent(scope, Provider::KieAi, items.clone())
                .await?;
            for item in &items {
                match p.submit_clip(scope, &intent, item).await {
                    Ok(task_id) => task_ids.push(Value::from(task_id)),
                    // Sent and unanswered, or accepted and not recorded: its
                    // callback or the reconciler settles it, the intent
                    // staying open meanwhile.
                    Err(error) if error.may_have_been_accepted() => {
                        tracing::warn!(run_id = %scope.run_id, error = %error,
                            "a clip submission in doubt until kie.ai calls back");
                        in_doubt += 1;
                    }
                    // The other clips are still submitted: the step's retry
                    // then owes only the ones that failed.
                    Err(error) if error.is_transient() => unavailable.push(error),
                    Err(error) => {
                        p.end_intent(Provider::KieAi, &intent).await?;
                        return Err(error);
                    }
                }
            }
            if in_doubt == pending.in_doubt.len() {
                p.end_intent(Provider::KieAi, &intent).await?;
            }
        }
        if let Some(first) = unavailable.first() {
            return Err(ToolError::Transient {
                message: format!(
                    "{} of {} clips not submitted for now; {first}",
                    unavailable.len(),
                    args.clips.len()
                ),
                source: None,
            });
        }
        Ok(
            json!({ "submitted": task_ids.len(), "task_ids": task_ids, "in_doubt": in_doubt,
                   "status": "generating; results arrive by callback" }),
        )
    }
}

impl Pipeline {
    /// Submits one clip of an intent to kie.ai, then records and registers
    /// it. `item` is the intent's: `index`, `prompt`, `aspect_ratio`.
    pub(super) async fn submit_clip(
        &self,
        scope: &RunScope,
        intent: &str,
        item: &Value,
    ) -> Result<String, ToolError> {
        let index = item["index"].as_u64().unwrap_or_default();
        let callback = intents::callback_url(&self.webhook_url(Provider::KieAi), intent, index);
        let mut request = VeoGenerate::new(item["prompt"].as_str().unwrap_or_default(), &callback);
        if let Some(aspect_ratio) = item["aspect_ratio"].as_str() {
            request.aspect_ratio = aspect_ratio;
        }
        let task_id = self.providers.kieai.generate(&request).await.map_err(|e| {
            ToolError::provider(format_args!("kie.ai refused clip {}", index + 1), e)
        })?;
        // The record first, the one a re-run step looks for: what kie.ai
        // accepted is never submitted again once it is written.
        let record = intents::submitted_record(Provider::KieAi, item, &task_id, intent, &callback);
        self.record_submitted(scope, Provider::KieAi, record, &task_id)
            .await
            .map_err(|e| {
                ToolError::accepted_unrecorded(format!("kie.ai accepted clip {task_id}"), e)
            })?;
        tracing::info!(run_id = %scope.run_id, persona = %scope.persona, provider = "kieai",
            provider_job_id = %task_id, "clip job submitted");
        Ok(task_id)
    }

    /// Submits an intent's render to Shotstack, then records and registers
    /// it. `item` is the intent's: `title`, `clip_urls`, `aspect_ratio`,
    /// `length` (of each clip, in seconds).
    pub(super) async fn submit_render(
        &self,
        scope: &RunScope,
        intent: &str,
        item: &Value,
    ) -> Result<String, ToolError> {
        let length = item["length"].as_f64().unwrap_or(8.0);
        let urls: Vec<&str> = item["clip_urls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let sources: Vec<ClipSource<'_>> =
            urls.iter().map(|url| ClipSource { url, length }).collect();
        // Shotstack signs nothing: the URL carries a token for this run.
        let callback = intents::callback_url(
            &format!(
                "{}?run={}&token={}",
                self.webhook_url(Provider::Shotstack),
                scope.run_id,
                self.hitl
                    .callback_token(Provider::Shotstack.as_str(), scope.run_id)
            ),
            intent,
            item["index"].as_u64().unwrap_or_default(),
        );
        let request = RenderRequest {
            timeline: Timeline::sequence(&sources),
            output: Output::mp4("hd", item["aspect_ratio"].as_str().unwrap_or("16:9")),
            callback: Some(&callback),
        };
        let render_id = self
            .providers
            .shotstack
            .render(&request)
            .await
            .map_err(|e| ToolError::provider("Shotstack refused the render", e))?;
        let mut record =
            intents::submitted_record(Provider::Shotstack, item, &render_id, intent, &callback);
        record["clips"] = Value::from(urls.len());
        record["timeline"] = serde_json::to_value(&request.timeline).unwrap_or(Value::Null);
        self.record_submitted(scope, Provider::Shotstack, record, &render_id)
            .await
            .map_err(|e| {
                ToolError::accepted_unrecorded(format!("Shotstack accepted render {render_id}"), e)
            })?;
        tracing::info!(run_id = %scope.run_id, persona = %scope.persona, provider = "shotstack",
            provider_job_id = %render_id, "render submitted");
        Ok(render_id)
    }
}

/// Alex: one Shotstack render of the clips back to back.
struct RenderVideo(Pipeline);

#[async_trait]
impl Tool for RenderVideo {
    fn spec(&self) -> ToolSpec {
        catalog::spec(RENDER_VIDEO)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let scope = ctx.run_scope()?;
        let args: RenderVideoArgs = parse_args(args)?;
        if args.clip_urls.is_empty() {
            return Err(ToolError::InvalidArguments("no clip URLs to render".into()));
        }
        let p = &self.0;
        let pending = p.pending_submissions(scope, Provider::Shotstack).await?;
        if let Some(done) = pending.record(0) {
            if let Some(render_id) = done.metadata["render_id"].as_str() {
                p.register(scope, Provider::Shotstack, render_id).await?;
            }
            return Ok(json!({ "render_id": done.metadata["render_id"], "again": true }));
        }
        if !pending.in_doubt.is_empty() {
            return Ok(json!({ "render_id": null, "in_doubt": true,
                "status": "a render submitted before a restart: waiting for Shotstack's callback" }));
        }
        let length = ProjectSpec::load(scope.project.as_str())
            .map(|spec| f64::from(spec.clips.duration_seconds))
            .unwrap_or(8.0);
        let item = json!({ "index": 0, "title": args.title, "clip_urls": args.clip_urls,
                           "aspect_ratio": args.aspect_ratio, "length": length });
        let intent = p
            .begin_intent(scope, Provider::Shotstack, vec![item.clone()])
            .await?;
        let render_id = match p.submit_render(scope, &intent, &item).await {
            // Sent and unanswered, or accepted and not recorded: its callback
            // or the reconciler settles it.
            Err(error) if error.may_have_been_accepted() => {
                tracing::warn!(run_id = %scope.run_id, error = %error,
                    "the render submission in doubt until Shotstack calls back");
                return Ok(json!({ "render_id": null, "in_doubt": true,
                    "status": "submitted, unanswered: waiting for Shotstack's callback" }));
            }
            submitted => {
                p.end_intent(Provider::Shotstack, &intent).await?;
                submitted?
            }
        };
        Ok(json!({ "render_id": render_id, "status": "rendering; the result arrives by callback" }))
    }
}

/// Quinn: one upload-post upload to the platforms.
struct PublishVideo(Pipeline);

#[async_trait]
impl Tool for PublishVideo {
    fn spec(&self) -> ToolSpec {
        catalog::spec(PUBLISH_VIDEO)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let scope = ctx.run_scope()?;
        let args: PublishVideoArgs = parse_args(args)?;
        if args.platforms.is_empty() {
            return Err(ToolError::InvalidArguments(
                "no platforms to publish to".into(),
            ));
        }
        let p = &self.0;
        // An upload upload-post failed is not reused: a redriven Quinn sends
        // it again under a new name (the old one answers the failed job).
        let failed_jobs: Vec<String> = p
            .store
            .list_provider_jobs(scope.run_id)
            .await
            .map_err(|e| ToolError::caused_by("reading the run's jobs", e))?
            .into_iter()
            .filter(|j| j.provider == Provider::UploadPost && j.status == JobStatus::Failed)
            .map(|j| j.job_id)
            .collect();
        let (spent, requests): (Vec<Artifact>, Vec<Artifact>) = p
            .mine(scope, ArtifactType::PUBLISH_REQUEST.as_str())
            .await?
            .into_iter()
            .partition(|r| {
                r.metadata["job_id"]
                    .as_str()
                    .is_some_and(|id| failed_jobs.iter().any(|f| f == id))
            });
        let spent: Vec<&Value> = spent.iter().map(|r| &r.metadata["request_id"]).collect();
        if let Some(done) = requests.last() {
            // Registered again (a no-op once registered): a process that
            // stopped between the two writes left the request alone.
            if let Some(job_id) = done.metadata["job_id"].as_str() {
                p.register(scope, Provider::UploadPost, job_id).await?;
            }
            return Ok(json!({ "job_id": done.metadata["job_id"], "again": true }));
        }
        // The upload is named before it is sent, and the name kept: sent
        // again after a lost answer or a crash, the same `request_id` (also
        // the idempotency key) makes upload-post return the job it made
        // instead of publishing twice.
        let request_id = match p
            .mine(scope, ArtifactType::PUBLISH_INTENT.as_str())
            .await?
            .pop()
            .filter(|intent| !spent.contains(&&intent.metadata["request_id"]))
        {
            Some(intent) => intent.metadata["request_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ToolError::failed("a publish intent without its request id"))?,
            None => {
                let request_id = format!("mw-{}", uuid::Uuid::new_v4().simple());
                p.append(
                    NewArtifact::new(
                        scope.run_id,
                        ArtifactType::PUBLISH_INTENT,
                        json!({ "request_id": request_id, "platforms": args.platforms }),
                    )
                    .provider(Provider::UploadPost)
                    .persona(scope.persona),
                )
                .await?;
                request_id
            }
        };
        let platforms: Vec<&str> = args.platforms.iter().map(String::as_str).collect();
        let upload = Upload::new(
            &args.video_url,
            &args.caption,
            UPLOAD_POST_USER,
            &platforms,
            &request_id,
        );
        let result = p
            .providers
            .upload_post
            .upload(&upload)
            .await
            .map_err(|e| ToolError::provider("upload-post refused the upload", e))?;
        // Webhooks name upload-post's `job_id`; an answer without one (the
        // docs promise only the request id) leaves the job under our request
        // id, settled from the status endpoint by the reconciler.
        let job_id = result
            .job_id
            .clone()
            .unwrap_or_else(|| result.request_id.clone());
        // The request first: a callback is handled only once its job is
        // registered, and settles the job only when every platform the
        // request names has reported.
        p.append(
            NewArtifact::new(
                scope.run_id,
                ArtifactType::PUBLISH_REQUEST,
                json!({ "job_id": job_id, "request_id": result.request_id, "platforms": args.platforms,
                        "video_url": args.video_url, "caption": args.caption }),
            )
            .provider(Provider::UploadPost)
            .persona(scope.persona),
        )
        .await?;
        p.register(scope, Provider::UploadPost, &job_id).await?;
        tracing::info!(run_id = %scope.run_id, persona = %scope.persona, provider = "upload-post",
            provider_job_id = %job_id, request_id = %result.request_id, "publish submitted");
        Ok(
            json!({ "job_id": job_id, "request_id": result.request_id, "platforms": args.platforms, "status": "publishing; results arrive by callback" }),
        )
    }
}

struct ListMyRuns(Pipeline);

#[async_trait]
impl Tool for ListMyRuns {
    fn spec(&self) -> ToolSpec {
        catalog::spec(LIST_MY_RUNS)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let user = &ctx.chat_scope()?.user_id;
        let args: ListMyRunsArgs = parse_args(args)?;
        let limit = args.limit.unwrap_or(5).clamp(1, 50) as usize;
        let page = self
            .0
            .store
            .list_runs(&RunFilter {
                limit: Some(200),
                ..Default::default()
            })
            .await
            .map_err(|e| failed("listing runs", e))?;
        let runs: Vec<Value> = page
            .runs
            .iter()
            .filter(|r| r.user_id.as_deref() == Some(user))
            .take(limit)
            .map(|r| json!({ "run_id": r.run_id, "job_code": r.job_code, "project": r.project, "status": r.status, "updated_at": r.updated_at }))
            .collect();
        Ok(json!({ "runs": runs }))
    }
}

impl Pipeline {
    /// The run `key` names, if it is `user`'s: in a chat, users see and act
    /// on the runs they started, and another's run is "not found" (whether it
    /// exists is not theirs to learn). The API key's holder sees every run.
    async fn run_of_user(&self, key: &str, user: &str) -> Result<crate::domain::Run, ToolError> {
        let not_found = || ToolError::failed(format!("you have no run {key}"));
        match self.find_run(key).await {
            Ok(run) if run.user_id.as_deref() == Some(user) => Ok(run),
            Ok(_) | Err(super::PipelineError::NotFound(_) | super::PipelineError::Invalid(_)) => {
                Err(not_found())
            }
            Err(e) => Err(ToolError::failed(e.to_string())),
        }
    }
}

struct GetRunStatus(Pipeline);

#[async_trait]
impl Tool for GetRunStatus {
    fn spec(&self) -> ToolSpec {
        catalog::spec(GET_RUN_STATUS)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let user = &ctx.chat_scope()?.user_id;
        let args: GetRunStatusArgs = parse_args(args)?;
        self.0.run_of_user(&args.run, user).await?;
        let evidence = self
            .0
            .evidence(&args.run)
            .await
            .map_err(|e| ToolError::failed(e.to_string()))?;
        let waiting: Vec<&str> = evidence
            .hitl_requests
            .iter()
            .filter(|g| g.decision.is_none())
            .map(|g| g.gate.as_str())
            .collect();
        Ok(json!({
            "run_id": evidence.run.run_id, "job_code": evidence.run.job_code, "project": evidence.run.project,
            "status": evidence.run.status, "error": evidence.run.error, "waiting_gates": waiting,
            "result": evidence.run.result, "artifacts": evidence.artifacts.len(),
        }))
    }
}

struct StartRun(Pipeline);

#[async_trait]
impl Tool for StartRun {
    fn spec(&self) -> ToolSpec {
        catalog::spec(START_RUN)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let scope = ctx.chat_scope()?;
        let (user, turn) = (scope.user_id.clone(), scope.turn);
        let args: StartRunArgs = parse_args(args)?;
        let project = args
            .project
            .parse()
            .map_err(|e: crate::domain::ParseError| ToolError::InvalidArguments(e.to_string()))?;
        let run = self
            .0
            .start_run(NewRunRequest {
                project,
                message: args.message,
                user_id: Some(user),
                chat_turn: turn,
                idempotency_key: None,
            })
            .await
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(
            json!({ "run_id": run.run_id, "job_code": run.job_code, "project": run.project, "status": run.status }),
        )
    }
}

struct RequestHitlLink(Pipeline);

#[async_trait]
impl Tool for RequestHitlLink {
    fn spec(&self) -> ToolSpec {
        catalog::spec(REQUEST_HITL_LINK)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let user = &ctx.chat_scope()?.user_id;
        let args: GateArgs = parse_args(args)?;
        self.0.run_of_user(&args.run, user).await?;
        let gate = args
            .gate
            .parse()
            .map_err(|e: crate::domain::ParseError| ToolError::InvalidArguments(e.to_string()))?;
        let link = self
            .0
            .approval_link(&args.run, &gate)
            .await
            .map_err(|e| ToolError::failed(e.to_string()))?;
        // What the gate asks to approve, so that Brendan can say it.
        let review = self
            .0
            .gate_view(&args.run, &gate)
            .await
            .map(|view| view.review)
            .unwrap_or_default();
        Ok(
            json!({ "url": link.url, "expires_at": link.expires_at, "run_id": link.run_id, "gate": link.gate,
                    "review": review }),
        )
    }
}

struct ApproveHitlGate(Pipeline);

#[async_trait]
impl Tool for ApproveHitlGate {
    fn spec(&self) -> ToolSpec {
        catalog::spec(APPROVE_HITL_GATE)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let user = ctx.chat_scope()?.user_id.clone();
        let args: GateArgs = parse_args(args)?;
        self.0.run_of_user(&args.run, &user).await?;
        let gate = args
            .gate
            .parse()
            .map_err(|e: crate::domain::ParseError| ToolError::InvalidArguments(e.to_string()))?;
        let decided = self
            .0
            .decide_gate(
                &args.run,
                &gate,
                HitlDecision::Approved,
                &format!("brendan:{user}"),
                None,
                None,
            )
            .await
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(
            json!({ "gate": gate, "decision": decided.request.decision, "decided_now": decided.decided_now, "run_id": decided.request.run_id }),
        )
    }
}
