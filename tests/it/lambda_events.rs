//! The SQS events under `tests/fixtures/events` (what `cargo lambda invoke`
//! sends the `worker` and `callbacks` functions, see docs/aws.md) through the
//! functions' own handler, `lambda::sqs_batch`, on the pipeline a cold start
//! builds: the records that cannot be handled are reported as batch item
//! failures by message id (a webhook event this store does not have; a body
//! that is not a message), a task for a run this store does not have is
//! failed with its token (which no engine here holds: nothing is owed), and
//! nothing is written for any of them.
use aws_lambda_events::event::sqs::SqsEvent;
use myloware::lambda::BatchOptions;
use myloware::pipeline::callbacks::Callbacks;
use myloware::pipeline::worker::Worker;
use myloware::store::RunFilter;
use myloware_tests::{config_from, stack_vars};

fn fixture(name: &str) -> (SqsEvent, Vec<String>) {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ids = event
        .records
        .iter()
        .map(|r| r.message_id.clone().expect("fixture records have ids"))
        .collect();
    (event, ids)
}

fn failed(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn cold_start(dir: &std::path::Path) -> myloware::pipeline::Pipeline {
    let vars = stack_vars(dir, &[("PUBLIC_BASE_URL", "https://api.example.test")]);
    myloware::lambda::pipeline(&config_from(&vars))
        .await
        .expect("the functions' pipeline")
}

#[tokio::test]
async fn the_functions_refuse_to_start_without_the_public_base_url() {
    let dir = tempfile::tempdir().unwrap();
    let vars = stack_vars(dir.path(), &[]);
    let err = myloware::lambda::pipeline(&config_from(&vars))
        .await
        .expect_err("PUBLIC_BASE_URL is required");
    assert!(err.to_string().contains("PUBLIC_BASE_URL"), "{err}");
}

#[tokio::test]
async fn the_worker_event_fixture_reports_each_record_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = cold_start(dir.path()).await;
    let (event, ids) = fixture("worker-sqs.json");
    assert_eq!(ids.len(), 2);
    let response = myloware::lambda::sqs_batch(
        &Worker {
            pipeline: pipeline.clone(),
        },
        event,
        BatchOptions::default(),
    )
    .await;
    assert_eq!(
        failed(&response),
        ids[1..],
        "the task of an unknown run is failed, its token unknown here: done; the malformed one fails"
    );
    let runs = pipeline
        .store
        .list_runs(&RunFilter::default())
        .await
        .unwrap();
    assert!(runs.runs.is_empty(), "{:?}", runs.runs);
}

#[tokio::test]
async fn the_callbacks_event_fixture_reports_each_record_it_cannot_settle() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = cold_start(dir.path()).await;
    let (event, ids) = fixture("callbacks-sqs.json");
    assert_eq!(ids.len(), 2);
    let options = BatchOptions {
        concurrency: myloware::lambda::CALLBACK_CONCURRENCY,
        ..BatchOptions::default()
    };
    let response = myloware::lambda::sqs_batch(&Callbacks { pipeline }, event, options).await;
    assert_eq!(failed(&response), ids);
}

#[tokio::test]
async fn the_pruning_schedule_deletes_the_finished_runs_past_their_retention() {
    use myloware::domain::RunStatus;
    use myloware::store::Transition;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = cold_start(dir.path()).await;
    let store = pipeline.store.clone();
    let old = myloware_tests::running_run(store.as_ref(), "aismr")
        .await
        .run_id;
    store
        .transition_run(Transition::new(
            old,
            RunStatus::Running,
            RunStatus::Published,
        ))
        .await
        .unwrap();
    let recent = myloware_tests::running_run(store.as_ref(), "aismr")
        .await
        .run_id;
    store
        .transition_run(Transition::new(
            recent,
            RunStatus::Running,
            RunStatus::Published,
        ))
        .await
        .unwrap();
    // Forty days ago, as the store writes times.
    let long_ago = (chrono::Utc::now() - chrono::Duration::days(40))
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    let db = store_file(dir.path());
    let connection = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET created_at = ?1, updated_at = ?1 WHERE run_id = ?2")
        .bind(&long_ago)
        .bind(old.to_string())
        .execute(&connection)
        .await
        .unwrap();
    connection.close().await;

    let handler = Callbacks {
        pipeline: pipeline.clone(),
    };
    let event = |input| serde_json::json!({ "prune": input });
    let report = myloware::lambda::callbacks_event(
        &handler,
        &pipeline,
        event(serde_json::json!({"retention_days": 30})),
        Default::default(),
    )
    .await
    .expect("the schedule's input");
    assert_eq!(report["runs"], 1, "{report}");
    assert_eq!(store.get_run(old).await.unwrap(), None);
    assert!(store.get_run(recent).await.unwrap().is_some());

    for bad in [
        serde_json::json!({"retention_days": 0}),
        serde_json::json!({"days": 30}),
    ] {
        let err = myloware::lambda::callbacks_event(
            &handler,
            &pipeline,
            event(bad.clone()),
            Default::default(),
        )
        .await
        .expect_err("refused")
        .to_string();
        assert!(
            err.contains("retention_days") || err.contains("pruning"),
            "{bad}: {err}"
        );
    }
    assert!(store.get_run(recent).await.unwrap().is_some());
}

/// The embedded store's file under a stack's home.
fn store_file(home: &std::path::Path) -> std::path::PathBuf {
    home.join("mw.db")
}
