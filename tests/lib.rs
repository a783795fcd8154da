//! Helpers shared by the workspace integration tests (`tests/it`): each test
//! gets a store of its own — a fresh SQLite file, a fresh database on the
//! Postgres server, or a fresh table on moto's DynamoDB — so tests never see
//! each other's rows.
//!
//! Postgres: `MW_TEST_POSTGRES_URL` names an admin connection (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). With `MW_SKIP_POSTGRES=1`
//! the Postgres variants return early and say so; without it an unreachable
//! server fails the test with a message saying how to skip. `scripts/test`
//! sets the variable, and prints why, when no server answers.
//!
//! DynamoDB: moto at `MW_TEST_AWS_ENDPOINT` (default
//! `http://127.0.0.1:${MOTO_PORT:-5123}`, which `scripts/test` starts). With
//! `MW_SKIP_MOTO=1`, or when nothing answers there, the DynamoDB variants
//! return early and say so loudly — except in CI (`CI=true`), where both fail.
pub mod aws;
pub mod browser;
pub mod faults;
pub mod soak_report;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use myloware::config::DatabaseConfig;
use myloware::store::prelude::*;
use myloware::store::{self, DynamoDbStore, Store};
use sqlx::Connection;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store under test, and how to open it again (to check what survived).
#[derive(Debug)]
pub struct StoreUnderTest {
    pub store: Arc<dyn Store>,
    pub database: DatabaseConfig,
    /// The emulator a DynamoDB store talks to; `None` for the SQL stores.
    pub aws_endpoint: Option<String>,
}

impl StoreUnderTest {
    /// A second, independent connection to the same database: for DynamoDB a
    /// new SDK configuration and client on the same table, opened as
    /// `store::open` opens one (with `migrate`).
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match (&self.database, &self.aws_endpoint) {
            (DatabaseConfig::DynamoDb { table }, Some(endpoint)) => {
                let store = DynamoDbStore::new(&aws::sdk_config(endpoint).await, table.as_str());
                store.migrate().await.expect("reopen the DynamoDB table");
                Arc::new(store)
            }
            _ => store::connect(&self.database)
                .await
                .expect("reopen the store"),
        }
    }
}

/// Runs `test` against a fresh SQLite file in a temporary folder.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(StoreUnderTest) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let database = DatabaseConfig::Sqlite {
        path: dir.path().join("mw.db"),
    };
    let store = store::connect(&database).await.expect("open sqlite store");
    test(StoreUnderTest {
        store,
        database,
        aws_endpoint: None,
    })
    .await;
}

/// Whether the Postgres variants should run; prints why not when they don't.
pub fn postgres_enabled() -> bool {
    if std::env::var("MW_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: Postgres test (MW_SKIP_POSTGRES=1: no server to test against)");
        return false;
    }
    true
}

pub fn postgres_admin_url() -> String {
    std::env::var("MW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database of its own on the Postgres server, dropped afterwards.
#[derive(Debug)]
pub struct PostgresTestDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PostgresTestDb {
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Postgres is not reachable at {admin_url}: {e}\n\
                 Start it, point MW_TEST_POSTGRES_URL at one, or set MW_SKIP_POSTGRES=1 to skip \
                 the Postgres tests."
                )
            });
        let name = format!("mwt_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
        }
    }

    pub async fn drop_database(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// Runs `test` against a fresh database on the Postgres server.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(StoreUnderTest) -> Fut,
    Fut: Future<Output = ()>,
{
    if !postgres_enabled() {
        return;
    }
    let db = PostgresTestDb::create().await;
    let database = DatabaseConfig::Postgres {
        url: db.url.clone(),
    };
    let store = store::connect(&database)
        .await
        .expect("open postgres store");
    let outcome = AssertUnwindSafe(test(StoreUnderTest {
        store,
        database,
        aws_endpoint: None,
    }))
    .catch_unwind()
    .await;
    db.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `test` against a fresh table on moto's DynamoDB, deleted afterwards.
pub async fn on_dynamodb<F, Fut>(test: F)
where
    F: FnOnce(StoreUnderTest) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(aws::Emulator {
        endpoint,
        sdk: config,
    }) = aws::emulator().await
    else {
        return;
    };
    let table = format!("mwt-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoDbStore::new(&config, table.as_str());
    store.migrate().await.expect("create the DynamoDB table");
    let database = DatabaseConfig::DynamoDb {
        table: table.clone(),
    };
    let outcome = AssertUnwindSafe(test(StoreUnderTest {
        store: Arc::new(store),
        database,
        aws_endpoint: Some(endpoint),
    }))
    .catch_unwind()
    .await;
    let _ = aws_sdk_dynamodb::Client::new(&config)
        .delete_table()
        .table_name(&table)
        .send()
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A whole stack for one test: its own SQLite store and home in a temporary
/// folder, the API and the mock providers on ephemeral ports.
#[derive(Debug)]
pub struct TestStack {
    pub stack: myloware::wiring::Stack,
    pub client: ApiClient,
    pub dir: tempfile::TempDir,
    pub vars: std::collections::HashMap<String, String>,
}

/// Secrets and paths for a test stack under `dir`, plus `extra` variables.
pub fn stack_vars(
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let mut vars: std::collections::HashMap<String, String> = [
        ("MYLOWARE_HOME", dir.join("home").display().to_string()),
        (
            "DATABASE_URL",
            format!("sqlite:{}", dir.join("mw.db").display()),
        ),
        ("API_KEY", "test-api-key-0123456789".into()),
        ("HITL_SECRET", "test-hitl-secret-0123456789".into()),
        (
            "KIEAI_WEBHOOK_SECRET",
            "test-kieai-secret-0123456789".into(),
        ),
        (
            "UPLOAD_POST_WEBHOOK_SECRET",
            "test-upload-secret-0123456789".into(),
        ),
        ("MOCK_LATENCY_MS", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

/// Mock providers' settings for a stack made with `stack_vars`: they sign
/// their callbacks with its webhook secrets, answer after `latency`, and
/// retry a failed delivery after half a second (doubling), as providers do.
pub fn mock_config(latency: std::time::Duration) -> myloware::providers::mock::MockConfig {
    let mut config = myloware::providers::mock::MockConfig::new(
        latency,
        secrecy::SecretString::from("test-kieai-secret-0123456789".to_owned()),
        secrecy::SecretString::from("test-upload-secret-0123456789".to_owned()),
    );
    config.retry_backoff = std::time::Duration::from_millis(500);
    config
}

/// `stack_vars` for a stack in live mode whose providers are `mocks` (in
/// another process than the stack's), its callbacks and links at `base`.
pub fn live_stack_vars(
    dir: &std::path::Path,
    mocks: &myloware::providers::mock::MockProviders,
    base: &str,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let urls = mocks.urls();
    let mut vars = vec![
        ("PROVIDERS_MODE", "live"),
        ("KIEAI_BASE_URL", urls.kieai.as_str()),
        ("SHOTSTACK_BASE_URL", urls.shotstack.as_str()),
        ("UPLOAD_POST_BASE_URL", urls.upload_post.as_str()),
        ("KIEAI_API_KEY", "k-kieai"),
        ("SHOTSTACK_API_KEY", "k-shotstack"),
        ("UPLOAD_POST_API_KEY", "k-upload"),
        ("WEBHOOK_BASE_URL", base),
        ("PUBLIC_BASE_URL", base),
    ];
    vars.extend_from_slice(extra);
    stack_vars(dir, &vars)
}

pub fn config_from(vars: &std::collections::HashMap<String, String>) -> myloware::Config {
    myloware::Config::from_lookup(|k| vars.get(k).cloned()).expect("test config")
}

impl TestStack {
    pub async fn start(extra: &[(&str, &str)]) -> TestStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let vars = stack_vars(dir.path(), extra);
        Self::start_with(dir, vars, myloware::wiring::StackOptions::ephemeral()).await
    }

    pub async fn start_with(
        dir: tempfile::TempDir,
        vars: std::collections::HashMap<String, String>,
        options: myloware::wiring::StackOptions,
    ) -> TestStack {
        let config = config_from(&vars);
        let stack = myloware::wiring::Stack::start(&config, options)
            .await
            .expect("stack starts");
        let client = ApiClient::new(&stack.base_url, "test-api-key-0123456789");
        TestStack {
            stack,
            client,
            dir,
            vars,
        }
    }

    pub fn config(&self) -> myloware::Config {
        config_from(&self.vars)
    }

    /// Starts a run of `project` through the API.
    pub async fn start_run(&self, project: &str) -> serde_json::Value {
        let (status, run) = self
            .client
            .post("/v1/runs", serde_json::json!({ "project": project }))
            .await;
        assert_eq!(status, 201, "{run}");
        run
    }

    pub async fn evidence(&self, run: &str) -> myloware::pipeline::Evidence {
        let (status, body) = self.client.get(&format!("/v1/runs/{run}/evidence")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).expect("evidence")
    }

    /// Polls the run's evidence until `done` holds, or fails after `secs`.
    pub async fn wait_for(
        &self,
        run: &str,
        secs: u64,
        what: &str,
        done: impl Fn(&myloware::pipeline::Evidence) -> bool,
    ) -> myloware::pipeline::Evidence {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let evidence = self.evidence(run).await;
            if done(&evidence) {
                return evidence;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {run} never reached: {what}; it is {} with error {:?}",
                evidence.run.status,
                evidence.run.error
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until the run is `status`; for a final status, also until its
    /// execution has ended: the worker records the run's end, then tells the
    /// engine, so the two land one after the other.
    pub async fn wait_for_status(
        &self,
        run: &str,
        status: myloware::domain::RunStatus,
    ) -> myloware::pipeline::Evidence {
        self.wait_for(run, 30, status.as_str(), |e| {
            let execution_ended = e.history.last().is_none_or(|h| {
                h.event_type.starts_with("Execution") && h.event_type != "ExecutionStarted"
            });
            e.run.status == status && (!status.is_terminal() || execution_ended)
        })
        .await
    }

    /// Waits until `gate` waits for a decision: its request recorded and the
    /// run marked awaiting approval (the gate task writes the one, then the
    /// other).
    pub async fn wait_for_gate(&self, run: &str, gate: &str) -> myloware::pipeline::Evidence {
        self.wait_for(run, 30, &format!("gate {gate} waiting"), |e| {
            e.run.status == myloware::domain::RunStatus::AwaitingApproval
                && e.hitl_requests
                    .iter()
                    .any(|g| g.gate.as_str() == gate && g.decision.is_none())
        })
        .await
    }
}

/// Starts a run of `project`, approves each gate when it waits, and answers
/// the evidence once the run has ended.
pub async fn drive(client: &ApiClient, project: &str, secs: u64) -> myloware::pipeline::Evidence {
    let (status, run) = client
        .post("/v1/runs", serde_json::json!({"project": project}))
        .await;
    assert_eq!(status, 201, "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (status, body) = client.get(&format!("/v1/runs/{id}/evidence")).await;
        assert_eq!(status, 200, "{body}");
        let e: myloware::pipeline::Evidence = serde_json::from_value(body).unwrap();
        if e.run.status.is_terminal() {
            return e;
        }
        for gate in e.hitl_requests.iter().filter(|g| g.decision.is_none()) {
            let path = format!("/v1/hitl/approve/{id}/{}", gate.gate);
            let (status, body) = client.post(&path, serde_json::json!({})).await;
            assert!(status == 200 || status == 409, "{status} {body}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} did not end in {secs} s: {} at {:?}",
            e.run.status,
            e.history.last().map(|h| &h.event_type)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until a server at `base` answers `/health` (10 s at most).
pub async fn wait_healthy(base: &str) {
    for _ in 0..400 {
        if reqwest::get(format!("{base}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("mw serve did not come up at {base}");
}

/// A small JSON client over real HTTP, with the API key.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub base: String,
    key: String,
    pub http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.try_get(path).await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.try_post(path, body).await.expect("POST")
    }

    /// The body of `GET path` as text, with the API key and an `Accept` of
    /// `accept` (`text/html` for a page; `text/plain` for `/metrics`).
    pub async fn get_text(&self, path: &str, accept: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .header("accept", accept)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("a body")
    }

    /// `get`, answering a failure to reach the server instead of panicking.
    pub async fn try_get(&self, path: &str) -> reqwest::Result<(u16, serde_json::Value)> {
        let request = self.http.get(format!("{}{path}", self.base));
        Self::answer(request.header("x-api-key", &self.key).send().await?).await
    }

    /// `post`, answering a failure to reach the server instead of panicking.
    pub async fn try_post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Result<(u16, serde_json::Value)> {
        self.try_post_once(path, body, None).await
    }

    /// `try_post` naming the request with an `Idempotency-Key`, so that one
    /// sent again after a lost answer changes nothing twice.
    pub async fn try_post_once(
        &self,
        path: &str,
        body: serde_json::Value,
        key: Option<&str>,
    ) -> reqwest::Result<(u16, serde_json::Value)> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.key);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        Self::answer(request.json(&body).send().await?).await
    }

    async fn answer(response: reqwest::Response) -> reqwest::Result<(u16, serde_json::Value)> {
        let status = response.status().as_u16();
        Ok((
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        ))
    }
}

/// A new run of `project` (mock providers), moved to `running`.
pub async fn running_run(store: &dyn Store, project: &str) -> myloware::domain::Run {
    use myloware::domain::{NewRun, ProvidersMode, RunStatus};
    let run = store
        .create_run(NewRun::new(
            project.parse().expect("a known project"),
            serde_json::json!({"prompt": "a glass apple"}),
            ProvidersMode::Mock,
        ))
        .await
        .expect("run created");
    store
        .transition_run(myloware::store::Transition::new(
            run.run_id,
            RunStatus::Pending,
            RunStatus::Running,
        ))
        .await
        .expect("run running")
}
