//! What a run cost: the model's tokens per persona, the providers' accepted
//! work, and, for runs on AWS, an estimate of the orchestration. Pure: the
//! inputs are what the run left on the record (spans, provider jobs,
//! artifacts, the engine's history) and a [`Prices`] table; nothing here
//! reads a clock or the store, so the same record always costs the same.
//!
//! Prices are a table, not constants, because they change under us: the
//! defaults carry the date and the page they were taken from, and a file
//! (`<MYLOWARE_HOME>/prices.json`, or `PRICES_FILE`) overrides any part of
//! them. A figure we could not find on a provider's page is left unset
//! (`None`): its units are still counted and shown, its dollars are 0 and the
//! line says `unpriced`, rather than a guess passing for a price.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{
    Artifact, ArtifactType, JobStatus, Persona, Provider, ProviderJob, Span, SpanId,
};
use crate::engine::asl::machine::HistoryEvent;
use crate::telemetry::spans::attr;

/// USD per million tokens of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenPrice {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

/// kie.ai bills in credits per generated clip; failed generations are not
/// charged, so only clips whose job succeeded count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KieAiPrices {
    pub credits_per_clip: Option<f64>,
    pub usd_per_credit: Option<f64>,
}

/// Shotstack bills rendered minutes (one credit a minute, by the second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ShotstackPrices {
    pub usd_per_minute: Option<f64>,
}

/// upload-post bills by plan, not per post: a per-post figure is the
/// operator's own (plan price over its posts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UploadPostPrices {
    pub usd_per_post: Option<f64>,
}

/// The AWS services a run on Step Functions uses (us-east-1 list prices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AwsPrices {
    /// Standard workflows bill each state transition.
    pub state_transitions_per_1000: f64,
    pub lambda_gb_second: f64,
    pub lambda_requests_per_million: f64,
    /// The memory the functions are given (`template.yaml`'s `MemorySize`).
    pub lambda_memory_mb: f64,
    pub sqs_requests_per_million: f64,
    pub dynamodb_write_units_per_million: f64,
    pub dynamodb_read_units_per_million: f64,
}

/// The price table: defaults below, any part overridden by a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    /// When the defaults were taken from their pages; a file may say its own.
    pub dated: String,
    /// By model name as the model reports it (`gen_ai.response.model`).
    pub llm: BTreeMap<String, TokenPrice>,
    pub kieai: KieAiPrices,
    pub shotstack: ShotstackPrices,
    pub upload_post: UploadPostPrices,
    pub aws: AwsPrices,
}

/// The day the default prices below were looked up.
pub const PRICES_DATED: &str = "2026-12-06";

impl Default for ShotstackPrices {
    fn default() -> Self {
        // https://shotstack.io/pricing/ as transcribed on 2026-06-20
        // (api-evangelist/shotstack plans): the subscription plan's $0.20 a
        // rendered minute (pay-as-you-go is $0.30). One credit is one minute,
        // counted by the second (https://help.shotstack.io/en/articles/8580225-general-faq).
        Self {
            usd_per_minute: Some(0.20),
        }
    }
}

impl Default for AwsPrices {
    fn default() -> Self {
        // us-east-1 list prices, looked up 2026-12-06:
        // https://aws.amazon.com/step-functions/pricing/ (Standard, per 1,000 transitions),
        // https://aws.amazon.com/lambda/pricing/ (x86, per GB-s and per 1M requests),
        // https://aws.amazon.com/sqs/pricing/ (standard queue, per 1M requests),
        // https://aws.amazon.com/dynamodb/pricing/on-demand/ (on-demand, since 2024-11-01).
        Self {
            state_transitions_per_1000: 0.025,
            lambda_gb_second: 0.000_016_666_7,
            lambda_requests_per_million: 0.20,
            lambda_memory_mb: 512.0,
            sqs_requests_per_million: 0.40,
            dynamodb_write_units_per_million: 0.625,
            dynamodb_read_units_per_million: 0.125,
        }
    }
}

impl Default for Prices {
    fn default() -> Self {
        let mut llm = BTreeMap::new();
        // The offline brain costs nothing.
        llm.insert(
            crate::personas::ScriptedLlm::MODEL.to_owned(),
            TokenPrice {
                input_per_million: 0.0,
                output_per_million: 0.0,
            },
        );
        // https://openai.com/api/pricing/ (gpt-4o-mini, the default
        // LLM_MODEL): $0.15 / $0.60 per 1M input / output tokens.
        llm.insert(
            "gpt-4o-mini".to_owned(),
            TokenPrice {
                input_per_million: 0.15,
                output_per_million: 0.60,
            },
        );
        Self {
            dated: PRICES_DATED.to_owned(),
            llm,
            // kie.ai's own pricing page (https://kie.ai/pricing) was not
            // found; its Veo docs say only "25% of Google's pricing". Unset
            // until the operator's prices.json says what a clip costs.
            kieai: KieAiPrices::default(),
            shotstack: ShotstackPrices::default(),
            // upload-post publishes plans (a free tier of 10 uploads a
            // month, https://docs.upload-post.com/guides/authentication), no
            // per-post price: unset.
            upload_post: UploadPostPrices::default(),
            aws: AwsPrices::default(),
        }
    }
}

/// A price file that is not what [`Prices`] reads.
#[derive(Debug, thiserror::Error)]
#[error("price file {path}: {message}")]
pub struct PricesError {
    pub path: String,
    pub message: String,
}

impl Prices {
    /// A price file's text over the defaults: the sections it names replace
    /// the defaults' (field by field), and its models join the defaults'.
    pub fn parse(text: &str, path: &str) -> Result<Self, PricesError> {
        let mut prices: Prices = serde_json::from_str(text).map_err(|e| PricesError {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for (model, price) in Prices::default().llm {
            prices.llm.entry(model).or_insert(price);
        }
        let negative = prices
            .llm
            .iter()
            .find(|(_, p)| p.input_per_million < 0.0 || p.output_per_million < 0.0);
        if let Some((model, _)) = negative {
            return Err(PricesError {
                path: path.to_owned(),
                message: format!("model {model}: a price cannot be negative"),
            });
        }
        Ok(prices)
    }

    /// The prices at `path`, or the defaults when `path` is absent and not
    /// `required` (the default file under the home folder is optional; one
    /// named by `PRICES_FILE` is not).
    pub fn load(path: &std::path::Path, required: bool) -> Result<Self, PricesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::default()),
            Err(e) => Err(PricesError {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// USD for `prompt` + `completion` tokens of `model`; `None` for a model
    /// the table does not price.
    pub fn tokens_usd(&self, model: &str, prompt: u64, completion: u64) -> Option<f64> {
        let price = self.llm.get(model)?;
        Some(
            (prompt as f64 * price.input_per_million
                + completion as f64 * price.output_per_million)
                / 1e6,
        )
    }

    /// USD per unit of a provider's work (`None` when unpriced), and the
    /// unit's name.
    pub fn provider_unit(&self, provider: Provider) -> (Option<f64>, &'static str) {
        match provider {
            Provider::KieAi => (
                self.kieai
                    .credits_per_clip
                    .zip(self.kieai.usd_per_credit)
                    .map(|(credits, usd)| credits * usd),
                "clips",
            ),
            Provider::Shotstack => (self.shotstack.usd_per_minute, "render minutes"),
            Provider::UploadPost => (self.upload_post.usd_per_post, "posts"),
        }
    }
}

/// A persona's model calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PersonaCost {
    pub persona: Persona,
    /// The model(s) that answered, comma-separated.
    pub model: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub usd: f64,
    /// False when a model it used is not in the price table.
    pub priced: bool,
}

/// A provider's accepted work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderCost {
    pub provider: Provider,
    /// Jobs the provider accepted and completed.
    pub jobs: u64,
    /// Clips, render minutes or posts.
    pub units: f64,
    pub unit: String,
    /// kie.ai's credits, when a clip's credits are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<f64>,
    pub usd: f64,
    pub priced: bool,
}

/// One line of the AWS estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AwsLine {
    pub service: String,
    pub units: f64,
    pub unit: String,
    pub usd: f64,
}

/// The orchestration estimate, from the run's own history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AwsCost {
    /// `ran on AWS` (ENGINE=stepfunctions) or `if it ran on AWS`.
    pub basis: String,
    pub lines: Vec<AwsLine>,
    pub usd: f64,
}

/// What a run cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunCost {
    pub personas: Vec<PersonaCost>,
    pub providers: Vec<ProviderCost>,
    pub aws: AwsCost,
    /// Models and providers, plus AWS when the run ran there.
    pub total_usd: f64,
    /// When the prices used were dated.
    pub prices_dated: String,
}

/// What a run left on the record, as far as its cost goes.
#[derive(Debug, Clone, Copy)]
pub struct CostInputs<'a> {
    pub spans: &'a [Span],
    pub jobs: &'a [ProviderJob],
    pub artifacts: &'a [Artifact],
    pub history: &'a [HistoryEvent],
    /// Callbacks received (each a webhook invocation and a queue message).
    pub webhook_events: usize,
    /// Whether the run ran on Step Functions.
    pub on_aws: bool,
}

/// The cost of a run, priced by `prices`.
pub fn run_cost(inputs: CostInputs<'_>, prices: &Prices) -> RunCost {
    let personas = persona_costs(inputs.spans, prices);
    let providers = provider_costs(inputs.jobs, inputs.artifacts, prices);
    let aws = aws_cost(&inputs, prices);
    let mut total_usd: f64 =
        personas.iter().map(|p| p.usd).sum::<f64>() + providers.iter().map(|p| p.usd).sum::<f64>();
    if inputs.on_aws {
        total_usd += aws.usd;
    }
    RunCost {
        personas,
        providers,
        aws,
        total_usd,
        prices_dated: prices.dated.clone(),
    }
}

/// The model, prompt and completion tokens of an LLM call's span.
pub fn llm_call(span: &Span) -> Option<(&str, u64, u64)> {
    let model = span.attributes.get(attr::RESPONSE_MODEL)?.as_str()?;
    let tokens = |key| span.attributes.get(key).and_then(Value::as_u64);
    Some((
        model,
        tokens(attr::INPUT_TOKENS).unwrap_or_default(),
        tokens(attr::OUTPUT_TOKENS).unwrap_or_default(),
    ))
}

fn persona_costs(spans: &[Span], prices: &Prices) -> Vec<PersonaCost> {
    let mut by_persona: BTreeMap<Persona, PersonaCost> = BTreeMap::new();
    for span in spans {
        let Some((model, prompt, completion)) = llm_call(span) else {
            continue;
        };
        let Some(persona) = span
            .attributes
            .get(attr::AGENT)
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<Persona>().ok())
        else {
            continue;
        };
        let cost = by_persona.entry(persona).or_insert_with(|| PersonaCost {
            persona,
            model: String::new(),
            calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            usd: 0.0,
            priced: true,
        });
        if !cost.model.split(", ").any(|m| m == model) {
            if !cost.model.is_empty() {
                cost.model.push_str(", ");
            }
            cost.model.push_str(model);
        }
        cost.calls += 1;
        cost.prompt_tokens += prompt;
        cost.completion_tokens += completion;
        match prices.tokens_usd(model, prompt, completion) {
            Some(usd) => cost.usd += usd,
            None => cost.priced = false,
        }
    }
    let mut costs: Vec<PersonaCost> = by_persona.into_values().collect();
    costs.sort_by_key(|c| Persona::ALL.iter().position(|p| *p == c.persona));
    costs
}

/// The units of one accepted, completed job: a clip, the render's minutes,
/// or the platforms it was published to.
pub fn job_units(job: &ProviderJob, artifacts: &[Artifact]) -> f64 {
    let names_job =
        |a: &&Artifact, key: &str| a.metadata.get(key).and_then(Value::as_str) == Some(&job.job_id);
    match job.provider {
        Provider::KieAi => 1.0,
        Provider::Shotstack => artifacts
            .iter()
            .filter(|a| a.artifact_type == ArtifactType::SHOTSTACK_TIMELINE)
            .find(|a| names_job(a, "render_id"))
            .map(|a| timeline_seconds(&a.metadata) / 60.0)
            .unwrap_or_default(),
        Provider::UploadPost => artifacts
            .iter()
            .filter(|a| a.artifact_type == ArtifactType::PUBLISH_URL)
            .filter(|a| names_job(a, "job_id"))
            .count() as f64,
    }
}

/// The length of a submitted timeline, in seconds: its clips end to end.
fn timeline_seconds(record: &Value) -> f64 {
    let clips = record
        .pointer("/timeline/tracks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|track| track.get("clips").and_then(Value::as_array))
        .flatten();
    clips
        .filter_map(|clip| {
            let start = clip
                .get("start")
                .and_then(Value::as_f64)
                .unwrap_or_default();
            Some(start + clip.get("length")?.as_f64()?)
        })
        .fold(0.0, f64::max)
}

fn provider_costs(
    jobs: &[ProviderJob],
    artifacts: &[Artifact],
    prices: &Prices,
) -> Vec<ProviderCost> {
    let mut costs = Vec::new();
    for provider in [Provider::KieAi, Provider::Shotstack, Provider::UploadPost] {
        let done: Vec<&ProviderJob> = jobs
            .iter()
            .filter(|j| {
                j.provider == provider && !j.is_intent() && j.status == JobStatus::Succeeded
            })
            .collect();
        if done.is_empty() {
            continue;
        }
        let units: f64 = done.iter().map(|j| job_units(j, artifacts)).sum();
        let (per_unit, unit) = prices.provider_unit(provider);
        costs.push(ProviderCost {
            provider,
            jobs: done.len() as u64,
            units,
            unit: unit.to_owned(),
            credits: match provider {
                Provider::KieAi => prices.kieai.credits_per_clip.map(|c| c * units),
                _ => None,
            },
            usd: per_unit.map(|p| p * units).unwrap_or_default(),
            priced: per_unit.is_some(),
        });
    }
    costs
}

/// The orchestration on AWS, from the run's history and record: each state
/// entered is a transition; each task message and each callback is a
/// Lambda invocation fed by SQS (send, receive, delete); each callback's
/// webhook is a Lambda invocation too. Lambda time is the model and tool
/// calls' time (the worker's own overhead is not counted); DynamoDB writes
/// are the items the run wrote (its reads are not estimated).
fn aws_cost(inputs: &CostInputs<'_>, prices: &Prices) -> AwsCost {
    let aws = &prices.aws;
    let transitions = inputs
        .history
        .iter()
        .filter(|e| e.event_type.ends_with("StateEntered"))
        .count() as f64;
    let tasks = inputs
        .history
        .iter()
        .filter(|e| e.event_type == "TaskScheduled")
        .count() as f64;
    let callbacks = inputs.webhook_events as f64;
    let invocations = tasks + 2.0 * callbacks;
    let busy_seconds: f64 = inputs
        .spans
        .iter()
        .filter(|s| {
            // The calls only: a persona's or a gate's span also lasts while
            // it waits for callbacks or a human, when no function runs.
            matches!(
                s.attributes.get(attr::OPERATION).and_then(Value::as_str),
                Some("chat" | "execute_tool")
            )
        })
        .filter_map(|s| Some((s.end_time? - s.start_time).num_milliseconds() as f64 / 1000.0))
        .sum();
    let gb_seconds = busy_seconds * aws.lambda_memory_mb / 1024.0;
    let sqs_requests = 3.0 * (tasks + callbacks);
    let writes = (inputs.artifacts.len()
        + 2 * inputs.jobs.len()
        + 2 * inputs.webhook_events
        + 2 * inputs.spans.len()) as f64;
    // Each line: the service, how many units it used, of what, and its
    // price for `per` of them.
    #[rustfmt::skip]
    let lines = [
        ("Step Functions",  transitions,  "state transitions",   aws.state_transitions_per_1000,       1000.0),
        ("Lambda requests", invocations,  "requests",            aws.lambda_requests_per_million,      1e6),
        ("Lambda compute",  gb_seconds,   "GB-s",                aws.lambda_gb_second,                 1.0),
        ("SQS",             sqs_requests, "requests",            aws.sqs_requests_per_million,         1e6),
        ("DynamoDB",        writes,       "write request units", aws.dynamodb_write_units_per_million, 1e6),
    ]
    .into_iter()
    .map(|(service, units, unit, price, per)| AwsLine {
        service: service.to_owned(),
        units,
        unit: unit.to_owned(),
        usd: units * price / per,
    })
    .collect::<Vec<_>>();
    AwsCost {
        basis: if inputs.on_aws {
            "ran on AWS"
        } else {
            "if it ran on AWS"
        }
        .to_owned(),
        usd: lines.iter().map(|l| l.usd).sum(),
        lines,
    }
}

/// What one span cost: an LLM call's tokens, or the provider work a tool
/// call submitted (the persona's completed jobs of that provider, on the
/// tool's first successful call: a repeat re-registers, it does not submit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpanCost {
    pub span_id: SpanId,
    pub units: f64,
    /// `tokens`, `clips`, `render minutes` or `posts`.
    pub unit: String,
    pub usd: f64,
    pub priced: bool,
}

impl SpanCost {
    /// `12 clips $3.60`, `1234 tokens $0.0004`.
    pub fn label(&self) -> String {
        let unpriced = if self.priced { "" } else { " (unpriced)" };
        format!(
            "{} {} {}{unpriced}",
            units(self.units),
            self.unit,
            usd(self.usd)
        )
    }
}

/// The provider a tool submits work to.
fn tool_provider(tool: &str) -> Option<Provider> {
    use crate::personas::tools::catalog;
    match tool {
        catalog::SUBMIT_CLIP_JOBS => Some(Provider::KieAi),
        catalog::RENDER_VIDEO => Some(Provider::Shotstack),
        catalog::PUBLISH_VIDEO => Some(Provider::UploadPost),
        _ => None,
    }
}

/// The cost of each span that has one.
pub fn span_costs(
    spans: &[Span],
    jobs: &[ProviderJob],
    artifacts: &[Artifact],
    prices: &Prices,
) -> Vec<SpanCost> {
    let mut costs = Vec::new();
    let mut charged: Vec<(Persona, Provider)> = Vec::new();
    for span in spans {
        if let Some((model, prompt, completion)) = llm_call(span) {
            let usd = prices.tokens_usd(model, prompt, completion);
            costs.push(SpanCost {
                span_id: span.span_id,
                units: (prompt + completion) as f64,
                unit: "tokens".to_owned(),
                usd: usd.unwrap_or_default(),
                priced: usd.is_some(),
            });
            continue;
        }
        let tool = span.attributes.get(attr::TOOL).and_then(Value::as_str);
        let persona = span
            .attributes
            .get(attr::AGENT)
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<Persona>().ok());
        let (Some(provider), Some(persona)) = (tool.and_then(tool_provider), persona) else {
            continue;
        };
        if span.error.is_some() || charged.contains(&(persona, provider)) {
            continue;
        }
        charged.push((persona, provider));
        let units: f64 = jobs
            .iter()
            .filter(|j| j.provider == provider && j.persona == persona && !j.is_intent())
            .filter(|j| j.status == JobStatus::Succeeded)
            .map(|j| job_units(j, artifacts))
            .sum();
        let (per_unit, unit) = prices.provider_unit(provider);
        costs.push(SpanCost {
            span_id: span.span_id,
            units,
            unit: unit.to_owned(),
            usd: per_unit.unwrap_or_default() * units,
            priced: per_unit.is_some(),
        });
    }
    costs
}

/// Whole units as such (`12`), others with two places (`1.60`).
pub fn units(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n}")
    } else {
        format!("{n:.2}")
    }
}

/// Dollars for people: amounts under a cent keep four places.
pub fn usd(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("${amount:.4}")
    } else {
        format!("${amount:.2}")
    }
}

impl RunCost {
    /// One line: the total and what it is made of.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let (prompt, completion) = self.personas.iter().fold((0, 0), |(p, c), x| {
            (p + x.prompt_tokens, c + x.completion_tokens)
        });
        if prompt + completion > 0 {
            parts.push(format!("{prompt}+{completion} tokens"));
        }
        for p in &self.providers {
            let unpriced = if p.priced { "" } else { " (unpriced)" };
            parts.push(format!(
                "{} {} {}{unpriced}",
                p.provider,
                units(p.units),
                p.unit
            ));
        }
        let aws = format!("AWS {} {}", self.aws.basis, usd(self.aws.usd));
        parts.push(aws);
        format!("{} ({})", usd(self.total_usd), parts.join(", "))
    }

    /// A line per persona, provider and AWS service: what `mw runs show`,
    /// the evidence bundle and `mw live-run` print under the summary.
    pub fn breakdown(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for p in &self.personas {
            let unpriced = if p.priced { "" } else { "  (unpriced model)" };
            lines.push(format!(
                "{:<12} {:>9}  {} calls, {} in + {} out tokens ({}){unpriced}",
                p.persona.as_str(),
                usd(p.usd),
                p.calls,
                p.prompt_tokens,
                p.completion_tokens,
                p.model
            ));
        }
        for p in &self.providers {
            let credits = p
                .credits
                .map(|c| format!(", {c} credits"))
                .unwrap_or_default();
            let unpriced = if p.priced {
                ""
            } else {
                "  (unpriced: set it in prices.json)"
            };
            lines.push(format!(
                "{:<12} {:>9}  {} {} of {} jobs{credits}{unpriced}",
                p.provider.as_str(),
                usd(p.usd),
                units(p.units),
                p.unit,
                p.jobs
            ));
        }
        for l in &self.aws.lines {
            lines.push(format!(
                "{:<12} {:>9}  {} {} ({}, {})",
                "aws",
                usd(l.usd),
                units(l.units),
                l.unit,
                l.service,
                self.aws.basis
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests;
