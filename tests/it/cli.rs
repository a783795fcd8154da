//! `mw` as a user runs it: the real binary, against a store the test filled.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use myloware::config::DatabaseConfig;
use myloware::domain::{ArtifactType, NewArtifact, NewRun, ProvidersMode, RunStatus};
use myloware::store::{self, Transition};
use serde_json::{json, Value};

/// The `mw` binary next to this test binary, built first if it is not there
/// (cargo builds a package's binaries only for that package's own tests).
pub fn mw_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test binary path");
            let dir = exe.parent().and_then(Path::parent).expect("target dir");
            let mw = dir.join(format!("mw{}", std::env::consts::EXE_SUFFIX));
            if !mw.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "mw", "--bin", "mw"])
                    .status()
                    .expect("run cargo build -p mw");
                assert!(status.success(), "cargo build -p mw failed");
            }
            assert!(
                mw.exists(),
                "{} is missing after cargo build -p mw",
                mw.display()
            );
            mw
        })
        .clone()
}

fn mw(home: &Path, database_url: &str, args: &[&str]) -> Output {
    Command::new(mw_binary())
        .args(args)
        .current_dir(home)
        .env("MYLOWARE_HOME", home.join(".myloware"))
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("run mw")
}

/// `mw args` on the embedded defaults in `dir` (its store under
/// `dir/.myloware`, mock providers without latency, logs as JSON at the
/// default level).
fn mw_embedded(dir: &Path, args: &[&str]) -> Output {
    Command::new(mw_binary())
        .args(args)
        .current_dir(dir)
        .env("MYLOWARE_HOME", dir.join(".myloware"))
        .env("MOCK_LATENCY_MS", "0")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("MW_LOG_FORMAT")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn runs_list_and_show_read_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("state/mw.db");
    let url = format!("sqlite:{}", db_path.display());
    let store = store::connect(&DatabaseConfig::Sqlite {
        path: db_path.clone(),
    })
    .await
    .unwrap();
    let mut ids = Vec::new();
    for project in ["aismr", "test-video-gen"] {
        let run = store
            .create_run(NewRun::new(
                project.parse().unwrap(),
                json!({"prompt": "p"}),
                ProvidersMode::Mock,
            ))
            .await
            .unwrap();
        ids.push(run);
    }
    let second = &ids[1];
    store
        .transition_run(Transition::new(
            second.run_id,
            RunStatus::Pending,
            RunStatus::Running,
        ))
        .await
        .unwrap();
    store
        .append_artifact(NewArtifact::new(
            second.run_id,
            ArtifactType::RUN_START,
            json!({"k": 1}),
        ))
        .await
        .unwrap();

    let out = mw(dir.path(), &url, &["runs", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let page: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [second.run_id.to_string(), ids[0].run_id.to_string()]
    );

    let out = mw(dir.path(), &url, &["runs", "list", "--status", "running"]);
    let text = stdout(&out);
    assert!(
        text.contains(second.job_code.as_str()) && !text.contains(ids[0].job_code.as_str()),
        "{text}"
    );

    let out = mw(
        dir.path(),
        &url,
        &["runs", "show", second.job_code.as_str()],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&second.run_id.to_string()) && text.contains("run.start"),
        "{text}"
    );

    let out = mw(
        dir.path(),
        &url,
        &["runs", "show", &second.run_id.to_string(), "--json"],
    );
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["run"]["status"], "running");
    assert_eq!(shown["artifacts"][0]["type"], "run.start");
}

#[test]
fn missing_runs_and_bad_input_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("mw.db").display());
    let out = mw(dir.path(), &url, &["runs", "show", "TVG-ABC123"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no store at"),
        "{out:?}"
    );
    assert!(mw(dir.path(), &url, &["db", "migrate"]).status.success());
    let out = mw(dir.path(), &url, &["runs", "show", "TVG-ABC123"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run TVG-ABC123 not found"),
        "{out:?}"
    );

    let out = mw(dir.path(), &url, &["runs", "show", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));

    let out = mw(dir.path(), "mysql://nope", &["runs", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"),
        "{out:?}"
    );

    let out = mw(dir.path(), &url, &["runs", "list", "--status", "finished"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown status");
}

#[test]
fn db_migrate_creates_the_embedded_store_and_local_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(mw_binary())
        .args(["db", "migrate"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("MYLOWARE_HOME")
        .env_remove("API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join(".myloware/mw.db").exists());
    let secrets = std::fs::read_to_string(dir.path().join(".myloware/secrets.env")).unwrap();
    assert!(
        secrets.contains("API_KEY=") && secrets.contains("HITL_SECRET="),
        "{secrets}"
    );
    assert!(!stdout(&out).contains(secrets.lines().next().unwrap().split('=').nth(1).unwrap()));
}

#[tokio::test]
async fn db_migrate_works_on_postgres() {
    if !myloware_tests::postgres_enabled() {
        return;
    }
    let db = myloware_tests::PostgresTestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let out = mw(dir.path(), &db.url, &["db", "migrate"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("postgres store"), "{}", stdout(&out));
    let out = mw(dir.path(), &db.url, &["runs", "list"]);
    assert!(stdout(&out).contains("no runs yet"), "{out:?}");
    db.drop_database().await;
}

#[tokio::test]
async fn db_migrate_creates_the_dynamodb_table_once() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let endpoint = emulator.endpoint.clone();
    let table = format!("mwt-cli-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    // Credentials and endpoint go to the child process only.
    let run = |args: &[&str]| {
        Command::new(mw_binary())
            .args(args)
            .current_dir(dir.path())
            .env("MYLOWARE_HOME", dir.path().join(".myloware"))
            .env("DATABASE_URL", format!("dynamodb:{table}"))
            .env("ENGINE", "stepfunctions")
            .env("TASK_QUEUE_URL", format!("{endpoint}/123456789012/tasks"))
            .env(
                "CALLBACK_QUEUE_URL",
                format!("{endpoint}/123456789012/callbacks"),
            )
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("RUST_LOG")
            .output()
            .expect("run mw")
    };
    let first = run(&["db", "migrate"]);
    let again = run(&["db", "migrate"]);
    let listed = run(&["runs", "list"]);
    let config = emulator.sdk.clone();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let described = client.describe_table().table_name(&table).send().await;
    let _ = client.delete_table().table_name(&table).send().await;

    assert!(first.status.success(), "{first:?}");
    assert!(
        stdout(&first).contains(&format!("DynamoDB table {table} is ACTIVE")),
        "{}",
        stdout(&first)
    );
    assert!(
        again.status.success(),
        "an existing table is accepted: {again:?}"
    );
    assert!(stdout(&listed).contains("no runs yet"), "{listed:?}");
    let description = described.expect("the table exists").table.unwrap();
    let indexes: Vec<_> = description
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(indexes.contains(&"gsi1") && indexes.contains(&"gsi2"));
}

#[tokio::test]
async fn evidence_bundles_redact_secrets_and_approval_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("mw.db");
    let url = format!("sqlite:{}", db_path.display());
    let store = store::connect(&DatabaseConfig::Sqlite { path: db_path })
        .await
        .unwrap();
    let run = store
        .create_run(NewRun::new(
            "aismr".parse().unwrap(),
            json!({}),
            ProvidersMode::Mock,
        ))
        .await
        .unwrap();
    let api_key = "bundle-test-api-key-42424242";
    store
        .append_artifact(
            NewArtifact::new(
                run.run_id,
                ArtifactType::HITL_REQUEST,
                json!({ "gate": "ideate", "oops": api_key }),
            )
            .url("http://127.0.0.1:8080/v1/hitl/approve/x/ideate?token=c2VjcmV0LXRva2Vu.c2ln"),
        )
        .await
        .unwrap();
    let bundle = dir.path().join("bundle");
    let out = Command::new(mw_binary())
        .args(["evidence", "--run-id", run.job_code.as_str(), "--bundle"])
        .arg(&bundle)
        .current_dir(dir.path())
        .env("MYLOWARE_HOME", dir.path().join(".myloware"))
        .env("DATABASE_URL", &url)
        .env("API_KEY", api_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json = std::fs::read_to_string(bundle.join("evidence.json")).unwrap();
    let md = std::fs::read_to_string(bundle.join("summary.md")).unwrap();
    for text in [&json, &md] {
        assert!(!text.contains(api_key), "the API key leaked");
        assert!(
            !text.contains("c2VjcmV0LXRva2Vu"),
            "the approval token leaked"
        );
    }
    assert!(
        json.contains("token=[REDACTED]") && json.contains("\"doctor\""),
        "{json}"
    );
    assert!(
        md.contains(run.job_code.as_str()) && md.contains("## Doctor"),
        "{md}"
    );
}

#[test]
fn mw_logs_filters_a_runs_lines_by_run_and_persona() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| mw_embedded(dir.path(), args);
    let out = run(&["live-run", "test-video-gen", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = summary["run_id"].as_str().unwrap().to_owned();

    let out = run(&["logs", "--run-id", &id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in [
        "run started",
        "persona started",
        "clip job submitted",
        "webhook received",
        "run ended",
    ] {
        assert!(
            messages.contains(&expected),
            "{expected} missing from {messages:?}"
        );
    }
    assert!(
        lines.iter().all(|l| l.to_string().contains(&id)),
        "only this run's lines"
    );

    let out = run(&["logs", "--run-id", &id, "--persona", "quinn", "--json"]);
    let quinn: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!quinn.is_empty());
    assert!(quinn.iter().all(|l| l["persona"] == "quinn"), "{quinn:?}");

    let out = run(&["logs", "--level", "loud"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The promise for logs: inside a run every line carries `run_id`,
/// `project`, `providers_mode`, and where they apply `persona`, `provider`,
/// `provider_job_id`, `gate` and `state` — at the top level of the line, where
/// `mw logs` and Logs Insights filter. A whole aismr run (gates approved by
/// live-run, provider jobs calling back) is logged to the file and read back.
#[test]
fn every_line_of_a_run_carries_the_runs_context() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| mw_embedded(dir.path(), args);
    let out = run(&["live-run", "aismr", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = summary["run_id"].as_str().unwrap().to_owned();
    let out = run(&["evidence", &id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let evidence: Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = evidence["provider_jobs"].as_array().unwrap();
    assert!(jobs.len() >= 3, "clips, a render and a publish: {jobs:?}");

    let log = std::fs::read_to_string(dir.path().join(".myloware/logs/mw.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ours: Vec<&Value> = lines.iter().filter(|l| l["run_id"] == id).collect();
    assert!(ours.len() > 10, "{} lines of the run", ours.len());
    for line in lines.iter().filter(|l| l.get("run_id").is_some()) {
        for field in ["project", "providers_mode", "state"] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
        assert!(line.get("span").is_none_or(|s| !s.is_object()), "{line}");
    }
    assert!(ours.iter().all(|l| l["project"] == "aismr"));

    let with = |message: &str| -> Vec<&Value> {
        ours.iter()
            .copied()
            .filter(|l| l["message"] == message)
            .collect()
    };
    for message in ["persona started", "persona finished", "clip job submitted"] {
        let found = with(message);
        assert!(!found.is_empty(), "no {message:?} line");
        assert!(
            found.iter().all(|l| l["persona"].is_string()),
            "{message}: {found:?}"
        );
    }
    // What a persona's agent does (its tools, the provider calls they make)
    // is logged inside the persona's work.
    let persona_work: Vec<&&Value> = ours
        .iter()
        .filter(|l| {
            let target = l["target"].as_str().unwrap_or_default();
            target == "myloware::pipeline::tools" || target.starts_with("myloware::providers::")
        })
        .collect();
    assert!(persona_work.len() >= jobs.len(), "{persona_work:?}");
    assert!(
        persona_work.iter().all(|l| l["persona"].is_string()),
        "{persona_work:?}"
    );
    // Every provider job has lines naming it, with its provider: at least the
    // callbacks consumer's settlement. (The webhook route knows the run only
    // once the job is registered; a mock callback may come first.)
    for line in lines.iter().filter(|l| l["message"] == "webhook received") {
        assert!(
            line["provider"].is_string() && line["provider_job_id"].is_string(),
            "{line}"
        );
    }
    for job in jobs {
        let job_id = job["job_id"].as_str().unwrap();
        let provider = job["provider"].as_str().unwrap();
        let named: Vec<&Value> = ours
            .iter()
            .copied()
            .filter(|l| l["provider_job_id"] == job_id)
            .collect();
        let messages: Vec<&str> = named.iter().filter_map(|l| l["message"].as_str()).collect();
        assert!(
            messages.contains(&"provider job settled"),
            "{job_id}: {messages:?}"
        );
        assert!(
            named
                .iter()
                .all(|l| l["provider"] == provider && l["persona"] == job["persona"]),
            "{named:?}"
        );
    }
    // Gates: the wait and the decision name their gate; the wait says the
    // run's state.
    let awaits = with("run awaits approval");
    assert!(!awaits.is_empty());
    assert!(awaits
        .iter()
        .all(|l| l["gate"].is_string() && l["state"] == "awaiting_approval"));
    let gates = |lines: &[&Value]| -> std::collections::BTreeSet<String> {
        lines
            .iter()
            .map(|l| l["gate"].as_str().unwrap_or("none").to_owned())
            .collect()
    };
    let decided = with("gate decided");
    assert_eq!(
        gates(&decided),
        ["ideate", "prepublish"].map(String::from).into(),
        "{decided:?}"
    );
    assert_eq!(gates(&awaits), gates(&decided));
    let ended = with("run ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["state"], "published");

    // `mw logs` finds the persona's lines by the context alone.
    let out = run(&["logs", "--run-id", &id, "--persona", "riley", "--json"]);
    let riley: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(riley.iter().any(|l| l["message"] == "persona started"));
    assert!(riley.iter().all(|l| l["persona"] == "riley"));

    // By job code, the inbound webhooks of one provider.
    let code = evidence["run"]["job_code"].as_str().unwrap();
    let out = run(&[
        "logs",
        "--run-id",
        code,
        "--webhooks",
        "--provider",
        "kieai",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let hooks: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        hooks.iter().any(|l| l["message"] == "webhook received"),
        "{hooks:?}"
    );
    assert!(
        hooks
            .iter()
            .all(|l| l["provider"] == "kieai" && l["run_id"] == id.as_str()),
        "{hooks:?}"
    );
    assert!(
        hooks.iter().all(|l| l["message"] != "persona started"),
        "{hooks:?}"
    );
    // A job code no run has is the user's mistake, said as such.
    let out = run(&["logs", "--run-id", "AIS-ZZZ999"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no run has this job code"),
        "{out:?}"
    );
}

/// `mw runs watch` on a finished run replays it in the order it happened, at
/// the times it happened; a run cancelled at a gate ends cancelled, its gate
/// never decided, not waiting.
#[test]
fn watching_a_finished_run_replays_it_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| mw_embedded(dir.path(), args);
    let seconds = |text: &str| -> Vec<f64> {
        text.lines()
            .filter_map(|l| l.split_whitespace().next()?.strip_suffix('s')?.parse().ok())
            .collect()
    };

    let out = run(&["live-run", "test-video-gen", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = summary["job_code"].as_str().unwrap().to_owned();
    let out = run(&["runs", "watch", &code]);
    assert!(out.status.success(), "{out:?}");
    let replay = stdout(&out);
    let times = seconds(&replay);
    assert!(times.len() > 10, "{replay}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order: {replay}");
    let first_submit = replay.find("job").unwrap();
    assert!(
        first_submit < replay.find("status published").unwrap(),
        "{replay}"
    );
    assert!(
        replay.lines().last().unwrap().contains("succeeded")
            || replay.lines().last().unwrap().contains("publish"),
        "{replay}"
    );

    // An aismr run left waiting at its first gate (live-run gives up on it).
    let left_at_a_gate = || {
        let out = run(&[
            "live-run",
            "aismr",
            "--manual-hitl",
            "--timeout",
            "3",
            "--json",
        ]);
        assert!(!out.status.success(), "{out:?}");
        let listed = run(&["runs", "list", "--status", "awaiting_approval", "--json"]);
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        listed["runs"][0]["job_code"].as_str().unwrap().to_owned()
    };

    // Left at its first gate, then cancelled.
    let waiting = left_at_a_gate();
    let out = run(&["runs", "cancel", &waiting]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["runs", "watch", &waiting]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let replay = stdout(&out);
    let times = seconds(&replay);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order: {replay}");
    assert!(!replay.contains("waits for approval"), "{replay}");
    assert!(
        replay.contains("gate ideate waited; never decided"),
        "{replay}"
    );
    assert!(
        replay.lines().last().unwrap().contains("status cancelled")
            || replay.lines().last().unwrap().contains("run.cancelled"),
        "{replay}"
    );

    // Approved while no stack runs: the command says the run waits for one.
    let waiting = left_at_a_gate();
    let out = run(&[
        "hitl",
        "approve",
        &waiting,
        "ideate",
        "--comment",
        "keep it calm",
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no `mw serve` is running") && said.contains(&waiting),
        "{said}"
    );
    // The comment is kept with the decision: the evidence bundle shows it.
    let bundle = dir.path().join("bundle");
    let out = run(&["evidence", &waiting, "--bundle", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let md = std::fs::read_to_string(bundle.join("summary.md")).unwrap();
    assert!(
        md.contains("- ideate: approved by api-key:cli — “keep it calm”"),
        "{md}"
    );
}

/// `mw db prune` removes the finished runs past the cutoff and says what it
/// removed; `--dry-run` only counts; a store that is not there is not made.
#[test]
fn pruning_removes_only_finished_runs_past_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| mw_embedded(dir.path(), args);
    let out = run(&["db", "prune", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!dir.path().join(".myloware/mw.db").exists(), "nothing made");

    let out = run(&["live-run", "test-video-gen", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let code = serde_json::from_slice::<Value>(&out.stdout).unwrap()["job_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = run(&["db", "prune", "--older-than", "30d"]);
    assert!(
        stdout(&out).starts_with("removed 0 finished run(s)"),
        "{out:?}"
    );
    let out = run(&["db", "prune", "--older-than", "0s", "--dry-run"]);
    assert!(
        stdout(&out).starts_with("would remove 1 finished run(s)"),
        "{out:?}"
    );
    assert!(run(&["runs", "show", &code]).status.success());

    let out = run(&["db", "prune", "--older-than", "0s"]);
    assert!(out.status.success(), "{out:?}");
    let said = stdout(&out);
    assert!(said.starts_with("removed 1 finished run(s)"), "{said}");
    assert!(!said.contains(": 0 artifact(s)"), "{said}");
    assert_eq!(run(&["runs", "show", &code]).status.code(), Some(2));

    let out = run(&["db", "prune", "--older-than", "a month"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A command that only reads, run where nothing has run, says so and leaves
/// the folder as it was: no home folder, no secrets, no log, no store.
#[test]
fn reading_commands_in_an_empty_folder_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["runs", "list"][..],
        &["runs", "show", "TVG-AAA111"],
        &["evidence", "TVG-AAA111"],
        &["doctor", "TVG-AAA111"],
        &["trace", "TVG-AAA111"],
        &["logs", "--run-id", "TVG-AAA111"],
    ] {
        let out = mw_embedded(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("no store at"), "{args:?}: {said}");
        assert!(
            !dir.path().join(".myloware").exists(),
            "{args:?} created the home folder"
        );
    }
}

/// `mw --verbose` says first which stack or store a command talks to; a
/// DATABASE_URL that disagrees with the running `mw serve` is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_say_which_stack_or_store_they_talk_to() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_owned();
    let mw = move |args: &[&str], database_url: Option<&str>| {
        let mut command = Command::new(mw_binary());
        command
            .args(args)
            .current_dir(&home)
            .env("MYLOWARE_HOME", home.join(".myloware"))
            .env("MOCK_LATENCY_MS", "0")
            .env_remove("RUST_LOG")
            .env_remove("MW_API_BASE");
        match database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        command
    };
    let said = |mut command: Command| {
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(mw(&["live-run", "test-video-gen"], None)
        .output()
        .unwrap()
        .status
        .success());
    let store = std::fs::canonicalize(dir.path().join(".myloware/mw.db")).unwrap();
    let store = format!("sqlite:{}", store.display());

    let note = said(mw(&["--verbose", "runs", "list"], None));
    assert!(
        note.starts_with(&format!("→ no running stack: reading the store {store}")),
        "{note}"
    );
    assert!(
        said(mw(&["runs", "list"], None)).is_empty(),
        "quiet without -v"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    /// The server, killed however the test ends.
    struct Serving(std::process::Child);
    impl Drop for Serving {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let serve = Serving(
        mw(&["serve", "--port", &port.to_string()], None)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    myloware_tests::wait_healthy(&base).await;
    let note = said(mw(&["-v", "runs", "list"], None));
    assert!(
        note.starts_with(&format!(
            "→ mw serve at {base} (pid {}), store {store}",
            serve.0.id()
        )),
        "{note}"
    );
    let other = "postgres://someone@127.0.0.1:5432/elsewhere";
    let note = said(mw(&["runs", "list"], Some(other)));
    assert!(
        note.contains(&format!("uses the store {store}"))
            && note.contains("names postgres://someone@127.0.0.1:5432/elsewhere"),
        "{note}"
    );
}
