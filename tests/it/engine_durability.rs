//! Kill -9 the process running an execution, at several moments, start it
//! again each time: the execution finishes once, with nothing lost or
//! repeated. This drives the real `mw statemachine run` binary.
use std::process::{Command, Stdio};
use std::time::Duration;

use myloware::config::DatabaseConfig;
use myloware::engine::{arn, Engine, LocalEngine};
use serde_json::{json, Value};

const ITEMS: usize = 24;

fn definition() -> Value {
    json!({
        "Comment": "A Map of tasks with waits between them: long enough to be killed in the middle",
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "StartAt": "Pause",
                    "States": {
                        "Pause": {"Type": "Wait", "Seconds": 0, "Next": "Slow"},
                        "Slow": {"Type": "Wait", "SecondsPath": "$.pause", "Next": "Work"},
                        "Work": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                            "Parameters": {
                                "QueueUrl": "${TaskQueueUrl}",
                                "MessageBody": {"task_token.$": "$$.Task.Token", "item.$": "$.n"}
                            },
                            "End": true
                        }
                    }
                },
                "End": true
            }
        }
    })
}

fn mw(dir: &std::path::Path, file: &std::path::Path, input: &str) -> Command {
    let mut cmd = Command::new(crate::cli::mw_binary());
    cmd.args(["statemachine", "run"])
        .arg(file)
        .args(["--name", "survivor", "--input", input, "--timeout", "60"])
        .current_dir(dir)
        .env("MYLOWARE_HOME", dir.join(".myloware"))
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_killed_three_times_finishes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kill.asl.json");
    std::fs::write(&file, definition().to_string()).unwrap();
    // Alternating 1 s waits: 12 pauses of 1 s at concurrency 2 ≈ 6 s of run.
    let items: Vec<Value> = (0..ITEMS)
        .map(|n| json!({"n": n, "pause": n % 2}))
        .collect();
    let input = json!({"items": items}).to_string();

    for kill_after_ms in [700u64, 1500, 1200] {
        let mut child = mw(dir.path(), &file, &input).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        if child.try_wait().unwrap().is_some() {
            panic!("the run ended before it could be killed: make it longer");
        }
        child.kill().unwrap(); // SIGKILL: no clean-up of any kind
        child.wait().unwrap();
    }
    let out = mw(dir.path(), &file, &input).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Vec<Value> = (0..ITEMS).map(|n| json!({"item": n})).collect();
    assert_eq!(output, json!(expected));

    let db = DatabaseConfig::Sqlite {
        path: dir.path().join(".myloware/mw.db"),
    };
    let backend = myloware::store::open(&db).await.unwrap();
    let engine = LocalEngine::start(backend.engine_store().unwrap())
        .await
        .unwrap();
    let history = engine
        .get_execution_history(&arn::execution("kill", "survivor"))
        .await
        .unwrap();
    let count = |t: &str| history.iter().filter(|e| e.event_type == t).count();
    assert_eq!(
        count("MapIterationSucceeded"),
        ITEMS,
        "every iteration succeeded once"
    );
    assert_eq!(count("TaskSucceeded"), ITEMS, "every task completed once");
    assert_eq!(count("WaitStateExited"), 2 * ITEMS, "every wait ended once");
    assert_eq!(count("ExecutionStarted"), 1);
    assert_eq!(count("ExecutionSucceeded"), 1);
    let ids: Vec<i64> = history.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "no event lost or repeated"
    );
}
