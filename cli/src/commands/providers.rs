//! `mw providers check`: before going live, each provider's key tried with a
//! call that changes nothing, the webhook secrets looked at, upload-post's
//! webhook registered, and the callback URLs judged. Exit 1 when something
//! must be fixed first.
use std::process::ExitCode;

use anyhow::Context;
use myloware::domain::ProvidersMode;
use myloware::providers::check::{check_providers, CheckInput, CheckStatus};
use myloware::providers::ProviderClients;
use myloware::wiring::{self, ServeFile};

use crate::cli::ProvidersCommand;
use crate::output::{outln, print_json};

pub async fn run(cmd: ProvidersCommand, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let ProvidersCommand::Check(args) = cmd;
    // The mocks, in mock mode: the checks then show what they would check.
    let (mocks, urls) = wiring::start_mocks(config)
        .await
        .context("starting the mock providers")?;
    let clients = ProviderClients::new(
        &urls,
        wiring::provider_keys(config),
        wiring::PROVIDER_TIMEOUT,
    );
    let webhook_base_url = config
        .webhook_base_url
        .clone()
        .or_else(|| config.public_base_url.clone())
        .or_else(|| ServeFile::read(&config.home).map(|s| s.url))
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let generated = |name: &str| config.generated_secrets.contains(&name);
    let input = CheckInput {
        mode: config.providers_mode,
        webhook_base_url,
        kieai_webhook_secret: config.kieai_webhook_secret.clone(),
        upload_post_webhook_secret: config.upload_post_webhook_secret.clone(),
        kieai_secret_generated: generated("KIEAI_WEBHOOK_SECRET"),
        upload_post_secret_generated: generated("UPLOAD_POST_WEBHOOK_SECRET"),
        reconcile_after: config.reconcile.after,
        register_webhook: !args.no_register,
    };
    let checks = check_providers(&clients, &input).await;
    if let Some(mocks) = mocks {
        mocks.shutdown().await;
    }
    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    if args.json {
        print_json(&serde_json::json!({
            "providers_mode": config.providers_mode,
            "checks": checks,
        }))?;
    } else {
        match config.providers_mode {
            ProvidersMode::Mock => outln!(
                "PROVIDERS_MODE=mock: these are the mock providers (set PROVIDERS_MODE=live and \
                 the keys to check the real ones)"
            ),
            ProvidersMode::Live => outln!("PROVIDERS_MODE=live"),
        }
        for check in &checks {
            let mark = match check.status {
                CheckStatus::Ok => "✓",
                CheckStatus::Warn => "!",
                CheckStatus::Fail => "✗",
            };
            outln!("\n{mark} {}: {}", check.subject, check.summary);
            for detail in &check.details {
                outln!("    {detail}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
