//! `mw providers check`: what going live needs, checked before the first
//! run rather than discovered by it. Each provider's key is tried with a
//! call that changes nothing (kie.ai's credit balance, Shotstack's template
//! list on the configured stage, upload-post's `me`); the webhook secrets
//! are looked at (a secret generated on this machine is one no provider
//! knows); upload-post's webhook is registered (its settings are the
//! account's, not an upload's); and the callback URLs the providers will be
//! given are printed with whether anything outside this machine could reach
//! them.
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ProviderClients, ProviderError};
use crate::domain::{Provider, ProvidersMode};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Works, but something will bite later.
    Warn,
    /// Runs will fail (or never settle) until this is fixed.
    Fail,
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What was checked: `kieai key`, `upload-post webhook`, `callback URL`, …
    pub subject: String,
    pub status: CheckStatus,
    pub summary: String,
    /// What to do about it, and what else is worth knowing.
    pub details: Vec<String>,
}

impl Check {
    fn new(subject: impl Into<String>, status: CheckStatus, summary: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            status,
            summary: summary.into(),
            details: Vec::new(),
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }
}

/// What the checks need to know besides the clients.
#[derive(Debug, Clone)]
pub struct CheckInput {
    pub mode: ProvidersMode,
    /// Where providers call back (`WEBHOOK_BASE_URL`, else the API's URL).
    pub webhook_base_url: String,
    pub kieai_webhook_secret: SecretString,
    pub upload_post_webhook_secret: SecretString,
    /// Which webhook secrets were generated on this machine rather than set.
    pub kieai_secret_generated: bool,
    pub upload_post_secret_generated: bool,
    /// From submission to the reconciler's first question.
    pub reconcile_after: Duration,
    /// Register upload-post's webhook (it changes the account's settings).
    pub register_webhook: bool,
}

/// Runs every check.
pub async fn check_providers(clients: &ProviderClients, input: &CheckInput) -> Vec<Check> {
    let (kieai, shotstack, upload_post, reachable) = tokio::join!(
        check_kieai(clients, input),
        check_shotstack(clients),
        check_upload_post(clients, input),
        check_callback_urls(input),
    );
    let mut checks = Vec::new();
    checks.extend(kieai);
    checks.push(shotstack);
    checks.extend(upload_post);
    checks.extend(reachable);
    checks
}

fn key_failure(provider: Provider, error: &ProviderError, fix: &str) -> Check {
    Check::new(
        format!("{provider} key"),
        CheckStatus::Fail,
        format!("the key does not work: {error}"),
    )
    .detail(fix.to_owned())
}

async fn check_kieai(clients: &ProviderClients, input: &CheckInput) -> Vec<Check> {
    let key = match clients.kieai.credits().await {
        Ok(credits) => Check::new(
            "kieai key",
            CheckStatus::Ok,
            format!("the key works; {credits} credits left"),
        ),
        Err(error) => key_failure(
            Provider::KieAi,
            &error,
            "set KIEAI_API_KEY to a key from https://kie.ai/api-key",
        ),
    };
    let unsigned = "a callback without X-Webhook-Signature (HMAC key not enabled at kie.ai) is \
                    stored as `missing` and not acted on";
    let secret = if input.kieai_secret_generated && input.mode == ProvidersMode::Live {
        Check::new(
            "kieai webhook secret",
            CheckStatus::Fail,
            "KIEAI_WEBHOOK_SECRET was generated on this machine: kie.ai signs with a key of its \
             own, so every callback would be refused",
        )
        .detail(
            "enable the webhook HMAC key in kie.ai's settings (https://kie.ai/settings) and set \
             KIEAI_WEBHOOK_SECRET to it",
        )
    } else {
        Check::new(
            "kieai webhook secret",
            CheckStatus::Ok,
            "KIEAI_WEBHOOK_SECRET is set: callbacks are checked against it \
             (X-Webhook-Signature over taskId.timestamp)",
        )
    };
    vec![
        key,
        secret.detail(format!(
            "{unsigned}; its job is settled by asking kie.ai (record-info) {}s after submission",
            input.reconcile_after.as_secs()
        )),
    ]
}

async fn check_shotstack(clients: &ProviderClients) -> Check {
    let stage = clients.shotstack.stage();
    match clients.shotstack.check_key().await {
        Ok(()) => Check::new(
            "shotstack key",
            CheckStatus::Ok,
            format!("the key works on stage {}", stage.as_str()),
        )
        .detail(
            "Shotstack's callbacks are unsigned: each one is confirmed with Shotstack's API \
             before it counts",
        ),
        Err(error) => {
            let (other, kind) = match stage {
                super::shotstack::ShotstackStage::Production => ("stage", "sandbox"),
                super::shotstack::ShotstackStage::Sandbox => ("v1", "production"),
            };
            key_failure(
                Provider::Shotstack,
                &error,
                &format!(
                    "keys belong to one stage and this one was tried on {}: a {kind} key needs \
                     SHOTSTACK_ENV={other} (keys: https://dashboard.shotstack.io)",
                    stage.as_str()
                ),
            )
        }
    }
}

async fn check_upload_post(clients: &ProviderClients, input: &CheckInput) -> Vec<Check> {
    let key = match clients.upload_post.me().await {
        Ok(account) => Check::new(
            "upload-post key",
            CheckStatus::Ok,
            format!(
                "the key works (plan {}, {})",
                account.plan.as_deref().unwrap_or("unknown"),
                account.email.as_deref().unwrap_or("no email given")
            ),
        ),
        Err(error) => {
            return vec![key_failure(
                Provider::UploadPost,
                &error,
                "set UPLOAD_POST_API_KEY to a key from https://app.upload-post.com (API keys)",
            )]
        }
    };
    let url = callback_url(&input.webhook_base_url, Provider::UploadPost);
    let fallback = format!(
        "without its webhook, an upload settles by asking upload-post's status endpoint {}s \
         after submission, and every {}s after that at most",
        input.reconcile_after.as_secs(),
        3_600
    );
    if !input.register_webhook {
        return vec![
            key,
            Check::new(
                "upload-post webhook",
                CheckStatus::Warn,
                "not registered (--no-register)",
            )
            .detail(format!(
                "run again without --no-register to point it at {url}"
            ))
            .detail(fallback),
        ];
    }
    let webhook = match clients.upload_post.set_webhook(&url).await {
        Err(error) => Check::new(
            "upload-post webhook",
            CheckStatus::Fail,
            format!("could not register {url}: {error}"),
        )
        .detail(fallback),
        Ok(registration) => {
            let check = Check::new(
                "upload-post webhook",
                CheckStatus::Ok,
                format!("registered {url} (at {})", registration.settings_url),
            );
            match registration.webhook_secret {
                Some(given) if same_secret(&given, &input.upload_post_webhook_secret) => {
                    check.detail("upload-post signs deliveries with UPLOAD_POST_WEBHOOK_SECRET")
                }
                Some(_) => Check {
                    status: CheckStatus::Fail,
                    ..check.detail(
                        "upload-post signs its deliveries with a secret other than \
                         UPLOAD_POST_WEBHOOK_SECRET: copy the webhook secret from upload-post's \
                         dashboard into it, or every delivery is refused",
                    )
                },
                None if input.upload_post_secret_generated && input.mode == ProvidersMode::Live => {
                    Check {
                        status: CheckStatus::Warn,
                        ..check.detail(
                            "UPLOAD_POST_WEBHOOK_SECRET was generated on this machine and \
                             upload-post gave no secret back: set it to the webhook secret of \
                             upload-post's dashboard, if the account has one",
                        )
                    }
                }
                None => check.detail(
                    "upload-post gave no signing secret back: an unsigned delivery is stored as \
                     `missing` and not acted on",
                ),
            }
            .detail(fallback)
        }
    };
    vec![key, webhook]
}

/// Whether two secrets are the same, compared through their digests.
fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    let digest = |s: &SecretString| Sha256::digest(s.expose_secret().as_bytes());
    digest(a) == digest(b)
}

/// The URL `provider` is told to call back.
pub fn callback_url(base: &str, provider: Provider) -> String {
    format!("{}/v1/webhooks/{provider}", base.trim_end_matches('/'))
}

async fn check_callback_urls(input: &CheckInput) -> Vec<Check> {
    let base = input.webhook_base_url.trim_end_matches('/');
    let mut check = if unreachable_from_outside(base) {
        let status = match input.mode {
            ProvidersMode::Live => CheckStatus::Fail,
            ProvidersMode::Mock => CheckStatus::Ok,
        };
        Check::new(
            "callback URLs",
            status,
            format!("{base} is a loopback or private address: only this machine can reach it"),
        )
        .detail(
            "the real providers need an address on the internet: run a tunnel (e.g. \
             `cloudflared tunnel --url http://localhost:8080`, then \
             WEBHOOK_BASE_URL=https://<name>.trycloudflare.com), or use the deployed API's URL \
             (the ApiUrl output of `sam deploy`)",
        )
    } else if base.starts_with("http://") && input.mode == ProvidersMode::Live {
        Check::new(
            "callback URLs",
            CheckStatus::Warn,
            format!("{base} is plain http: callbacks would cross the internet unencrypted"),
        )
    } else {
        Check::new(
            "callback URLs",
            CheckStatus::Ok,
            format!("{base} is a public address (not probed from outside)"),
        )
    };
    for provider in [Provider::KieAi, Provider::Shotstack, Provider::UploadPost] {
        check = check.detail(format!("{provider}: {}", callback_url(base, provider)));
    }
    let health = format!("{base}/health");
    let answered = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(http) => http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    };
    check = check.detail(if answered {
        format!("{base}/health answers from this machine")
    } else {
        format!(
            "{base}/health does not answer from this machine: is the API (`mw serve`) running there?"
        )
    });
    vec![check]
}

/// Whether providers on the internet could reach `url` at all.
pub fn unreachable_from_outside(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host == "localhost"
        || host.starts_with("127.")
        || host.starts_with("10.")
        || host.starts_with("192.168.")
        || host.starts_with("169.254.")
        || host == "0.0.0.0"
        || host.starts_with('[')
        || host
            .strip_prefix("172.")
            .and_then(|r| r.split('.').next()?.parse::<u8>().ok())
            .is_some_and(|b| (16..=31).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::unreachable_from_outside;

    #[test]
    fn loopback_and_private_hosts_are_unreachable_from_outside() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "https://10.1.2.3",
            "http://192.168.1.5:80",
            "http://172.20.0.1",
            "http://[::1]:8080",
        ] {
            assert!(unreachable_from_outside(url), "{url}");
        }
        for url in [
            "https://api.example.com",
            "https://172.32.0.1",
            "https://abc.execute-api.us-east-1.amazonaws.com",
        ] {
            assert!(!unreachable_from_outside(url), "{url}");
        }
    }
}
