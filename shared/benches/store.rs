//! Store throughput: recording webhook events and appending artifacts, on
//! SQLite and (when reachable) Postgres, one writer and 16 concurrent writers.
//! Prints operations per second. Run: `cargo bench -p myloware --bench store`.
//! `MW_BENCH_POSTGRES_URL` names the Postgres admin database
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); `MW_BENCH_OPS` the
//! operations per measurement (default 4000).
use std::sync::Arc;
use std::time::Instant;

use myloware::config::DatabaseConfig;
use myloware::domain::{
    ArtifactType, NewArtifact, NewRun, NewWebhookEvent, Persona, Provider, ProvidersMode, RunId,
    RunStatus, SignatureStatus, WebhookEventStatus,
};
use myloware::store::{self, Store, Transition};
use serde_json::json;

mod common;
use common::{env_usize, on_each_backend};

#[tokio::main]
async fn main() {
    let ops = env_usize("MW_BENCH_OPS", 4000);
    on_each_backend(|name, config| async move {
        bench_backend(name, &config, ops).await;
    })
    .await;
}

async fn bench_backend(name: &str, config: &DatabaseConfig, ops: usize) {
    let store = store::connect(config).await.expect("open store");
    let run = store
        .create_run(NewRun::new(
            "aismr".parse().unwrap(),
            json!({}),
            ProvidersMode::Mock,
        ))
        .await
        .unwrap();
    store
        .transition_run(Transition::new(
            run.run_id,
            RunStatus::Pending,
            RunStatus::Running,
        ))
        .await
        .unwrap();
    for writers in [1usize, 16] {
        let rate = measure(&store, run.run_id, ops, writers, Op::Webhook).await;
        println!("{name:<8} record_webhook_event  writers={writers:<2} {rate:>9.0} ops/s");
        let rate = measure(&store, run.run_id, ops, writers, Op::Artifact).await;
        println!("{name:<8} append_artifact       writers={writers:<2} {rate:>9.0} ops/s");
    }
    let dup = measure(&store, run.run_id, ops, 16, Op::DuplicateWebhook).await;
    println!("{name:<8} duplicate webhook     writers=16 {dup:>9.0} ops/s");
}

#[derive(Clone, Copy)]
enum Op {
    Webhook,
    DuplicateWebhook,
    Artifact,
}

async fn measure(store: &Arc<dyn Store>, run_id: RunId, ops: usize, writers: usize, op: Op) -> f64 {
    let per_writer = ops / writers;
    let batch = uuid::Uuid::new_v4().simple().to_string();
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(store);
            let batch = batch.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    match op {
                        Op::Webhook | Op::DuplicateWebhook => {
                            let key = match op {
                                Op::DuplicateWebhook => format!("dup-{batch}-{}", i % 8),
                                _ => format!("{batch}-{w}-{i}"),
                            };
                            store
                                .record_webhook_event(event(run_id, key))
                                .await
                                .unwrap();
                        }
                        Op::Artifact => {
                            store.append_artifact(artifact(run_id, i)).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (per_writer * writers) as f64 / start.elapsed().as_secs_f64()
}

fn event(run_id: RunId, key: String) -> NewWebhookEvent {
    NewWebhookEvent {
        run_id: Some(run_id),
        provider: Provider::KieAi,
        idempotency_key: key,
        provider_job_id: Some("veo-task-1".into()),
        signature_status: SignatureStatus::Verified,
        headers: json!({"x-webhook-timestamp": "1764336000", "content-type": "application/json"}),
        payload: json!({"code": 200, "msg": "success", "data": {"taskId": "veo-task-1", "info": {"resultUrls": ["https://cdn.example/clip.mp4"]}}}),
        status: WebhookEventStatus::Received,
    }
}

fn artifact(run_id: RunId, i: usize) -> NewArtifact {
    NewArtifact::new(
        run_id,
        ArtifactType::KIEAI_CLIP,
        json!({"clip": i, "duration_s": 8, "aspect": "9:16"}),
    )
    .provider(Provider::KieAi)
    .persona(Persona::Riley)
    .url(format!("https://cdn.example/clip-{i}.mp4"))
}
