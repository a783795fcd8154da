//! Which function is starting, and the secrets its code uses. On Lambda a
//! function holds exactly these in its own Secrets Manager secret (the ARN
//! in `SECRET_ARN`), read once at cold start and overlaid on the environment
//! before the config is validated; `template.yaml` writes each function's
//! secret with these keys and no others (`scripts/check_template.py` checks
//! the two agree). Without `SECRET_ARN` (`cargo lambda watch`, a laptop) the
//! config loads as everywhere else.
use aws_config::SdkConfig;

use crate::aws::secrets::SecretError;
use crate::config::{ConfigError, SECRET_ARN_VAR};
use crate::Config;

/// The six Lambda functions (`functions/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Chat,
    Webhook,
    Hitl,
    Runs,
    Worker,
    Callbacks,
}

impl Function {
    /// The secrets this function's code uses, and why.
    pub const fn secrets(self) -> &'static [&'static str] {
        match self {
            // x-api-key; Brendan's approval links (signed); Brendan's LLM.
            Self::Chat => &[
                "API_KEY",
                "HITL_SECRET",
                "LLM_API_KEY",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
            // kie.ai's and upload-post's signatures; the token in Shotstack's
            // callback URL (signed with the HITL secret). No provider or LLM key.
            Self::Webhook => &[
                "HITL_SECRET",
                "KIEAI_WEBHOOK_SECRET",
                "UPLOAD_POST_WEBHOOK_SECRET",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
            // x-api-key on the link route; signing and checking approval links.
            Self::Hitl => &["API_KEY", "HITL_SECRET", "OTEL_EXPORTER_OTLP_HEADERS"],
            // x-api-key.
            Self::Runs => &["API_KEY", "OTEL_EXPORTER_OTLP_HEADERS"],
            // The personas' LLM and provider submissions; gate links and
            // Shotstack's callback token (signed).
            Self::Worker => &[
                "HITL_SECRET",
                "KIEAI_API_KEY",
                "SHOTSTACK_API_KEY",
                "UPLOAD_POST_API_KEY",
                "LLM_API_KEY",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
            // Confirming callbacks with, and asking about overdue jobs of,
            // the providers' APIs.
            Self::Callbacks => &[
                "KIEAI_API_KEY",
                "SHOTSTACK_API_KEY",
                "UPLOAD_POST_API_KEY",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ],
        }
    }

    /// The function's config: with `SECRET_ARN` set, the environment
    /// overlaid with that secret's values (`with_secret`); without,
    /// `Config::load`.
    pub async fn config(self) -> Result<Config, StartupError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match env(SECRET_ARN_VAR) {
            Some(arn) => {
                self.with_secret(&crate::aws::sdk_config().await, &arn, env)
                    .await
            }
            None => Ok(Config::load()?),
        }
    }

    /// The config of `env` with every secret from the secret `arn`
    /// (`Config::from_secrets`, holding `secrets()`). An error names the
    /// secret when it cannot be read or lacks a value the function uses.
    pub async fn with_secret(
        self,
        sdk: &SdkConfig,
        arn: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, StartupError> {
        let secrets = crate::aws::secrets::read(sdk, arn).await?;
        Config::from_secrets(env, &secrets, self.secrets()).map_err(|source| {
            if self.secrets().contains(&source.variable) {
                StartupError::FromSecret {
                    arn: arn.to_owned(),
                    source,
                }
            } else {
                StartupError::Config(source)
            }
        })
    }
}

/// Why a function could not load its configuration. Its `Debug` is its
/// message: a `main` that returns it prints it so, in the function's log.
#[derive(thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{source} (the function reads it from its secret {arn})")]
    FromSecret {
        arn: String,
        #[source]
        source: ConfigError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
