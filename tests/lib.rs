//! Helpers shared by the workspace integration tests (`tests/it`): each test
//! gets a store of its own — a fresh SQLite file, or a fresh database on the
//! Postgres server — so tests never see each other's rows.
//!
//! Postgres: `MW_TEST_POSTGRES_URL` names an admin connection (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). With `MW_SKIP_POSTGRES=1`
//! the Postgres variants return early and say so; without it an unreachable
//! server fails the test with a message saying how to skip. `scripts/test`
//! sets the variable, and prints why, when no server answers.
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use myloware::config::DatabaseConfig;
use myloware::store::{self, Store};
use sqlx::Connection;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store under test, and how to open it again (to check what survived).
#[derive(Debug)]
pub struct StoreUnderTest {
    pub store: Arc<dyn Store>,
    pub database: DatabaseConfig,
}

impl StoreUnderTest {
    /// A second, independent connection to the same database.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        store::connect(&self.database)
            .await
            .expect("reopen the store")
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
    test(StoreUnderTest { store, database }).await;
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
    let outcome = AssertUnwindSafe(test(StoreUnderTest { store, database }))
        .catch_unwind()
        .await;
    db.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
