//! What the benches share: their settings from the environment, and the
//! backends a store or engine bench runs on. Each bench uses part of it.
#![allow(dead_code)]

use std::future::Future;

use myloware::config::DatabaseConfig;
use sqlx::Connection;

/// A count from the environment variable `name`, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `bench` on SQLite, then on Postgres when it is reachable
/// (`MW_BENCH_POSTGRES_URL` names the admin database, default
/// `postgres://postgres@127.0.0.1:5432/postgres`), each in a database of its
/// own that is dropped after.
pub async fn on_each_backend<F, Fut>(mut bench: F)
where
    F: FnMut(&'static str, DatabaseConfig) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = DatabaseConfig::Sqlite {
        path: dir.path().join("bench.db"),
    };
    bench("sqlite", sqlite).await;

    let admin = std::env::var("MW_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match sqlx::PgConnection::connect(&admin).await {
        Ok(mut conn) => {
            let name = format!("mw_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let pg = DatabaseConfig::Postgres {
                url: format!("{base}/{name}"),
            };
            bench("postgres", pg).await;
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Err(e) => println!("postgres: skipped ({e})"),
    }
}
