//! One typed `Config`, loaded once from the environment (and `.env` when
//! present) and validated before anything starts. Names match `template.yaml`.
//! A missing or malformed value is an error naming the variable. Secrets are
//! `SecretString`s; locally each has a generated default kept under the home
//! folder (`.myloware/secrets.env`), so the embedded stack needs no `.env`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::SecretString;

use crate::domain::ProvidersMode;
use crate::providers::ProviderUrls;
pub use crate::store::{redact_url, DatabaseConfig};
pub use crate::telemetry::otlp::OtlpConfig;
use crate::webhooks::WebhookSecrets;

impl WebhookSecrets {
    pub fn from_config(config: &Config) -> Self {
        Self {
            kieai: config.kieai_webhook_secret.clone(),
            upload_post: config.upload_post_webhook_secret.clone(),
        }
    }
}

impl DatabaseConfig {
    /// Parses a `DATABASE_URL`: `sqlite:PATH`, `sqlite://PATH`,
    /// `postgres://…` / `postgresql://…` or `dynamodb:TABLE`.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "a sqlite URL needs a file path, e.g. sqlite:.myloware/mw.db",
                ));
            }
            Ok(Self::Sqlite {
                path: PathBuf::from(path),
            })
        } else if let Some(table) = url.strip_prefix("dynamodb:") {
            let table = table.strip_prefix("//").unwrap_or(table);
            valid_table_name(table)?;
            Ok(Self::DynamoDb {
                table: table.to_owned(),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres {
                url: url.to_owned(),
            })
        } else {
            Err(ConfigError::new(
                "DATABASE_URL",
                "expected sqlite:PATH, postgres://USER@HOST:PORT/DB or dynamodb:TABLE",
            ))
        }
    }

    /// `sqlite`, `postgres` or `dynamodb`, as `STORE` names them.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
            Self::DynamoDb { .. } => "dynamodb",
        }
    }
}

/// DynamoDB's rule for table names: 3-255 of `[A-Za-z0-9_.-]`.
fn valid_table_name(table: &str) -> Result<(), ConfigError> {
    let ok = (3..=255).contains(&table.len())
        && table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "DYNAMODB_TABLE",
            format!("{table:?} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)"),
        ))
    }
}

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

/// Everything the processes need to start, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The local state folder (`MYLOWARE_HOME`, default `.myloware`).
    pub home: PathBuf,
    pub database: DatabaseConfig,
    pub providers_mode: ProvidersMode,
    /// Where persona and gate tasks are sent (`TASK_QUEUE_URL`; the local
    /// queue by default).
    pub task_queue_url: String,
    /// Where verified provider callbacks are buffered (`CALLBACK_QUEUE_URL`).
    pub callback_queue_url: String,
    /// The engine that runs the graphs (`ENGINE`).
    pub engine: EngineKind,
    /// Where people reach the API, for approval links (`PUBLIC_BASE_URL`);
    /// `None`: the address `mw serve` listens on.
    pub public_base_url: Option<String>,
    /// Where providers call back (`WEBHOOK_BASE_URL`); `None`: the public base.
    pub webhook_base_url: Option<String>,
    /// The providers' API roots (`KIEAI_BASE_URL`, `SHOTSTACK_BASE_URL`,
    /// `UPLOAD_POST_BASE_URL`); in mock mode the mock servers replace them.
    pub provider_urls: ProviderUrls,
    pub llm: LlmConfig,
    /// How long the mock providers take per job (`MOCK_LATENCY_MS`).
    pub mock_latency: std::time::Duration,
    /// The faults the mock providers inject (`MOCK_FAULTS`).
    pub mock_faults: crate::providers::mock_faults::MockFaults,
    /// When overdue provider jobs are asked about (`RECONCILE_AFTER_SECS`,
    /// `RECONCILE_INTERVAL_SECS`), and work left in doubt submitted again
    /// (`RECONCILE_IN_DOUBT_SECS`).
    pub reconcile: crate::pipeline::ReconcileSettings,
    /// The price table runs are costed with: `PRICES_FILE`, else
    /// `<home>/prices.json` when present, over the dated defaults
    /// (`pipeline::cost::Prices`).
    pub prices: crate::pipeline::cost::Prices,
    /// `BUDGET_USD`: a budget for every run, in place of its project's.
    pub budget_usd: Option<f64>,
    /// What the API's server takes on (`MAX_CONNECTIONS`, `MAX_IN_FLIGHT`,
    /// `HEADER_READ_TIMEOUT_SECS`, `REQUEST_TIMEOUT_SECS`).
    pub server: crate::api::server::ServerLimits,
    pub api_key: SecretString,
    pub hitl_secret: SecretString,
    pub kieai_webhook_secret: SecretString,
    pub upload_post_webhook_secret: SecretString,
    pub kieai_api_key: Option<SecretString>,
    pub shotstack_api_key: Option<SecretString>,
    pub upload_post_api_key: Option<SecretString>,
    /// The secrets whose value was generated on this machine (kept in
    /// `<home>/secrets.env`) rather than set: fine locally, but no provider
    /// knows a generated webhook secret.
    pub generated_secrets: Vec<&'static str>,
    /// Where closed spans are exported over OTLP/HTTP
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`); `None`:
    /// spans stay in the store only.
    pub otlp: Option<OtlpConfig>,
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `k=v,k2=v2`, values percent-decoded as the
/// OpenTelemetry spec says (`Basic%20…` → `Basic …`).
fn otlp_headers(text: &str) -> Result<Vec<(String, SecretString)>, ConfigError> {
    let mut headers = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            ConfigError::new(
                "OTEL_EXPORTER_OTLP_HEADERS",
                "expected key=value pairs separated by commas",
            )
        })?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::new(
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("{key:?} is not a header name"),
            ));
        }
        headers.push((
            key.to_owned(),
            SecretString::from(percent_decode(value.trim())),
        ));
    }
    Ok(headers)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mock providers answer after this long unless `MOCK_LATENCY_MS` says.
pub const DEFAULT_MOCK_LATENCY_MS: u64 = 250;

/// The local callback queue's URL.
pub const LOCAL_CALLBACK_QUEUE_URL: &str = "local://myloware/callbacks";

/// Which engine runs the graphs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineKind {
    /// The built-in durable engine, executions kept in SQLite or Postgres
    /// (`ENGINE=local`, the default).
    Local,
    /// AWS Step Functions, or an emulator at `AWS_ENDPOINT_URL`
    /// (`ENGINE=stepfunctions`). The state machines are the ones
    /// `STATE_MACHINE_ARNS` names (`project=arn,…`, as `template.yaml` sets
    /// it), else the ones named `<STATE_MACHINE_PREFIX><project>`
    /// (`mw statemachine deploy` creates those).
    StepFunctions {
        state_machine_arns: BTreeMap<String, String>,
        name_prefix: String,
    },
}

/// The names `mw statemachine deploy` gives the state machines, before the
/// project's name.
pub const DEFAULT_STATE_MACHINE_PREFIX: &str = "myloware-";

/// Which LLM plays the personas and Brendan.
#[derive(Debug, Clone)]
pub enum LlmConfig {
    /// Offline and deterministic: the default.
    Scripted,
    /// Any OpenAI-compatible chat-completions server (`LLM_BASE_URL`).
    OpenAi {
        base_url: String,
        api_key: Option<SecretString>,
        model: String,
    },
}

/// An optional `http(s)://` URL variable, without a trailing slash.
fn url_var(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match lookup(name) {
        None => Ok(None),
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(Some(url.trim_end_matches('/').to_owned()))
        }
        Some(_) => Err(ConfigError::new(
            name,
            "expected an http:// or https:// URL",
        )),
    }
}

/// An optional number of seconds (fractions allowed), more than zero.
fn seconds_var(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<std::time::Duration>, ConfigError> {
    match lookup(name) {
        None => Ok(None),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(seconds) if seconds.is_finite() && seconds > 0.0 => {
                Ok(Some(std::time::Duration::from_secs_f64(seconds)))
            }
            _ => Err(ConfigError::new(
                name,
                "expected a number of seconds above 0",
            )),
        },
    }
}

/// Secrets with a generated local default.
const GENERATED_SECRETS: &[&str] = &[
    "API_KEY",
    "HITL_SECRET",
    "KIEAI_WEBHOOK_SECRET",
    "UPLOAD_POST_WEBHOOK_SECRET",
];

/// Provider keys, required only when `PROVIDERS_MODE=live`.
const LIVE_KEYS: &[&str] = &["KIEAI_API_KEY", "SHOTSTACK_API_KEY", "UPLOAD_POST_API_KEY"];

/// Every secret: on Lambda each comes from the function's own secret in
/// Secrets Manager, never from the environment (`Config::from_secrets`).
pub const SECRETS: &[&str] = &[
    "API_KEY",
    "HITL_SECRET",
    "KIEAI_WEBHOOK_SECRET",
    "UPLOAD_POST_WEBHOOK_SECRET",
    "KIEAI_API_KEY",
    "SHOTSTACK_API_KEY",
    "UPLOAD_POST_API_KEY",
    "LLM_API_KEY",
    "OTEL_EXPORTER_OTLP_HEADERS",
];

/// The variable holding the ARN of a Lambda function's secret.
pub const SECRET_ARN_VAR: &str = "SECRET_ARN";

impl Config {
    /// Loads `.env` (without overriding the environment), then the
    /// environment, filling absent local secrets from `<home>/secrets.env`
    /// (generated on first use).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_as(Persist::Yes)
    }

    /// `load` for a command that only reads: secrets not yet generated are
    /// made for this process only, and nothing is written under the home
    /// folder (a mistyped folder leaves no trace).
    pub fn load_read_only() -> Result<Self, ConfigError> {
        Self::load_as(Persist::No)
    }

    fn load_as(persist: Persist) -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new(".env", e.to_string())),
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let home = PathBuf::from(env("MYLOWARE_HOME").unwrap_or_else(|| ".myloware".into()));
        let generated = local_secrets(&home, |name| env(name).is_some(), persist)?;
        let mut config =
            Self::from_lookup(|name| env(name).or_else(|| generated.get(name).cloned()))?;
        config.generated_secrets = GENERATED_SECRETS
            .iter()
            .copied()
            .filter(|name| env(name).is_none())
            .collect();
        Ok(config)
    }

    /// A Lambda function's config: the environment, with every secret
    /// taken from `secrets` (the function's own secret in Secrets Manager,
    /// `crate::aws::secrets`) and never from the environment. The secrets in
    /// `held` are the ones the function's code uses: one missing from
    /// `secrets` is an error naming it. The others are withheld: a random
    /// value for those that must have one (nothing can match it, so what
    /// checks it fails closed), none for the provider and LLM keys, which
    /// `PROVIDERS_MODE=live` then does not require. Nothing is generated
    /// under `MYLOWARE_HOME`.
    pub fn from_secrets(
        env: impl Fn(&str) -> Option<String>,
        secrets: &BTreeMap<String, String>,
        held: &[&str],
    ) -> Result<Self, ConfigError> {
        let withheld: BTreeMap<&str, Option<String>> = SECRETS
            .iter()
            .filter(|name| !held.contains(name))
            .map(|&name| {
                let stand_in = GENERATED_SECRETS.contains(&name).then(generate_secret);
                (name, stand_in)
            })
            .collect();
        let optional: Vec<&str> = withheld.keys().copied().collect();
        Self::validated(
            |name| match withheld.get(name) {
                Some(stand_in) => stand_in.clone(),
                None if SECRETS.contains(&name) => secrets.get(name).cloned(),
                None => env(name),
            },
            &optional,
        )
    }

    /// Builds and validates a config from a lookup of variable values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::validated(lookup, &[])
    }

    /// `from_lookup`, with the `optional` provider keys not required in
    /// live mode.
    fn validated(
        lookup: impl Fn(&str) -> Option<String>,
        optional: &[&str],
    ) -> Result<Self, ConfigError> {
        let home = PathBuf::from(lookup("MYLOWARE_HOME").unwrap_or_else(|| ".myloware".into()));
        let database = match lookup("DATABASE_URL") {
            Some(url) => DatabaseConfig::parse(&url)?,
            None => DatabaseConfig::Sqlite {
                path: home.join("mw.db"),
            },
        };
        let database = match lookup("STORE").as_deref() {
            None => database,
            Some("dynamodb") => {
                let table = lookup("DYNAMODB_TABLE")
                    .or_else(|| lookup("TABLE_NAME"))
                    .unwrap_or_else(|| "myloware".into());
                valid_table_name(&table)?;
                DatabaseConfig::DynamoDb { table }
            }
            Some(kind @ ("sqlite" | "postgres")) if kind == database.kind() => database,
            Some(kind @ ("sqlite" | "postgres")) => {
                return Err(ConfigError::new(
                    "STORE",
                    format!("STORE={kind} but DATABASE_URL names {}", database.kind()),
                ))
            }
            Some(other) => {
                return Err(ConfigError::new(
                    "STORE",
                    format!("{other:?} is not sqlite, postgres or dynamodb"),
                ))
            }
        };
        let providers_mode = match lookup("PROVIDERS_MODE") {
            Some(mode) => mode.parse().map_err(|_| {
                ConfigError::new("PROVIDERS_MODE", format!("{mode:?} is not mock or live"))
            })?,
            None => ProvidersMode::Mock,
        };
        let secret = |name: &'static str| -> Result<SecretString, ConfigError> {
            let value = lookup(name).ok_or_else(|| ConfigError::new(name, "is not set"))?;
            if value.len() < 16 {
                return Err(ConfigError::new(name, "is shorter than 16 characters"));
            }
            Ok(SecretString::from(value))
        };
        let live_key = |name: &'static str| -> Result<Option<SecretString>, ConfigError> {
            match (lookup(name), providers_mode) {
                (Some(v), _) => Ok(Some(SecretString::from(v))),
                (None, ProvidersMode::Live) if !optional.contains(&name) => Err(ConfigError::new(
                    name,
                    "is required when PROVIDERS_MODE=live",
                )),
                (None, _) => Ok(None),
            }
        };
        debug_assert_eq!(LIVE_KEYS.len(), 3);
        let task_queue_url = lookup("TASK_QUEUE_URL")
            .unwrap_or_else(|| crate::engine::definitions::LOCAL_TASK_QUEUE_URL.to_owned());
        let callback_queue_url =
            lookup("CALLBACK_QUEUE_URL").unwrap_or_else(|| LOCAL_CALLBACK_QUEUE_URL.to_owned());
        let engine = engine_kind(&lookup, &database)?;
        if engine != EngineKind::Local {
            for (name, url) in [
                ("TASK_QUEUE_URL", &task_queue_url),
                ("CALLBACK_QUEUE_URL", &callback_queue_url),
            ] {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::new(
                        name,
                        "ENGINE=stepfunctions needs an SQS queue URL (https://sqs.…)",
                    ));
                }
            }
        }
        let prices = match lookup("PRICES_FILE") {
            Some(path) => crate::pipeline::cost::Prices::load(Path::new(&path), true),
            None => crate::pipeline::cost::Prices::load(&home.join("prices.json"), false),
        }
        .map_err(|e| ConfigError::new("PRICES_FILE", e.to_string()))?;
        Ok(Self {
            home,
            database,
            providers_mode,
            callback_queue_url,
            engine,
            public_base_url: url_var(&lookup, "PUBLIC_BASE_URL")?,
            webhook_base_url: url_var(&lookup, "WEBHOOK_BASE_URL")?,
            otlp: match url_var(&lookup, "OTEL_EXPORTER_OTLP_ENDPOINT")? {
                None => None,
                Some(endpoint) => Some(OtlpConfig {
                    endpoint,
                    headers: otlp_headers(
                        &lookup("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default(),
                    )?,
                }),
            },
            provider_urls: {
                let live = ProviderUrls::live();
                ProviderUrls {
                    kieai: url_var(&lookup, "KIEAI_BASE_URL")?.unwrap_or(live.kieai),
                    shotstack: url_var(&lookup, "SHOTSTACK_BASE_URL")?.unwrap_or(live.shotstack),
                    shotstack_stage: match lookup("SHOTSTACK_ENV") {
                        None => live.shotstack_stage,
                        Some(stage) => stage
                            .parse()
                            .map_err(|e: String| ConfigError::new("SHOTSTACK_ENV", e))?,
                    },
                    upload_post: url_var(&lookup, "UPLOAD_POST_BASE_URL")?
                        .unwrap_or(live.upload_post),
                }
            },
            llm: match url_var(&lookup, "LLM_BASE_URL")? {
                None => LlmConfig::Scripted,
                Some(base_url) => LlmConfig::OpenAi {
                    base_url,
                    api_key: lookup("LLM_API_KEY").map(SecretString::from),
                    model: lookup("LLM_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
                },
            },
            mock_latency: match lookup("MOCK_LATENCY_MS") {
                None => std::time::Duration::from_millis(DEFAULT_MOCK_LATENCY_MS),
                Some(ms) => {
                    std::time::Duration::from_millis(ms.parse().map_err(|_| {
                        ConfigError::new("MOCK_LATENCY_MS", "expected milliseconds")
                    })?)
                }
            },
            mock_faults: match lookup("MOCK_FAULTS") {
                None => Default::default(),
                Some(text) => text
                    .parse()
                    .map_err(|e: String| ConfigError::new("MOCK_FAULTS", e))?,
            },
            reconcile: crate::pipeline::ReconcileSettings {
                after: seconds_var(&lookup, "RECONCILE_AFTER_SECS")?
                    .unwrap_or(crate::pipeline::ReconcileSettings::DEFAULT.after),
                interval: seconds_var(&lookup, "RECONCILE_INTERVAL_SECS")?
                    .unwrap_or(crate::pipeline::ReconcileSettings::DEFAULT.interval),
                in_doubt: seconds_var(&lookup, "RECONCILE_IN_DOUBT_SECS")?
                    .unwrap_or(crate::pipeline::ReconcileSettings::DEFAULT.in_doubt),
            },
            server: {
                let defaults = crate::api::server::ServerLimits::for_this_process();
                let count = |name: &'static str, default: usize| match lookup(name) {
                    None => Ok(default),
                    Some(n) => n
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| ConfigError::new(name, "expected a whole number above 0")),
                };
                crate::api::server::ServerLimits {
                    max_connections: count("MAX_CONNECTIONS", defaults.max_connections)?,
                    max_in_flight: count("MAX_IN_FLIGHT", defaults.max_in_flight)?,
                    header_read_timeout: seconds_var(&lookup, "HEADER_READ_TIMEOUT_SECS")?
                        .unwrap_or(defaults.header_read_timeout),
                    request_timeout: seconds_var(&lookup, "REQUEST_TIMEOUT_SECS")?
                        .unwrap_or(defaults.request_timeout),
                }
            },
            prices,
            budget_usd: match lookup("BUDGET_USD") {
                None => None,
                Some(usd) => Some(
                    usd.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|usd| usd.is_finite() && *usd >= 0.0)
                        .ok_or_else(|| {
                            ConfigError::new("BUDGET_USD", "expected dollars, e.g. 2.50")
                        })?,
                ),
            },
            task_queue_url,
            api_key: secret("API_KEY")?,
            hitl_secret: secret("HITL_SECRET")?,
            kieai_webhook_secret: secret("KIEAI_WEBHOOK_SECRET")?,
            upload_post_webhook_secret: secret("UPLOAD_POST_WEBHOOK_SECRET")?,
            generated_secrets: Vec::new(),
            kieai_api_key: live_key(LIVE_KEYS[0])?,
            shotstack_api_key: live_key(LIVE_KEYS[1])?,
            upload_post_api_key: live_key(LIVE_KEYS[2])?,
        })
    }
}

/// `ENGINE`, checked against the store: the local engine keeps its
/// executions beside the runs, so it needs SQLite or Postgres.
fn engine_kind(
    lookup: &impl Fn(&str) -> Option<String>,
    database: &DatabaseConfig,
) -> Result<EngineKind, ConfigError> {
    match lookup("ENGINE").as_deref() {
        None | Some("local") => match database {
            DatabaseConfig::DynamoDb { .. } => Err(ConfigError::new(
                "ENGINE",
                "the local engine keeps executions in SQLite or Postgres; \
                 STORE=dynamodb runs with ENGINE=stepfunctions",
            )),
            _ => Ok(EngineKind::Local),
        },
        Some("stepfunctions") => {
            let mut state_machine_arns = BTreeMap::new();
            for pair in lookup("STATE_MACHINE_ARNS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                match pair.split_once('=') {
                    Some((project, arn)) if arn.starts_with("arn:") => {
                        state_machine_arns.insert(project.trim().to_owned(), arn.trim().to_owned());
                    }
                    _ => {
                        return Err(ConfigError::new(
                            "STATE_MACHINE_ARNS",
                            format!("{pair:?}: expected project=arn:aws:states:…"),
                        ))
                    }
                }
            }
            Ok(EngineKind::StepFunctions {
                state_machine_arns,
                name_prefix: lookup("STATE_MACHINE_PREFIX")
                    .unwrap_or_else(|| DEFAULT_STATE_MACHINE_PREFIX.to_owned()),
            })
        }
        Some(other) => Err(ConfigError::new(
            "ENGINE",
            format!("{other:?} is not local or stepfunctions"),
        )),
    }
}

/// Whether generated local secrets are saved under the home folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    Yes,
    No,
}

/// Reads `<home>/secrets.env`, generating the secrets that neither the
/// environment (`is_set`) nor the file has yet, and saving them (mode 0600)
/// when `persist` says so.
fn local_secrets(
    home: &Path,
    is_set: impl Fn(&str) -> bool,
    persist: Persist,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let file = home.join("secrets.env");
    let io_error =
        |e: std::io::Error| ConfigError::new("MYLOWARE_HOME", format!("{}: {e}", file.display()));
    let mut secrets: BTreeMap<String, String> = match std::fs::read_to_string(&file) {
        Ok(text) => text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(io_error(e)),
    };
    let missing: Vec<&str> = GENERATED_SECRETS
        .iter()
        .copied()
        .filter(|name| !is_set(name) && !secrets.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let save = persist == Persist::Yes;
        for name in missing {
            secrets.insert(name.to_owned(), generate_secret());
        }
        if save {
            crate::private_files::create_dir(home).map_err(io_error)?;
            let text: String = secrets.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            crate::private_files::write(&file, text).map_err(io_error)?;
        }
    }
    Ok(secrets)
}

fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = GENERATED_SECRETS
            .iter()
            .map(|k| (k.to_string(), "0123456789abcdef-local".to_string()))
            .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        move |k| map.get(k).cloned()
    }

    #[test]
    fn otlp_endpoint_and_headers_are_parsed() {
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert!(config.otlp.is_none());
        let config = Config::from_lookup(lookup(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://api.smith.langchain.com/otel/",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=lsv2_abc, Langsmith-Project=mw,Authorization=Basic%20cGs6c2s=",
            ),
        ]))
        .unwrap();
        let otlp = config.otlp.unwrap();
        assert_eq!(otlp.endpoint, "https://api.smith.langchain.com/otel");
        let headers: Vec<(&str, &str)> = otlp
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-api-key", "lsv2_abc"),
                ("Langsmith-Project", "mw"),
                ("Authorization", "Basic cGs6c2s=")
            ]
        );
        let err = Config::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_HEADERS");
        let err = Config::from_lookup(lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]))
            .unwrap_err();
        assert_eq!(err.variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
    }

    #[test]
    fn defaults_to_embedded_sqlite_and_mock_providers() {
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            config.database,
            DatabaseConfig::Sqlite {
                path: ".myloware/mw.db".into()
            }
        );
        assert_eq!(config.providers_mode, ProvidersMode::Mock);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        let err = Config::from_lookup(lookup(&[("PROVIDERS_MODE", "prod")])).unwrap_err();
        assert_eq!(err.variable, "PROVIDERS_MODE");
        let err = Config::from_lookup(lookup(&[("PROVIDERS_MODE", "live")])).unwrap_err();
        assert_eq!(err.variable, "KIEAI_API_KEY");
        assert!(err.to_string().contains("PROVIDERS_MODE=live"), "{err}");
        let err = Config::from_lookup(lookup(&[("API_KEY", "short")])).unwrap_err();
        assert_eq!(err.variable, "API_KEY");
        let err = Config::from_lookup(lookup(&[("WEBHOOK_BASE_URL", "ftp://x")])).unwrap_err();
        assert_eq!(err.variable, "WEBHOOK_BASE_URL");
        let err = Config::from_lookup(lookup(&[("ENGINE", "stepfunctions")])).unwrap_err();
        assert_eq!(err.variable, "TASK_QUEUE_URL", "{err}");
        let err = Config::from_lookup(lookup(&[("STORE", "dynamodb")])).unwrap_err();
        assert_eq!(err.variable, "ENGINE", "{err}");
        let err = Config::from_lookup(lookup(&[("STORE", "postgres")])).unwrap_err();
        assert_eq!(err.variable, "STORE", "{err}");
        let err = Config::from_lookup(lookup(&[("DYNAMODB_TABLE", "x"), ("STORE", "dynamodb")]))
            .unwrap_err();
        assert_eq!(err.variable, "DYNAMODB_TABLE", "{err}");
    }

    #[test]
    fn the_aws_path_is_configured_by_store_engine_and_queue_urls() {
        let config = Config::from_lookup(lookup(&[
            ("STORE", "dynamodb"),
            ("ENGINE", "stepfunctions"),
            ("TASK_QUEUE_URL", "http://127.0.0.1:5123/123456789012/tasks"),
            (
                "CALLBACK_QUEUE_URL",
                "http://127.0.0.1:5123/123456789012/callbacks",
            ),
            (
                "STATE_MACHINE_ARNS",
                "aismr=arn:aws:states:us-east-1:123456789012:stateMachine:a",
            ),
        ]))
        .unwrap();
        assert_eq!(
            config.database,
            DatabaseConfig::DynamoDb {
                table: "myloware".into()
            }
        );
        let EngineKind::StepFunctions {
            state_machine_arns,
            name_prefix,
        } = config.engine
        else {
            panic!("{:?}", config.engine)
        };
        assert_eq!(
            state_machine_arns["aismr"],
            "arn:aws:states:us-east-1:123456789012:stateMachine:a"
        );
        assert_eq!(name_prefix, DEFAULT_STATE_MACHINE_PREFIX);
        let aliased = Config::from_lookup(lookup(&[
            ("STORE", "dynamodb"),
            ("TABLE_NAME", "runs-table"),
            ("ENGINE", "stepfunctions"),
            ("TASK_QUEUE_URL", "https://sqs.example/1/t"),
            ("CALLBACK_QUEUE_URL", "https://sqs.example/1/c"),
        ]))
        .unwrap();
        assert_eq!(
            aliased.database,
            DatabaseConfig::DynamoDb {
                table: "runs-table".into()
            }
        );
    }

    #[test]
    fn database_urls_parse() {
        assert_eq!(
            DatabaseConfig::parse("sqlite://tmp/x.db?mode=rwc").unwrap(),
            DatabaseConfig::Sqlite {
                path: "tmp/x.db".into()
            }
        );
        assert!(matches!(
            DatabaseConfig::parse("postgresql://u@h/db").unwrap(),
            DatabaseConfig::Postgres { .. }
        ));
        assert!(DatabaseConfig::parse("sqlite::memory:").is_err());
    }

    #[test]
    fn passwords_never_show() {
        let db = DatabaseConfig::parse("postgres://mw:hunter2hunter2@db:5432/mw").unwrap();
        assert!(!format!("{db:?} {db}").contains("hunter2"));
        let config = Config::from_lookup(lookup(&[("API_KEY", "super-secret-api-key-1")])).unwrap();
        assert!(!format!("{config:?}").contains("super-secret"));
        assert_eq!(config.api_key.expose_secret(), "super-secret-api-key-1");
    }

    #[test]
    fn on_lambda_secrets_come_from_the_functions_secret_only() {
        let env = |name: &str| match name {
            "PROVIDERS_MODE" => Some("live".to_owned()),
            // Never read: on Lambda the environment holds no secret.
            "API_KEY" => Some("from-the-environment-0123".to_owned()),
            _ => None,
        };
        let held = [
            "HITL_SECRET",
            "KIEAI_WEBHOOK_SECRET",
            "UPLOAD_POST_WEBHOOK_SECRET",
        ];
        let secrets: BTreeMap<String, String> = held
            .iter()
            .map(|name| (name.to_string(), format!("{name}-0123456789abcdef")))
            .collect();
        let config = Config::from_secrets(env, &secrets, &held).unwrap();
        assert_eq!(
            config.kieai_webhook_secret.expose_secret(),
            "KIEAI_WEBHOOK_SECRET-0123456789abcdef"
        );
        assert!(
            config.kieai_api_key.is_none(),
            "withheld, even in live mode"
        );
        assert!(config.generated_secrets.is_empty());
        let api_key = config.api_key.expose_secret().to_owned();
        assert_ne!(api_key, "from-the-environment-0123");
        let again = Config::from_secrets(env, &secrets, &held).unwrap();
        assert_ne!(again.api_key.expose_secret(), api_key, "random each start");

        let err = Config::from_secrets(env, &secrets, &["API_KEY"]).unwrap_err();
        assert_eq!(err.variable, "API_KEY", "held but not in the secret");
        let err = Config::from_secrets(env, &secrets, &["KIEAI_API_KEY"]).unwrap_err();
        assert_eq!(
            err.variable, "KIEAI_API_KEY",
            "held keys stay required in live mode"
        );
    }

    #[test]
    fn local_secrets_are_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        // Read only: made for this process, nothing written.
        let passing = local_secrets(&home, |_| false, Persist::No).unwrap();
        assert_eq!(passing.len(), GENERATED_SECRETS.len());
        assert!(!home.exists());
        let first = local_secrets(&home, |_| false, Persist::Yes).unwrap();
        assert_eq!(first.len(), GENERATED_SECRETS.len());
        assert_ne!(first, passing);
        let again = local_secrets(&home, |_| false, Persist::Yes).unwrap();
        assert_eq!(first, again);
        let read = local_secrets(&home, |_| false, Persist::No).unwrap();
        assert_eq!(read, first, "a reading command finds the secrets kept");
        let only_some = local_secrets(&home, |n| n == "API_KEY", Persist::Yes).unwrap();
        assert_eq!(only_some, first, "existing secrets stay as they are");
    }
}
