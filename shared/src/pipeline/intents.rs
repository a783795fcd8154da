//! Submission intents: kie.ai clips and Shotstack renders named before they
//! are sent, so that a process stopped between a provider accepting the work
//! and our record of it never pays for the work twice.
//!
//! Neither API takes an idempotency key or finds a job by our reference, but
//! both echo the callback URL a job was submitted with (kie.ai's
//! `record-info` in `paramJson.callBackUrl`, Shotstack's render status in
//! `data.callback`). So each submission goes out with a callback URL naming
//! its intent and item (`?intent=mw-intent-…&item=N`), after two writes:
//! - the intent artifact (`kieai.intent`, `shotstack.intent`): the items and
//!   what each asks the provider for;
//! - an intent job: a `provider_jobs` row whose id is the intent's, pending
//!   with the persona's task token, so the persona cannot complete while an
//!   item is in doubt, and due for the reconciler like any job.
//!
//! A submission that ends normally records each accepted item (`kieai.job`,
//! `shotstack.timeline`, naming the intent) and settles the intent job. One
//! that was cut short leaves the intent job pending and items accepted
//! without a record: **in doubt**. Then:
//! - the step run again submits nothing in doubt (`Pending::in_doubt`);
//! - a callback of a job nobody registered asks the provider which callback
//!   URL the job was given; one naming a pending intent is adopted: the item
//!   is recorded and the job registered under the intent's token
//!   (`Pipeline::adopt_intended_job`);
//! - the reconciler, once the intent and its newest recorded item are both
//!   older than `RECONCILE_IN_DOUBT_SECS` (longer than a provider takes to
//!   call back; a persona still sending records an item at least that often),
//!   submits what is still in doubt again: the provider never had it, or its
//!   callback was lost too. Only that last case pays twice.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Pipeline, PipelineError};
use crate::domain::{
    Artifact, ArtifactType, JobStatus, NewArtifact, NewProviderJob, Provider, ProviderJob,
    SettledBy, INTENT_JOB_PREFIX,
};
use crate::personas::tools::{RunScope, ToolError};
use crate::store::JobOutcome;

/// A tool's error where the pipeline reports one: a transient one is retried
/// like a provider's.
fn pipeline_error(error: ToolError) -> PipelineError {
    if error.is_transient() {
        PipelineError::Provider(error.to_string())
    } else {
        PipelineError::Invalid(error.to_string())
    }
}

/// An intent as its artifact records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Intent {
    pub intent_id: String,
    /// What each item asks the provider for; `index` names the item.
    pub items: Vec<Value>,
}

impl Intent {
    fn of(artifact: &Artifact) -> Option<Self> {
        serde_json::from_value(artifact.metadata.clone()).ok()
    }

    fn item(&self, index: u64) -> Option<&Value> {
        self.items
            .iter()
            .find(|item| item["index"].as_u64() == Some(index))
    }
}

/// The artifact types of one provider's intents and of its accepted work.
fn artifact_types(provider: Provider) -> Option<(ArtifactType, ArtifactType)> {
    match provider {
        Provider::KieAi => Some((ArtifactType::KIEAI_INTENT, ArtifactType::KIEAI_JOB)),
        Provider::Shotstack => Some((
            ArtifactType::SHOTSTACK_INTENT,
            ArtifactType::SHOTSTACK_TIMELINE,
        )),
        Provider::UploadPost => None,
    }
}

/// `url` naming the intent's item.
pub fn callback_url(url: &str, intent_id: &str, index: u64) -> String {
    let glue = if url.contains('?') { '&' } else { '?' };
    format!("{url}{glue}intent={intent_id}&item={index}")
}

/// The intent and item a callback URL names, if it names one.
fn named_intent(url: &str) -> Option<(String, u64)> {
    let query = url.split_once('?')?.1;
    let (mut intent, mut item) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("intent", value)) if value.starts_with(INTENT_JOB_PREFIX) => {
                intent = Some(value.to_owned())
            }
            Some(("item", value)) => item = value.parse().ok(),
            _ => {}
        }
    }
    Some((intent?, item?))
}

/// What a persona's earlier submissions to one provider left: the items
/// recorded as accepted, and those in doubt (their intent cut short).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// The accepted work's records (`kieai.job`, `shotstack.timeline`).
    pub recorded: Vec<Artifact>,
    /// Items of intents cut short that have no record: not to be submitted
    /// again by the step (the reconciler decides).
    pub in_doubt: Vec<u64>,
}

impl Pending {
    /// The record of item `index`, if it was accepted.
    pub fn record(&self, index: u64) -> Option<&Artifact> {
        self.recorded
            .iter()
            .find(|a| a.metadata["index"].as_u64() == Some(index))
    }
}

impl Pipeline {
    /// What the scope's persona submitted to `provider` before, and what of
    /// it is in doubt. An intent whose items all have records by now (its
    /// submission ended between the records and settling its job) is
    /// settled here.
    pub(crate) async fn pending_submissions(
        &self,
        scope: &RunScope,
        provider: Provider,
    ) -> Result<Pending, ToolError> {
        let (intent_type, record_type) = artifact_types(provider).expect("a provider with intents");
        let artifacts = self
            .store
            .list_artifacts_of(scope.run_id, &[intent_type.as_str(), record_type.as_str()])
            .await
            .map_err(|e| ToolError::caused_by("reading the run's artifacts", e))?;
        let mine = |a: &&Artifact| a.persona == Some(scope.persona);
        let jobs = self
            .store
            .list_provider_jobs(scope.run_id)
            .await
            .map_err(|e| ToolError::caused_by("reading the run's jobs", e))?;
        // Work the provider failed is not reused: a redriven step submits it
        // again rather than waiting on a job that has failed already.
        let failed = |a: &Artifact| {
            a.metadata[id_key(provider)].as_str().is_some_and(|id| {
                jobs.iter().any(|j| {
                    j.provider == provider && j.job_id == id && j.status == JobStatus::Failed
                })
            })
        };
        let recorded: Vec<Artifact> = artifacts
            .iter()
            .filter(mine)
            .filter(|a| a.artifact_type == record_type && !failed(a))
            .cloned()
            .collect();
        let mut pending = Pending {
            recorded,
            in_doubt: Vec::new(),
        };
        let intents: Vec<Intent> = artifacts
            .iter()
            .filter(mine)
            .filter(|a| a.artifact_type == intent_type)
            .filter_map(Intent::of)
            .collect();
        if intents.is_empty() {
            return Ok(pending);
        }
        for intent in intents {
            let open = jobs.iter().any(|j| {
                j.provider == provider
                    && j.job_id == intent.intent_id
                    && j.status == JobStatus::Pending
            });
            if !open {
                continue; // settled, or never registered: nothing was sent
            }
            // Recorded, not registered (the registration failed): the
            // record names the job, so it is registered now.
            for item in &intent.items {
                let job_id = item["index"]
                    .as_u64()
                    .and_then(|index| pending.record(index))
                    .filter(|record| record.metadata["intent"] == intent.intent_id.as_str())
                    .and_then(|record| record.metadata[id_key(provider)].as_str());
                if let Some(job_id) = job_id {
                    if !jobs
                        .iter()
                        .any(|j| j.provider == provider && j.job_id == job_id)
                    {
                        self.register(scope, provider, job_id).await?;
                    }
                }
            }
            let doubtful: Vec<u64> = intent
                .items
                .iter()
                .filter_map(|item| item["index"].as_u64())
                .filter(|index| pending.record(*index).is_none())
                .collect();
            if doubtful.is_empty() {
                self.end_intent(provider, &intent.intent_id).await?;
            }
            pending.in_doubt.extend(doubtful);
        }
        Ok(pending)
    }

    /// Names the work about to be sent: the intent's artifact, then its job.
    /// Answers the intent's id, for `callback_url` and `end_intent`.
    pub async fn begin_intent(
        &self,
        scope: &RunScope,
        provider: Provider,
        items: Vec<Value>,
    ) -> Result<String, ToolError> {
        let (intent_type, _) = artifact_types(provider).expect("a provider with intents");
        let intent_id = format!("{INTENT_JOB_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let intent = Intent {
            intent_id: intent_id.clone(),
            items,
        };
        self.store
            .append_artifact(
                NewArtifact::new(
                    scope.run_id,
                    intent_type,
                    serde_json::to_value(&intent).expect("serializes"),
                )
                .provider(provider)
                .persona(scope.persona),
            )
            .await
            .map_err(|e| ToolError::caused_by("recording a submission intent", e))?;
        let job = NewProviderJob {
            provider,
            job_id: intent_id.clone(),
            run_id: scope.run_id,
            persona: scope.persona,
            task_token: scope.task_token.clone(),
            // Checked like any job once overdue; resubmitted only once older
            // than `ReconcileSettings::in_doubt` (`resolve_intent`).
            check_at: self.first_check_at(),
        };
        self.store
            .register_provider_job(job)
            .await
            .map_err(|e| ToolError::caused_by("registering a submission intent", e))?;
        Ok(intent_id)
    }

    /// Settles an intent whose items are all recorded (or were refused).
    pub(crate) async fn end_intent(
        &self,
        provider: Provider,
        intent_id: &str,
    ) -> Result<(), ToolError> {
        self.store
            .settle_provider_job(
                provider,
                intent_id,
                JobOutcome::Succeeded(json!({ "intent": "submitted" })),
                None,
                SettledBy::Callback,
            )
            .await
            .map(drop)
            .map_err(|e| ToolError::caused_by("settling a submission intent", e))
    }

    /// A callback's job that nobody registered, when the provider says it was
    /// submitted for an item of a pending intent: the item is recorded, the
    /// job registered under the intent's task token, and the job answered.
    /// `None` for anything else (the callback is then kept as an orphan).
    pub(crate) async fn adopt_intended_job(
        &self,
        provider: Provider,
        job_id: &str,
    ) -> Result<Option<ProviderJob>, PipelineError> {
        let url = match provider {
            Provider::KieAi => self
                .providers
                .kieai
                .record_info(job_id)
                .await
                .map(|task| task.callback_url),
            Provider::Shotstack => self.providers.shotstack.render_callback(job_id).await,
            Provider::UploadPost => return Ok(None),
        };
        let url = match url {
            Ok(url) => url,
            Err(e) if e.is_transient() => return Err(PipelineError::Provider(e.to_string())),
            Err(_) => return Ok(None), // unknown there too: an orphan
        };
        let Some((intent_id, index)) = url.as_deref().and_then(named_intent) else {
            return Ok(None);
        };
        let Some(intent_job) = self.store.find_provider_job(provider, &intent_id).await? else {
            return Ok(None);
        };
        let scope = self.intent_scope(&intent_job).await?;
        // Recorded already, its registration failed: registered now if the
        // record names this job (else another job took the item: an orphan).
        let (_, record_type) = artifact_types(provider).expect("a provider with intents");
        let recorded = self
            .store
            .list_artifacts_of(scope.run_id, &[record_type.as_str()])
            .await?
            .into_iter()
            .find(|a| {
                a.metadata["intent"].as_str() == Some(intent_id.as_str())
                    && a.metadata["index"].as_u64() == Some(index)
            });
        if let Some(record) = recorded {
            if record.metadata[id_key(provider)].as_str() == Some(job_id) {
                self.register(&scope, provider, job_id)
                    .await
                    .map_err(pipeline_error)?;
            }
            return Ok(self.store.find_provider_job(provider, job_id).await?);
        }
        if intent_job.status != JobStatus::Pending {
            return Ok(None);
        }
        let Some(intent) = self.intent(&scope, provider, &intent_id).await? else {
            return Ok(None);
        };
        let Some(item) = intent.item(index) else {
            return Ok(None);
        };
        tracing::info!(%provider, provider_job_id = job_id, intent = %intent_id, item = index,
            run_id = %scope.run_id, "a job whose submission was cut short adopted by its callback");
        let mut record = submitted_record(
            provider,
            item,
            job_id,
            &intent_id,
            url.as_deref().unwrap_or_default(),
        );
        record["adopted"] = Value::Bool(true);
        if !self
            .record_submitted(&scope, provider, record, job_id)
            .await
            .map_err(pipeline_error)?
        {
            // Recorded meanwhile: this job if a twin callback adopted it
            // (then registered), else another one (then this is an orphan).
            return Ok(self.store.find_provider_job(provider, job_id).await?);
        }
        // The intent settles with its last item.
        self.pending_submissions(&scope, provider)
            .await
            .map_err(pipeline_error)?;
        Ok(self.store.find_provider_job(provider, job_id).await?)
    }

    /// The reconciler's turn on a due intent job. Settled when its items are
    /// all recorded; left for later while the in-doubt window since the
    /// intent or its newest record runs (a callback may still name the work,
    /// a live persona may still be sending it); after that, what is still in
    /// doubt is submitted again. Answers when to look again, or `None` once
    /// settled.
    pub(super) async fn resolve_intent(
        &self,
        intent_job: &ProviderJob,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, PipelineError> {
        let provider = intent_job.provider;
        let scope = self.intent_scope(intent_job).await?;
        let pending = self
            .pending_submissions(&scope, provider)
            .await
            .map_err(pipeline_error)?;
        let Some(intent) = self.intent(&scope, provider, &intent_job.job_id).await? else {
            // An intent job without its artifact: nothing was ever sent.
            self.end_intent(provider, &intent_job.job_id)
                .await
                .map_err(pipeline_error)?;
            return Ok(None);
        };
        let doubtful: Vec<&Value> = intent
            .items
            .iter()
            .filter(|item| {
                item["index"]
                    .as_u64()
                    .is_some_and(|i| pending.record(i).is_none())
            })
            .collect();
        if doubtful.is_empty() {
            return Ok(None); // settled by `pending_submissions`
        }
        let in_doubt = chrono::Duration::from_std(self.settings.reconcile.in_doubt)
            .unwrap_or(chrono::Duration::minutes(10));
        // The window restarts with each of the intent's items recorded: a
        // persona still sending (slowed by throttled, retried submissions)
        // keeps it open, so what it has not sent yet is not sent twice; one
        // that stopped leaves it to run out.
        let last_activity = pending
            .recorded
            .iter()
            .filter(|record| record.metadata["intent"] == intent.intent_id.as_str())
            .map(|record| record.created_at)
            .fold(intent_job.created_at, DateTime::max);
        let deadline = last_activity + in_doubt;
        if now < deadline {
            return Ok(Some(deadline));
        }
        for item in doubtful {
            tracing::warn!(%provider, intent = %intent.intent_id, item = %item["index"],
                run_id = %scope.run_id, "no callback named this in-doubt item: submitting it again");
            let result = match provider {
                Provider::KieAi => self.submit_clip(&scope, &intent.intent_id, item).await,
                Provider::Shotstack => self.submit_render(&scope, &intent.intent_id, item).await,
                Provider::UploadPost => continue,
            };
            if let Err(error) = result {
                if error.may_have_been_accepted() {
                    // In doubt again: another window for its callback.
                    return Ok(Some(now + in_doubt));
                }
                if error.is_transient() {
                    return Err(PipelineError::Provider(error.to_string()));
                }
                let cause =
                    format!("submitting again what a stopped process left in doubt: {error}");
                self.store
                    .settle_provider_job(
                        provider,
                        &intent.intent_id,
                        JobOutcome::Failed(cause),
                        None,
                        SettledBy::Poll,
                    )
                    .await?;
                return Ok(None);
            }
        }
        self.end_intent(provider, &intent.intent_id)
            .await
            .map_err(pipeline_error)?;
        Ok(None)
    }

    /// The intent `intent_id` of the scope's persona, from its artifact.
    async fn intent(
        &self,
        scope: &RunScope,
        provider: Provider,
        intent_id: &str,
    ) -> Result<Option<Intent>, PipelineError> {
        let (intent_type, _) = artifact_types(provider).expect("a provider with intents");
        Ok(self
            .store
            .list_artifacts_of(scope.run_id, &[intent_type.as_str()])
            .await?
            .iter()
            .filter_map(Intent::of)
            .find(|intent| intent.intent_id == intent_id))
    }

    /// The run scope an intent was made in: its run, persona and the task
    /// token its job holds now.
    async fn intent_scope(&self, intent_job: &ProviderJob) -> Result<RunScope, PipelineError> {
        let run = self
            .store
            .get_run(intent_job.run_id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("run {}", intent_job.run_id)))?;
        Ok(RunScope {
            run_id: run.run_id,
            project: run.project,
            persona: intent_job.persona,
            task_token: intent_job.task_token.clone(),
        })
    }

    /// Records work the provider accepted as `job_id` (`kieai.job` or
    /// `shotstack.timeline`, naming its intent and item) and registers the
    /// job: the two writes after every accepted submission. An item is
    /// recorded once (keyed by its intent and index): a second job for it
    /// (two callbacks adopting it at once, or a late callback of work sent
    /// again) is neither recorded nor registered. Answers whether this one
    /// was.
    pub(crate) async fn record_submitted(
        &self,
        scope: &RunScope,
        provider: Provider,
        record: Value,
        job_id: &str,
    ) -> Result<bool, ToolError> {
        let (_, record_type) = artifact_types(provider).expect("a provider with intents");
        let key = format!(
            "{}#{}",
            record["intent"].as_str().unwrap_or_default(),
            record["index"]
        );
        let recorded = self
            .store
            .append_artifact_once(
                NewArtifact::new(scope.run_id, record_type, record)
                    .provider(provider)
                    .persona(scope.persona),
                &key,
            )
            .await
            .map_err(|e| ToolError::caused_by("recording an accepted submission", e))?;
        if recorded.is_none() {
            return Ok(false);
        }
        self.register(scope, provider, job_id).await?;
        Ok(true)
    }
}

/// The key of a record's job id: Shotstack's render, kie.ai's task.
fn id_key(provider: Provider) -> &'static str {
    match provider {
        Provider::Shotstack => "render_id",
        _ => "task_id",
    }
}

/// The record of an item accepted as `job_id`: what the item asked for, the
/// job's id, the intent and the callback URL it went out with.
pub(crate) fn submitted_record(
    provider: Provider,
    item: &Value,
    job_id: &str,
    intent_id: &str,
    callback_url: &str,
) -> Value {
    let mut record = item.clone();
    let id_key = id_key(provider);
    if let Value::Object(fields) = &mut record {
        fields.insert(id_key.into(), job_id.into());
        fields.insert("intent".into(), intent_id.into());
        fields.insert("callback_url".into(), callback_url.into());
    }
    record
}
