//! The callbacks consumer: acts on verified provider callbacks. It confirms
//! the result with the provider's API where the signature does not cover the
//! body (kie.ai signs only `taskId.timestamp`; Shotstack does not sign),
//! settles the job once, writes the result artifact (`kieai.clip`,
//! `render.url`, `publish.url`), and completes the persona's task when its
//! last job settles. Callbacks for unknown jobs are kept as orphans.
//! Duplicated, late and out-of-order callbacks change nothing twice: the job
//! settles once, and a settled job's later callbacks are only recorded.
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::{Pipeline, PipelineError};
use crate::domain::SpanEnd;
use crate::domain::{
    Artifact, ArtifactType, JobStatus, NewArtifact, Persona, Provider, ProviderJob, RunId,
    WebhookEventStatus,
};
use crate::providers::kieai::VeoState;
use crate::providers::shotstack::{AssetState, RenderState};
use crate::providers::upload_post::{PublishState, UploadRef};
use crate::queue::{HandlerError, MessageHandler};
use crate::store::{JobOutcome, Settled, SettledForEvent};
use crate::webhooks::{CallbackKind, OutcomeHint, ProviderCallback};

/// What the webhook route hands to the callback queue: the stored event and
/// the callback as verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackMessage {
    pub event_id: Uuid,
    pub provider: Provider,
    pub job_id: String,
    /// `kieai.result`, `shotstack.render`, `shotstack.cdn_copy`, `upload-post.result`.
    pub kind: String,
    #[serde(default)]
    pub platform: Option<String>,
    /// `succeeded`, `failed` or `progress`, as the callback claims.
    pub claimed: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub message: Option<String>,
    pub signature_covers_body: bool,
}

impl CallbackMessage {
    pub fn new(event_id: Uuid, callback: ProviderCallback) -> Self {
        let (kind, platform) = match &callback.kind {
            CallbackKind::KieAiResult => ("kieai.result", None),
            CallbackKind::ShotstackRender => ("shotstack.render", None),
            CallbackKind::ShotstackCdnCopy => ("shotstack.cdn_copy", None),
            CallbackKind::UploadPostResult { platform } => {
                ("upload-post.result", Some(platform.clone()))
            }
        };
        let (claimed, urls, message) = match callback.outcome_hint {
            OutcomeHint::Succeeded { urls } => ("succeeded", urls, None),
            OutcomeHint::Failed { message } => ("failed", Vec::new(), Some(message)),
            OutcomeHint::Progress => ("progress", Vec::new(), None),
        };
        Self {
            event_id,
            provider: callback.provider,
            job_id: callback.job_id,
            kind: kind.to_owned(),
            platform,
            claimed: claimed.to_owned(),
            urls,
            message,
            signature_covers_body: callback.signature_covers_body,
        }
    }
}

/// The callbacks consumer: a `MessageHandler` for the callback queue.
#[derive(Debug, Clone)]
pub struct Callbacks {
    pub pipeline: Pipeline,
}

#[async_trait]
impl MessageHandler for Callbacks {
    async fn handle(&self, body: &str) -> Result<(), HandlerError> {
        let message: CallbackMessage = serde_json::from_str(body)
            .map_err(|e| HandlerError::permanent(format!("not a callback message: {e}")))?;
        self.pipeline.process_callback(&message).await
    }
}

/// What confirming a callback found.
pub(crate) enum Confirmed {
    Settle(JobOutcome),
    /// Not finished yet (or nothing to settle from this callback).
    Progress(String),
}

/// How old a callback for an unknown job must be to be kept as an orphan.
const ORPHAN_AFTER_S: i64 = 2;

/// How long a callback for a job not registered yet waits for it in the
/// handler (looking after 1, 2, 4 … ms, until the pauses add up to this)
/// before the queue's retry takes over.
const REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The error a failed provider job fails its persona's task with.
pub const JOB_FAILED_ERROR: &str = "Provider.JobFailed";

impl Pipeline {
    /// Hands a verified callback, whose event is stored `received`, to the
    /// callbacks consumer. The stored event is the durable record of it (a
    /// local queue does not store the message; see `Queue::hand_over`), so a
    /// stack that starts again sends it once more
    /// (`resend_received_callbacks`).
    pub async fn hand_over_callback(&self, message: &CallbackMessage) -> Result<(), PipelineError> {
        self.queue
            .hand_over(
                &self.settings.callback_queue_url,
                serde_json::to_string(message).expect("serializes"),
            )
            .await?;
        Ok(())
    }

    /// Sends the callbacks consumer every callback whose event is still
    /// `received` (stored, not processed: the process stopped first), read
    /// again from the stored payload. Run by a local stack once its
    /// consumers listen; handling is idempotent, so one sent twice changes
    /// nothing twice. Answers how many were sent.
    pub async fn resend_received_callbacks(&self) -> Result<usize, PipelineError> {
        let mut sent = 0;
        for event in self.store.received_webhook_events().await? {
            match crate::webhooks::stored_callback(&event) {
                Ok(Some(callback)) => {
                    self.hand_over_callback(&CallbackMessage::new(event.id, callback))
                        .await?;
                    sent += 1;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(event_id = %event.id, error = %err, "a stored callback no longer parses; left as it is");
                }
            }
        }
        if sent > 0 {
            tracing::info!(
                callbacks = sent,
                "callbacks received before the restart sent again"
            );
        }
        Ok(sent)
    }

    pub async fn process_callback(&self, message: &CallbackMessage) -> Result<(), HandlerError> {
        // kie.ai's and Shotstack's answer depends on the job id alone: it is asked for while the
        // event, the job and its run are read, one wait fewer on a callback's path. A repeated
        // message or a callback for an unknown job asks too, and its answer goes unused.
        let (target, asked) =
            tokio::join!(self.callback_target(message), self.ask_provider(message));
        let Some((job, span)) = target? else {
            return Ok(());
        };
        self.settle_callback(message, job, asked)
            .instrument(span)
            .await
    }

    /// The job a callback settles and the span its handling runs in, or
    /// nothing to settle: the event was handled before (a repeated queue
    /// message), or the job is unknown and the event is now kept as an
    /// orphan.
    async fn callback_target(
        &self,
        message: &CallbackMessage,
    ) -> Result<Option<(ProviderJob, tracing::Span)>, HandlerError> {
        let (status, received_at) = self
            .store
            .get_webhook_event_status(message.event_id)
            .await
            .map_err(PipelineError::from)?
            .ok_or_else(|| {
                HandlerError::permanent(format!("webhook event {} is gone", message.event_id))
            })?;
        if status != WebhookEventStatus::Received {
            return Ok(None); // handled before: a repeated queue message
        }
        let mut job = self.callback_job(message, received_at).await?;
        if job.is_none() {
            if chrono::Utc::now() - received_at < chrono::Duration::seconds(ORPHAN_AFTER_S) {
                return Err(HandlerError::retryable(format!(
                    "no {} job {} yet",
                    message.provider, message.job_id
                )));
            }
            // Submitted by a process stopped before it recorded the job?
            job = self
                .adopt_intended_job(message.provider, &message.job_id)
                .await
                .map_err(HandlerError::from)?;
        }
        let Some(job) = job else {
            tracing::warn!(provider = %message.provider, provider_job_id = %message.job_id, "callback for an unknown job kept as an orphan");
            self.finish_event(
                message,
                WebhookEventStatus::Orphaned,
                Some(format!("no {} job {}", message.provider, message.job_id)),
                None,
            )
            .await?;
            return Ok(None);
        };
        let run = self
            .store
            .get_run_labels(job.run_id)
            .await
            .map_err(PipelineError::from)?;
        let span = match &run {
            Some(run) => crate::telemetry::run_span(run),
            None => tracing::error_span!("callback", run_id = %job.run_id),
        };
        span.record("persona", job.persona.as_str());
        span.record("provider", job.provider.as_str());
        span.record("provider_job_id", job.job_id.as_str());
        Ok(Some((job, span)))
    }

    /// The job a callback is for. A fast provider can call back before the
    /// tool that submitted the job has registered it (the provider answers
    /// the submission, then the tool records the job): for a young event
    /// this looks again a few times, for about `REGISTRATION_WAIT`, so the
    /// callback does not wait out the queue's retry delay for a write that is
    /// a moment away.
    async fn callback_job(
        &self,
        message: &CallbackMessage,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ProviderJob>, HandlerError> {
        let mut pause = std::time::Duration::from_millis(1);
        let mut waited = std::time::Duration::ZERO;
        loop {
            let job = self
                .store
                .find_provider_job(message.provider, &message.job_id)
                .await
                .map_err(PipelineError::from)?;
            let young =
                chrono::Utc::now() - received_at < chrono::Duration::seconds(ORPHAN_AFTER_S);
            if job.is_some() || !young || waited >= REGISTRATION_WAIT {
                return Ok(job);
            }
            tokio::time::sleep(pause).await;
            waited += pause;
            pause *= 2;
        }
    }

    /// Ends a callback whose job is settled: the persona's task completed
    /// when all its jobs are, then the event processed with `note`.
    async fn finish_settled(
        &self,
        message: &CallbackMessage,
        job: &ProviderJob,
        note: Option<String>,
    ) -> Result<(), HandlerError> {
        if let Some(token) = &job.task_token {
            self.complete_persona_if_done(job.run_id, job.persona, token)
                .await?;
        }
        self.finish_event(
            message,
            WebhookEventStatus::Processed,
            note,
            Some(job.run_id),
        )
        .await
    }

    /// Marks the callback's webhook event handled: its status, a note, the
    /// run it belonged to.
    async fn finish_event(
        &self,
        message: &CallbackMessage,
        status: WebhookEventStatus,
        note: Option<String>,
        run_id: Option<RunId>,
    ) -> Result<(), HandlerError> {
        self.store
            .finish_webhook_event(message.event_id, status, note.as_deref(), run_id)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::from(PipelineError::from(e)))
    }

    /// The callback of a known job: confirm, settle once, complete the
    /// persona's task when it was the last job.
    async fn settle_callback(
        &self,
        message: &CallbackMessage,
        job: ProviderJob,
        asked: Option<Result<Confirmed, PipelineError>>,
    ) -> Result<(), HandlerError> {
        let confirmed = match asked {
            Some(asked) => asked,
            None => self.confirm_upload(message, &job).await,
        };
        let confirmed = match confirmed {
            Ok(confirmed) => confirmed,
            Err(err) => {
                tracing::warn!(error = %err, "could not confirm the callback");
                return Err(HandlerError::retryable(err.to_string()));
            }
        };
        let outcome = match confirmed {
            Confirmed::Progress(note) => {
                return self
                    .finish_event(
                        message,
                        WebhookEventStatus::Processed,
                        Some(note),
                        Some(job.run_id),
                    )
                    .await
            }
            Confirmed::Settle(outcome) => outcome,
        };
        let artifact = result_artifact(&job, &outcome);
        let SettledForEvent {
            settled,
            event_finished,
        } = self
            .store
            .settle_provider_job_for_event(
                job.provider,
                &job.job_id,
                outcome,
                artifact,
                message.event_id,
            )
            .await
            .map_err(PipelineError::from)?;
        match settled {
            Settled::Already(job) => {
                // Settled before, perhaps by a process that died right after:
                // make sure the persona's task was completed (idempotent).
                self.finish_settled(message, &job, Some("job already settled".into()))
                    .await
            }
            Settled::Now(job) => {
                tracing::info!(status = %job.status, "provider job settled");
                self.count_job_spend(&job).await;
                let took = job
                    .settled_at
                    .map(|s| (s - job.created_at).num_milliseconds() as f64 / 1000.0);
                crate::telemetry::metrics::observe_seconds(
                    "mw_provider_job_seconds",
                    "From submission to settlement, by provider and outcome.",
                    &[
                        ("provider", job.provider.as_str()),
                        ("status", job.status.as_str()),
                    ],
                    took.unwrap_or_default(),
                );
                if event_finished {
                    return Ok(()); // its task waits for other jobs: nothing more is owed
                }
                self.finish_settled(message, &job, None).await
            }
        }
    }

    /// What kie.ai or Shotstack says of the callback's job (their signatures
    /// do not cover the body, so the outcome comes from their API); nothing
    /// for upload-post, whose signed callback is its own confirmation
    /// (`confirm_upload`).
    async fn ask_provider(
        &self,
        message: &CallbackMessage,
    ) -> Option<Result<Confirmed, PipelineError>> {
        match message.provider {
            Provider::KieAi => Some(self.ask_kieai(&message.job_id).await),
            Provider::Shotstack => Some(self.ask_shotstack(&message.job_id).await),
            Provider::UploadPost => None,
        }
    }

    async fn ask_kieai(&self, task_id: &str) -> Result<Confirmed, PipelineError> {
        let task = self
            .providers
            .kieai
            .record_info(task_id)
            .await
            .map_err(provider_error)?;
        match task.state {
            VeoState::Pending => Err(PipelineError::Provider(
                "kie.ai called back, but record-info still says generating".into(),
            )),
            state => Ok(kieai_settlement(state)),
        }
    }

    async fn ask_shotstack(&self, render_id: &str) -> Result<Confirmed, PipelineError> {
        self.shotstack_outcome(render_id, false).await
    }

    /// What Shotstack says of a render: failed; done and hosted for good (the
    /// lasting CDN URL is the result, the render's own URL is deleted after
    /// 24 hours); or not finished. A render done but not hosted yet waits for
    /// its hosted copy, unless `accept_unhosted` (the reconciler, after its
    /// first checks: an account that hosts nothing never gets a copy), and a
    /// copy that failed leaves the temporary URL as the result.
    pub(crate) async fn shotstack_outcome(
        &self,
        render_id: &str,
        accept_unhosted: bool,
    ) -> Result<Confirmed, PipelineError> {
        let shotstack = &self.providers.shotstack;
        let render = shotstack
            .get_render(render_id)
            .await
            .map_err(provider_error)?;
        let temporary = match render.status {
            RenderState::Done => render.url.ok_or_else(|| {
                PipelineError::Provider("Shotstack says done but gives no URL".into())
            })?,
            RenderState::Failed => {
                return Ok(Confirmed::Settle(JobOutcome::Failed(
                    render
                        .error
                        .unwrap_or_else(|| "Shotstack render failed".into()),
                )))
            }
            other => return Ok(Confirmed::Progress(format!("render is {other:?}"))),
        };
        let assets = shotstack
            .hosted_assets(render_id)
            .await
            .map_err(provider_error)?;
        // The video among the (up to three) hosted files.
        let video = assets
            .iter()
            .find(|a| a.filename.as_deref().is_some_and(|f| f.ends_with(".mp4")))
            .or(assets.first());
        let settle = |url: &str, hosting: &str| {
            Confirmed::Settle(JobOutcome::Succeeded(json!({
                "url": url, "render_url": temporary, "hosting": hosting,
            })))
        };
        Ok(match video.map(|a| (a.status, a.url.as_deref())) {
            Some((AssetState::Ready, Some(url))) => settle(url, "ready"),
            Some((AssetState::Failed | AssetState::Deleted, _)) => {
                tracing::warn!(render_id, "Shotstack could not host the render: keeping its temporary URL (deleted after 24 h)");
                settle(&temporary, "failed")
            }
            None if accept_unhosted => {
                tracing::warn!(render_id, "Shotstack hosts no copy of the render: keeping its temporary URL (deleted after 24 h)");
                settle(&temporary, "none")
            }
            _ => Confirmed::Progress("render done; its hosted copy is not ready yet".into()),
        })
    }

    /// upload-post signs the body: each callback is one platform's result.
    /// The job settles when every requested platform has reported.
    async fn confirm_upload(
        &self,
        message: &CallbackMessage,
        job: &ProviderJob,
    ) -> Result<Confirmed, PipelineError> {
        let platform = message.platform.clone().unwrap_or_else(|| "unknown".into());
        let state = match message.claimed.as_str() {
            "succeeded" => PublishState::Published {
                url: message.urls.first().cloned(),
            },
            "failed" => PublishState::Failed {
                error: message.message.clone().unwrap_or_default(),
            },
            _ => return Ok(Confirmed::Progress(format!("{platform} still publishing"))),
        };
        self.record_publish_results(job, &[(platform, state)])
            .await?;
        self.publish_outcome(job).await
    }

    /// What upload-post's status endpoint says of an upload job (the
    /// reconciler's question when its webhooks are overdue): each platform
    /// that ended is recorded as a callback's result would be, then the job
    /// settles when every requested platform has.
    pub(crate) async fn upload_post_outcome(
        &self,
        job: &ProviderJob,
    ) -> Result<Confirmed, PipelineError> {
        let request = self.publish_request(job).await?;
        let request_id = request
            .metadata
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or(&job.job_id)
            .to_owned();
        let status = self
            .providers
            .upload_post
            .status(UploadRef::Request(&request_id))
            .await
            .map_err(|e| PipelineError::Provider(e.to_string()))?;
        let mut ended: Vec<(String, PublishState)> = status
            .platforms
            .into_iter()
            .filter(|p| p.state != PublishState::Pending)
            .map(|p| (p.platform, p.state))
            .collect();
        if status.over {
            // Over, and a requested platform has no row: it never will.
            for platform in requested_platforms(&request) {
                if !ended.iter().any(|(p, _)| *p == platform) {
                    let error = format!(
                        "upload-post ended the upload ({}) without a result for it",
                        status.status
                    );
                    ended.push((platform, PublishState::Failed { error }));
                }
            }
        }
        if ended.is_empty() {
            return Ok(Confirmed::Progress(format!(
                "upload-post says the upload is {}",
                status.status
            )));
        }
        self.record_publish_results(job, &ended).await?;
        self.publish_outcome(job).await
    }

    /// Records each platform's result of an upload job, once per platform
    /// (its webhook and the reconciler's poll may both report it, each more
    /// than once): a `publish.url` or a `publish.error`.
    async fn record_publish_results(
        &self,
        job: &ProviderJob,
        results: &[(String, PublishState)],
    ) -> Result<(), PipelineError> {
        for (platform, state) in results {
            let (artifact_type, metadata, url) = match state {
                PublishState::Pending => continue,
                PublishState::Published { url } => (
                    ArtifactType::PUBLISH_URL,
                    json!({ "job_id": job.job_id, "platform": platform }),
                    url.clone(),
                ),
                PublishState::Failed { error } => (
                    ArtifactType::PUBLISH_ERROR,
                    json!({ "job_id": job.job_id, "platform": platform, "error": error }),
                    None,
                ),
            };
            let mut artifact = NewArtifact::new(job.run_id, artifact_type, metadata)
                .provider(job.provider)
                .persona(job.persona);
            if let Some(url) = url {
                artifact = artifact.url(url);
            }
            let key = format!("publish:{}:{}:{platform}", job.provider, job.job_id);
            self.store.append_artifact_once(artifact, &key).await?;
        }
        Ok(())
    }

    /// The upload's request: which platforms are owed, and our request id.
    async fn publish_request(&self, job: &ProviderJob) -> Result<Artifact, PipelineError> {
        self.store
            .list_artifacts_of(job.run_id, &[ArtifactType::PUBLISH_REQUEST.as_str()])
            .await?
            .into_iter()
            .rev()
            .find(|a| a.metadata.get("job_id").and_then(Value::as_str) == Some(&job.job_id))
            // Without the request, which platforms are owed is unknown:
            // settling now would leave out the ones yet to report.
            .ok_or_else(|| {
                PipelineError::Conflict(format!(
                    "upload-post job {}: its publish request is not recorded yet",
                    job.job_id
                ))
            })
    }

    /// The platform results recorded for an upload job.
    async fn publish_results(&self, job: &ProviderJob) -> Result<Vec<Artifact>, PipelineError> {
        Ok(self
            .store
            .list_artifacts_of(
                job.run_id,
                &[
                    ArtifactType::PUBLISH_URL.as_str(),
                    ArtifactType::PUBLISH_ERROR.as_str(),
                ],
            )
            .await?
            .into_iter()
            .filter(|a| a.metadata.get("job_id").and_then(Value::as_str) == Some(&job.job_id))
            .collect())
    }

    /// Settles an upload job once every platform its request names has a
    /// recorded result: published when all are, failed naming each failure.
    async fn publish_outcome(&self, job: &ProviderJob) -> Result<Confirmed, PipelineError> {
        let request = self.publish_request(job).await?;
        let requested = requested_platforms(&request);
        let results = self.publish_results(job).await?;
        let reported = |p: &str| {
            results
                .iter()
                .any(|a| a.metadata.get("platform").and_then(Value::as_str) == Some(p))
        };
        if !requested.iter().all(|p| reported(p)) {
            return Ok(Confirmed::Progress(format!(
                "{} of {} platforms reported",
                results.len(),
                requested.len()
            )));
        }
        let failures: Vec<String> = results
            .iter()
            .filter(|a| a.artifact_type == ArtifactType::PUBLISH_ERROR)
            .map(|a| {
                format!(
                    "{}: {}",
                    a.metadata["platform"].as_str().unwrap_or("?"),
                    a.metadata["error"].as_str().unwrap_or("failed")
                )
            })
            .collect();
        let urls: Vec<&str> = results.iter().filter_map(|a| a.url.as_deref()).collect();
        Ok(Confirmed::Settle(if failures.is_empty() {
            JobOutcome::Succeeded(json!({ "urls": urls }))
        } else {
            JobOutcome::Failed(format!("upload-post: {}", failures.join("; ")))
        }))
    }

    /// Completes the persona's task once its agent has finished and every
    /// job it submitted has settled: with the jobs' results, or failed with
    /// the first job's error. Safe to call more than once.
    pub(crate) async fn complete_persona_if_done(
        &self,
        run_id: RunId,
        persona: Persona,
        token: &str,
    ) -> Result<(), PipelineError> {
        let jobs = self.store.list_task_jobs(run_id, token).await?;
        self.complete_persona_with(run_id, persona, token, jobs)
            .await
    }

    /// `complete_persona_if_done` with the task's jobs as just read
    /// (`Store::list_task_jobs`).
    pub(crate) async fn complete_persona_with(
        &self,
        run_id: RunId,
        persona: Persona,
        token: &str,
        mut jobs: Vec<ProviderJob>,
    ) -> Result<(), PipelineError> {
        // Jobs first: while any is pending there is nothing more to read.
        jobs.retain(|j| j.persona == persona);
        if jobs.iter().any(|j| j.status == JobStatus::Pending) {
            return Ok(());
        }
        let artifacts = self
            .store
            .list_artifacts_of(
                run_id,
                &[
                    ArtifactType::PERSONA_COMPLETED.as_str(),
                    ArtifactType::CAPTION_TEXT.as_str(),
                ],
            )
            .await?;
        let Some(completed) = artifacts
            .iter()
            .rev()
            .find(|a| a.is_persona_completed(persona))
        else {
            return Ok(()); // the worker completes it when the agent ends
        };
        if let Some(failed) = jobs.iter().find(|j| j.status == JobStatus::Failed) {
            let cause = format!(
                "persona {persona}: {} job {} failed: {}",
                failed.provider,
                failed.job_id,
                failed.error.as_deref().unwrap_or("no error given")
            );
            self.close_persona_span(run_id, persona, token, SpanEnd::error(&cause))
                .await;
            return self.fail_task(token, JOB_FAILED_ERROR, &cause).await;
        }
        // Intents are not work: only the jobs the providers accepted are.
        jobs.retain(|j| !j.is_intent());
        let output = persona_output(persona, &jobs, completed, &artifacts);
        let usage = completed.metadata.get("usage");
        let end = super::spans::usage_attributes(SpanEnd::ok(Some(output.clone())), usage);
        self.close_persona_span_and_succeed(run_id, persona, token, end, &output)
            .await
    }
}

/// How a kie.ai task that has ended settles its job.
pub(super) fn kieai_settlement(state: VeoState) -> Confirmed {
    match state {
        VeoState::Succeeded { result_urls } => {
            Confirmed::Settle(JobOutcome::Succeeded(json!({ "urls": result_urls })))
        }
        VeoState::Failed { code, message } => Confirmed::Settle(JobOutcome::Failed(match code {
            Some(code) => format!("kie.ai error {code}: {message}"),
            None => message,
        })),
        VeoState::Pending => Confirmed::Progress("kie.ai is still generating".into()),
    }
}

/// The artifact a job's settlement writes with it: a clip, a render, or the
/// error. upload-post results are recorded per platform as they arrive.
pub(super) fn result_artifact(job: &ProviderJob, outcome: &JobOutcome) -> Option<NewArtifact> {
    let new = |t: ArtifactType, metadata: Value| {
        NewArtifact::new(job.run_id, t, metadata)
            .provider(job.provider)
            .persona(job.persona)
    };
    let first_url = |result: &Value, key: &str| match result.get(key) {
        Some(Value::Array(urls)) => urls.first().and_then(Value::as_str).map(str::to_owned),
        Some(Value::String(url)) => Some(url.clone()),
        _ => None,
    };
    let with_url = |a: NewArtifact, url: Option<String>| match url {
        Some(url) => a.url(url),
        None => a,
    };
    Some(match (job.provider, outcome) {
        (Provider::KieAi, JobOutcome::Succeeded(result)) => with_url(
            new(
                ArtifactType::KIEAI_CLIP,
                json!({ "task_id": job.job_id, "urls": result }),
            ),
            first_url(result, "urls"),
        ),
        (Provider::KieAi, JobOutcome::Failed(error)) => new(
            ArtifactType::KIEAI_ERROR,
            json!({ "task_id": job.job_id, "error": error }),
        ),
        (Provider::Shotstack, JobOutcome::Succeeded(result)) => with_url(
            new(
                ArtifactType::RENDER_URL,
                json!({ "render_id": job.job_id, "temporary_url": result.get("render_url"),
                        "hosting": result.get("hosting") }),
            ),
            first_url(result, "url"),
        ),
        (Provider::Shotstack, JobOutcome::Failed(error)) => new(
            ArtifactType::RENDER_ERROR,
            json!({ "render_id": job.job_id, "error": error }),
        ),
        (Provider::UploadPost, _) => return None,
    })
}

/// The platforms an upload's request names.
fn requested_platforms(request: &Artifact) -> Vec<String> {
    request
        .metadata
        .get("platforms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

/// What a persona hands to the next one, from its settled jobs and the
/// record of its agent's end (`completed`).
fn persona_output(
    persona: Persona,
    jobs: &[ProviderJob],
    completed: &Artifact,
    artifacts: &[Artifact],
) -> Value {
    let urls = |j: &ProviderJob, key: &str| -> Vec<Value> {
        match j.result.as_ref().and_then(|r| r.get(key)) {
            Some(Value::Array(urls)) => urls.clone(),
            Some(url @ Value::String(_)) => vec![url.clone()],
            _ => Vec::new(),
        }
    };
    let summary = completed
        .metadata
        .get("summary")
        .cloned()
        .unwrap_or(Value::Null);
    match persona {
        Persona::Riley => json!({
            "summary": summary,
            "clips": jobs.iter().map(|j| json!({ "job_id": j.job_id, "url": urls(j, "urls").first() })).collect::<Vec<_>>(),
        }),
        Persona::Alex => json!({
            "summary": summary,
            "render_url": jobs.iter().find_map(|j| urls(j, "url").into_iter().next()),
        }),
        Persona::Quinn => json!({
            "summary": summary,
            "publish_urls": jobs.iter().flat_map(|j| urls(j, "urls")).collect::<Vec<_>>(),
            "caption": artifacts.iter().rev().find(|a| a.artifact_type == ArtifactType::CAPTION_TEXT)
                .and_then(|a| a.metadata.get("caption").cloned()),
        }),
        Persona::Iggy => json!({ "summary": summary }),
    }
}

/// A provider that could not be asked, as the pipeline says it.
fn provider_error(err: impl std::fmt::Display) -> PipelineError {
    PipelineError::Provider(err.to_string())
}
