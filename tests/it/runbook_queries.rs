//! The runbook's psql queries must work verbatim against our Postgres schema.
//! This test fills a fresh database through the store and runs them twice:
//! through `psql` itself (when the client is installed) and through sqlx.
use myloware::config::DatabaseConfig;
use myloware::domain::{
    ArtifactType, NewArtifact, NewRun, NewWebhookEvent, Persona, Provider, ProvidersMode,
    RunStatus, SignatureStatus, WebhookEventStatus,
};
use myloware::store::{self, Transition};
use myloware_tests::{postgres_enabled, PostgresTestDb};
use serde_json::json;
use sqlx::{Connection, Row};

const RECENT_RUNS: &str =
    "select run_id, project, status, job_code, updated_at from runs order by updated_at desc limit 5";
const ARTIFACTS: &str =
    "select type, provider, metadata from artifacts where run_id = '<run_id>' order by created_at";
const WEBHOOKS: &str = "select idempotency_key, provider, signature_status, created_at from webhook_events where run_id = '<run_id>'";

#[tokio::test]
async fn runbook_psql_queries_return_rows() {
    if !postgres_enabled() {
        return;
    }
    let db = PostgresTestDb::create().await;
    let store = store::connect(&DatabaseConfig::Postgres {
        url: db.url.clone(),
    })
    .await
    .unwrap();
    let run = store
        .create_run(NewRun::new(
            "test-video-gen".parse().unwrap(),
            json!({}),
            ProvidersMode::Mock,
        ))
        .await
        .unwrap();
    let id = run.run_id;
    store
        .transition_run(Transition::new(id, RunStatus::Pending, RunStatus::Running))
        .await
        .unwrap();
    for t in [ArtifactType::RUN_START, ArtifactType::KIEAI_JOB] {
        store
            .append_artifact(
                NewArtifact::new(id, t, json!({"taskId": "veo-1"}))
                    .provider(Provider::KieAi)
                    .persona(Persona::Riley),
            )
            .await
            .unwrap();
    }
    store
        .record_webhook_event(NewWebhookEvent {
            run_id: Some(id),
            provider: Provider::KieAi,
            idempotency_key: "kieai:veo-1:1764336000".into(),
            provider_job_id: Some("veo-1".into()),
            signature_status: SignatureStatus::Verified,
            headers: json!({}),
            payload: json!({"code": 200}),
            status: WebhookEventStatus::Received,
        })
        .await
        .unwrap();

    let queries = [
        (RECENT_RUNS.to_owned(), 1),
        (ARTIFACTS.replace("<run_id>", &id.to_string()), 2),
        (WEBHOOKS.replace("<run_id>", &id.to_string()), 1),
    ];

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for (query, rows) in &queries {
        let found = sqlx::query(query).fetch_all(&mut conn).await.unwrap();
        assert_eq!(found.len(), *rows, "{query}");
    }
    let first = sqlx::query(&queries[0].0)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(first.get::<String, _>("job_code"), run.job_code.as_str());
    drop(conn);

    match std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", &db.url])
        .output()
    {
        Err(_) => eprintln!("SKIPPED: the psql half of this test: no psql client installed"),
        Ok(_) => {
            for (query, rows) in &queries {
                let out = std::process::Command::new("psql")
                    .args([
                        "-X",
                        "-A",
                        "-t",
                        "-v",
                        "ON_ERROR_STOP=1",
                        &db.url,
                        "-c",
                        query,
                    ])
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "psql failed on {query}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(
                    stdout.lines().filter(|l| !l.is_empty()).count(),
                    *rows,
                    "{query}\n{stdout}"
                );
            }
        }
    }
    db.drop_database().await;
}
