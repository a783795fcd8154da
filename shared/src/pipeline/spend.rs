//! A run's spend as it happens: its cost read from the record (`cost`
//! computes it), the budget checked before a persona spends more, and the
//! spend counter (`mw_spend_usd_total`), added to once per settled unit of
//! work — a model call as it returns, a provider job as it settles (a
//! settlement happens once, so a repeated callback adds nothing).
use async_trait::async_trait;

use super::cost::{self, CostInputs};
use super::{Pipeline, PipelineError};
use crate::domain::{Persona, ProviderJob, Run, TraceId};
use crate::personas::agent::{
    AgentObserver, AgentSpans, LlmCallEnded, LlmCallStarted, ToolCallRecord, ToolCallStarted,
};
use crate::personas::{Agent, ProjectSpec};

/// The error a persona's task fails with when its run has spent its budget.
pub const BUDGET_EXCEEDED: &str = "Budget.Exceeded";

const SPEND_USD: &str = "mw_spend_usd_total";
const SPEND_USD_HELP: &str =
    "Dollars spent, by project and kind (llm, kieai, shotstack, upload-post), at the price table's rates.";
const SPEND_UNITS: &str = "mw_spend_units_total";
const SPEND_UNITS_HELP: &str =
    "Units of paid work settled (tokens, clips, render minutes, posts), by project and kind.";

fn count_spend(project: &str, kind: &str, units: f64, usd: f64) {
    let labels = [("project", project), ("kind", kind)];
    crate::telemetry::metrics::add(SPEND_USD, SPEND_USD_HELP, &labels, usd);
    crate::telemetry::metrics::add(SPEND_UNITS, SPEND_UNITS_HELP, &labels, units);
}

impl Pipeline {
    /// What `run` has spent so far, from what it left on the record. The
    /// engine's history counts only on AWS (where the orchestration is
    /// spend), so it is read only there.
    async fn spent_usd(&self, run: &Run) -> Result<f64, PipelineError> {
        let id = run.run_id;
        let (spans, jobs, artifacts, events) = tokio::try_join!(
            self.store.list_spans(TraceId::of_run(id)),
            self.store.list_provider_jobs(id),
            self.store.list_artifacts(id),
            self.store.list_webhook_events(id),
        )?;
        let history = if self.settings.on_aws {
            self.history(run).await
        } else {
            Vec::new()
        };
        let inputs = CostInputs {
            spans: &spans,
            jobs: &jobs,
            artifacts: &artifacts,
            history: &history,
            webhook_events: events.len(),
            on_aws: self.settings.on_aws,
        };
        Ok(cost::run_cost(inputs, &self.settings.prices).total_usd)
    }

    /// The failure cause when `run` has spent its budget (`BUDGET_USD`, else
    /// its project's `budget_usd`), checked before a persona spends more;
    /// `None` while it has not, or when it has no budget.
    pub(crate) async fn over_budget(
        &self,
        run: &Run,
        project: &ProjectSpec,
        next: Persona,
    ) -> Result<Option<String>, PipelineError> {
        let Some(budget) = self.settings.budget_usd.or(project.budget_usd) else {
            return Ok(None);
        };
        let spent = self.spent_usd(run).await?;
        if spent < budget {
            return Ok(None);
        }
        Ok(Some(format!(
            "run {} spent {} of {} (stopped before persona {next})",
            run.job_code,
            cost::usd(spent),
            cost::usd(budget)
        )))
    }

    /// Counts a job's work as spent, once: called where it settled now.
    pub(crate) async fn count_job_spend(&self, job: &ProviderJob) {
        if job.is_intent() || job.status != crate::domain::JobStatus::Succeeded {
            return;
        }
        let (run, artifacts) = match tokio::try_join!(
            self.store.get_run(job.run_id),
            self.store.list_artifacts(job.run_id)
        ) {
            Ok((Some(run), artifacts)) => (run, artifacts),
            Ok((None, _)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the job's spend is not counted: the store did not answer");
                return;
            }
        };
        let units = cost::job_units(job, &artifacts);
        let (per_unit, _) = self.settings.prices.provider_unit(job.provider);
        count_spend(
            run.project.as_str(),
            job.provider.as_str(),
            units,
            per_unit.unwrap_or_default() * units,
        );
    }

    /// The persona's span recorder, counting each model call's spend as it
    /// returns.
    pub(crate) fn counting_spend<'a>(
        &'a self,
        spans: &'a AgentSpans,
        run: &'a Run,
    ) -> SpendCounter<'a> {
        SpendCounter {
            spans,
            pipeline: self,
            project: run.project.as_str(),
        }
    }
}

/// An observer that records the persona's spans and counts its model
/// calls' spend.
pub(crate) struct SpendCounter<'a> {
    spans: &'a AgentSpans,
    pipeline: &'a Pipeline,
    project: &'a str,
}

#[async_trait]
impl AgentObserver for SpendCounter<'_> {
    async fn llm_call_started(&self, call: &LlmCallStarted<'_>) {
        self.spans.llm_call_started(call).await;
    }

    async fn llm_call_ended(&self, call: &LlmCallEnded<'_>) {
        if let Ok(response) = call.outcome {
            let usage = response.usage.unwrap_or_default();
            let usd = self
                .pipeline
                .settings
                .prices
                .tokens_usd(
                    &response.model,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                )
                .unwrap_or_default();
            count_spend(self.project, "llm", usage.total_tokens() as f64, usd);
        }
        self.spans.llm_call_ended(call).await;
    }

    async fn tool_call_started(&self, call: &ToolCallStarted<'_>) {
        self.spans.tool_call_started(call).await;
    }

    async fn tool_call_ended(&self, persona: Agent, record: &ToolCallRecord) {
        self.spans.tool_call_ended(persona, record).await;
    }
}
