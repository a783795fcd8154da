//! `mw chat "…"`: talk to Brendan.
use crate::output::outln;
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::ChatArgs;
use crate::connect::connect;

pub async fn run(
    args: ChatArgs,
    api_base: Option<&str>,
    config: &myloware::Config,
) -> anyhow::Result<ExitCode> {
    let connection = connect(config, api_base).await?;
    let answer = connection
        .client
        .post::<Value>(
            "/v1/chat/brendan",
            &json!({ "user_id": args.user, "message": args.message }),
        )
        .await;
    connection.close().await;
    let answer = answer?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        outln!("{}", answer["response"].as_str().unwrap_or("-"));
        if let Some(ids) = answer["run_ids"].as_array().filter(|ids| !ids.is_empty()) {
            let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
            eprintln!("runs: {}", ids.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
