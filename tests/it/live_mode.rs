//! Live mode as a new user would switch to it: `PROVIDERS_MODE=live` with
//! the keys and the providers' base URLs pointed at a local fake that serves
//! the documented shapes, quirks included (real record-info answers with
//! epoch milliseconds and `originUrls: null`, an upload answered without the
//! `job_id` webhooks name): both projects publish. And `mw providers check`
//! says what going live still needs.
use std::process::Command;
use std::time::Duration;

use myloware::domain::{RunStatus, SettledBy};
use myloware::providers::mock::{MockConfig, MockFaults, MockProviders};
use myloware::providers::ProviderKeys;
use myloware::wiring::StackOptions;
use myloware_tests::{stack_vars, TestStack};
use secrecy::SecretString;
use serde_json::{json, Value};

const KIEAI_KEY: &str = "live-kieai-key-0123456789";
const SHOTSTACK_KEY: &str = "live-shotstack-key-0123456789";
const UPLOAD_POST_KEY: &str = "live-upload-post-key-0123456789";
const KIEAI_SECRET: &str = "test-kieai-secret-0123456789";
const UPLOAD_POST_SECRET: &str = "test-upload-secret-0123456789";

/// The fake: the mock providers on their own, requiring the keys, signing
/// with the secrets the stack is configured with, answering in the real
/// answers' shapes (`null` fault at 1).
async fn fake_providers(faults: MockFaults) -> MockProviders {
    let mut config = MockConfig::new(
        Duration::from_millis(20),
        SecretString::from(KIEAI_SECRET),
        SecretString::from(UPLOAD_POST_SECRET),
    );
    config.api_keys = Some(ProviderKeys {
        kieai: SecretString::from(KIEAI_KEY),
        shotstack: SecretString::from(SHOTSTACK_KEY),
        upload_post: SecretString::from(UPLOAD_POST_KEY),
    });
    config.faults = faults;
    MockProviders::start(config).await.expect("the fake starts")
}

fn live_vars(fake: &MockProviders) -> Vec<(&'static str, String)> {
    vec![
        ("PROVIDERS_MODE", "live".into()),
        ("KIEAI_BASE_URL", fake.kieai_url.clone()),
        ("SHOTSTACK_BASE_URL", fake.shotstack_url.clone()),
        ("UPLOAD_POST_BASE_URL", fake.upload_post_url.clone()),
        ("KIEAI_API_KEY", KIEAI_KEY.into()),
        ("SHOTSTACK_API_KEY", SHOTSTACK_KEY.into()),
        ("UPLOAD_POST_API_KEY", UPLOAD_POST_KEY.into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_mode_against_the_documented_shapes_publishes_both_projects() {
    let fake = fake_providers(MockFaults {
        nulls: 1.0,
        ..MockFaults::default()
    })
    .await;
    // The stack's own address, known before it starts: the webhook base the
    // providers are given (and upload-post's webhook is registered at).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut extra: Vec<(&str, String)> = live_vars(&fake);
    extra.push(("WEBHOOK_BASE_URL", base.clone()));
    extra.push(("RECONCILE_AFTER_SECS", "0.5".into()));
    extra.push(("RECONCILE_INTERVAL_SECS", "0.2".into()));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let vars = stack_vars(dir.path(), &extra);
    let t = TestStack::start_with(
        dir,
        vars,
        StackOptions::at(format!("127.0.0.1:{port}").parse().unwrap()),
    )
    .await;
    assert!(t.stack.mocks.is_none(), "live mode starts no mocks");
    for project in ["test-video-gen", "aismr"] {
        let id = t.start_run(project).await["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let e = loop {
            let e = t.evidence(&id).await;
            if e.run.status.is_terminal() {
                break e;
            }
            for gate in e.hitl_requests.iter().filter(|g| g.decision.is_none()) {
                t.client
                    .post(&format!("/v1/hitl/approve/{id}/{}", gate.gate), json!({}))
                    .await;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{project}: {:?}",
                e.run
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            e.run.status,
            RunStatus::Published,
            "{project}: {:?}",
            e.run.error
        );
        assert_eq!(e.run.providers_mode.as_str(), "live");
        // The clips came from real-shaped answers; the render's lasting
        // (hosted) URL was kept, not the 24-hour one.
        let render = e
            .artifacts
            .iter()
            .find(|a| a.artifact_type.as_str() == "render.url")
            .unwrap();
        assert!(
            render.url.as_deref().unwrap().contains("/au/v1/"),
            "{render:?}"
        );
        assert!(render.metadata["temporary_url"].is_string(), "{render:?}");
        // Without the job id in upload-post's answer, the upload settles
        // from its status endpoint, by our request id.
        let upload = e
            .provider_jobs
            .iter()
            .find(|j| j.provider.as_str() == "upload-post")
            .unwrap();
        assert!(upload.job_id.starts_with("mw-"), "{upload:?}");
        assert_eq!(upload.settled_by, Some(SettledBy::Poll), "{upload:?}");
        assert_eq!(crate::pipeline::count(&e, "publish.url"), 2, "{project}");
    }
    t.stack.shutdown().await;
    fake.shutdown().await;
}

fn providers_check(vars: &[(&str, String)], dir: &std::path::Path) -> (i32, Value) {
    let out = Command::new(crate::cli::mw_binary())
        .args(["providers", "check", "--json"])
        .current_dir(dir)
        .env("MYLOWARE_HOME", dir.join(".myloware"))
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("mw runs");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn check<'a>(report: &'a Value, subject: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == subject)
        .unwrap_or_else(|| panic!("no {subject} check in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_check_says_what_going_live_still_needs() {
    let fake = fake_providers(MockFaults::default()).await;
    let dir = tempfile::tempdir().unwrap();

    // Right keys, but secrets generated here and a loopback callback base.
    let mut vars = live_vars(&fake);
    vars.push(("WEBHOOK_BASE_URL", "http://127.0.0.1:9".into()));
    let (code, report) = providers_check(&vars, dir.path());
    assert_eq!(code, 1, "{report:#}");
    for ok in ["kieai key", "shotstack key", "upload-post key"] {
        assert_eq!(check(&report, ok)["status"], "ok", "{ok}: {report:#}");
    }
    // Registered, but signed with a secret only this machine knows.
    assert_eq!(check(&report, "upload-post webhook")["status"], "warn");
    let secret = check(&report, "kieai webhook secret");
    assert_eq!(secret["status"], "fail", "{secret:#}");
    assert!(secret["summary"]
        .as_str()
        .unwrap()
        .contains("generated on this machine"));
    let urls = check(&report, "callback URLs");
    assert_eq!(urls["status"], "fail", "{urls:#}");
    let details = urls["details"].to_string();
    assert!(details.contains("cloudflared"), "how to fix it: {details}");
    assert!(
        details.contains("http://127.0.0.1:9/v1/webhooks/kieai"),
        "{details}"
    );
    assert!(
        check(&report, "upload-post webhook")["summary"]
            .as_str()
            .unwrap()
            .contains("registered http://127.0.0.1:9/v1/webhooks/upload-post"),
        "{report:#}"
    );

    // A wrong Shotstack key: refused, with where keys come from and which
    // stage it was tried on. No key is ever printed.
    let mut wrong = vars.clone();
    wrong.retain(|(k, _)| *k != "SHOTSTACK_API_KEY");
    wrong.push(("SHOTSTACK_API_KEY", "a-sandbox-key-0123456789".into()));
    let (code, report) = providers_check(&wrong, dir.path());
    assert_eq!(code, 1);
    let shotstack = check(&report, "shotstack key");
    assert_eq!(shotstack["status"], "fail");
    assert!(
        shotstack["details"]
            .to_string()
            .contains("SHOTSTACK_ENV=stage"),
        "{shotstack:#}"
    );
    let text = report.to_string();
    for key in [
        KIEAI_KEY,
        SHOTSTACK_KEY,
        UPLOAD_POST_KEY,
        "a-sandbox-key-0123456789",
    ] {
        assert!(!text.contains(key), "a key leaked: {key}");
    }

    // Everything set: secrets from the environment, a public callback base.
    let mut ready = vars.clone();
    ready.retain(|(k, _)| *k != "WEBHOOK_BASE_URL");
    ready.push(("WEBHOOK_BASE_URL", "https://hooks.myloware.example".into()));
    ready.push(("KIEAI_WEBHOOK_SECRET", KIEAI_SECRET.into()));
    ready.push(("UPLOAD_POST_WEBHOOK_SECRET", UPLOAD_POST_SECRET.into()));
    let (code, report) = providers_check(&ready, dir.path());
    assert_eq!(code, 0, "{report:#}");
    for ok in [
        "callback URLs",
        "upload-post webhook",
        "kieai webhook secret",
    ] {
        assert_eq!(check(&report, ok)["status"], "ok", "{ok}: {report:#}");
    }
    fake.shutdown().await;
}
