//! The ASL conformance corpus (`tests/fixtures/asl/*.json`) on the durable
//! local engine. The same files run against moto's Step Functions
//! interpreter (`tests/asl_moto/run_corpus.py`), so both implementations are
//! held to one set of expectations taken from AWS's behaviour.
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use myloware::engine::local::spawn_echo_worker;
use myloware::engine::{Engine, LocalEngine};
use myloware_tests::StoreUnderTest;
use serde_json::Value;

const QUEUE: &str = "local://corpus/tasks";

#[derive(Debug)]
struct Case {
    name: String,
    definition: String,
    input: Value,
    expected: Value,
}

fn corpus() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/asl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/asl")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path.file_stem().unwrap().to_string_lossy();
            let number = stem.split('-').next().unwrap().to_owned();
            Case {
                name: format!("corpus-{number}"),
                definition: case["definition"]
                    .to_string()
                    .replace("${TaskQueueUrl}", QUEUE),
                input: case["input"].clone(),
                expected: case["expected"].clone(),
            }
        })
        .collect()
}

async fn run_case(engine: &LocalEngine, case: &Case) -> Result<(), String> {
    let machine = engine
        .register_state_machine(&case.name, &case.definition)
        .map_err(|e| format!("definition refused: {e}"))?;
    let started = engine
        .start_execution(&machine, Some(&case.name), &case.input)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let done = engine
        .wait_for(&started.execution_arn, Duration::from_secs(30))
        .await
        .map_err(|e| format!("wait: {e}"))?;
    let want_status = case.expected["status"].as_str().unwrap_or_default();
    if done.status != want_status {
        return Err(format!(
            "status {} (error {:?}, cause {:?}, output {:?}), expected {want_status}",
            done.status, done.error, done.cause, done.output
        ));
    }
    if want_status == "SUCCEEDED" && done.output.as_ref() != Some(&case.expected["output"]) {
        return Err(format!(
            "output {}\n      expected {}",
            done.output.unwrap_or_default(),
            case.expected["output"]
        ));
    }
    if let Some(error) = case.expected.get("error") {
        if done.error.as_deref() != error.as_str() {
            return Err(format!("error {:?}, expected {error}", done.error));
        }
    }
    if let Some(cause) = case.expected.get("cause") {
        if done.cause.as_deref() != cause.as_str() {
            return Err(format!("cause {:?}, expected {cause}", done.cause));
        }
    }
    Ok(())
}

async fn whole_corpus(t: StoreUnderTest) {
    let backend = myloware::store::open(&t.database).await.unwrap();
    let engine = LocalEngine::start(backend.engine_store().unwrap())
        .await
        .unwrap();
    spawn_echo_worker(&engine, QUEUE).await.unwrap();
    let cases = corpus();
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let results: Vec<(String, Result<(), String>)> = futures::stream::iter(&cases)
        .map(|case| {
            let engine = engine.clone();
            async move { (case.name.clone(), run_case(&engine, case).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("  {name}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases disagree with the expected results:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_corpus_passes_on_the_local_engine_with_sqlite() {
    myloware_tests::on_sqlite(whole_corpus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_corpus_passes_on_the_local_engine_with_postgres() {
    myloware_tests::on_postgres(whole_corpus).await;
}
