//! `mw logs`: the JSON lines every `mw` process also writes to
//! `<home>/logs/mw.log`, filtered by run, persona, provider, level, and to
//! the inbound webhooks' lines.
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::UserError;
use crate::cli::LogsArgs;
use crate::output::outln;

fn rank(level: &str) -> Option<u8> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Some(4),
        "warn" => Some(3),
        "info" => Some(2),
        "debug" => Some(1),
        "trace" => Some(0),
        _ => None,
    }
}

/// A field anywhere in the line: the event's own fields or its spans'.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line.get(name)
        .and_then(Value::as_str)
        .or_else(|| {
            line.pointer(&format!("/span/{name}"))
                .and_then(Value::as_str)
        })
        .or_else(|| {
            line.get("spans")?
                .as_array()?
                .iter()
                .find_map(|s| s.get(name).and_then(Value::as_str))
        })
}

/// Whether a line is about an inbound webhook: the route's own lines and
/// those of the callbacks it hands over.
fn is_webhook_line(line: &Value) -> bool {
    let target = line.get("target").and_then(Value::as_str).unwrap_or("");
    let message = line.get("message").and_then(Value::as_str).unwrap_or("");
    target.starts_with("myloware::api::webhooks")
        || target.starts_with("myloware::webhooks")
        || target.starts_with("myloware::pipeline::callbacks")
        || message.contains("webhook")
        || message.contains("callback")
}

fn matches(line: &Value, args: &LogsArgs, min: u8) -> bool {
    let level = line
        .get("level")
        .and_then(Value::as_str)
        .and_then(rank)
        .unwrap_or(2);
    level >= min
        && args.run_id.as_deref().is_none_or(|id| {
            field(line, "run_id").is_some_and(|r| r == id) || line.to_string().contains(id)
        })
        && args
            .persona
            .as_deref()
            .is_none_or(|p| field(line, "persona") == Some(p))
        && args
            .provider
            .as_deref()
            .is_none_or(|p| field(line, "provider") == Some(p))
        && (!args.webhooks || is_webhook_line(line))
}

/// The run id `--run-id` names: a run id as given, a job code looked up in
/// the store. `mw logs` creates nothing: a SQLite store that does not exist
/// yet is an error here, not a new file.
async fn run_id_of(key: &str, config: &myloware::Config) -> anyhow::Result<String> {
    use myloware::domain::RunRef;
    let code = match key.parse::<RunRef>() {
        Ok(RunRef::Id(id)) => return Ok(id.to_string()),
        Ok(RunRef::Code(code)) => code,
        Err(e) => return Err(UserError(format!("--run-id: {e}")).into()),
    };
    let store = super::existing_store(config).await?;
    match store.find_run_by_job_code(&code).await? {
        Some(run) => Ok(run.run_id.to_string()),
        None => Err(UserError(format!("--run-id {code}: no run has this job code")).into()),
    }
}

fn show(line: &Value, raw: &str, json: bool) {
    if json {
        outln!("{raw}");
        return;
    }
    let ts = line.get("timestamp").and_then(Value::as_str).unwrap_or("-");
    let level = line.get("level").and_then(Value::as_str).unwrap_or("-");
    let message = line.get("message").and_then(Value::as_str).unwrap_or("-");
    let mut fields: Vec<String> = line
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "timestamp" | "level" | "message" | "target" | "span" | "spans"
                    )
                })
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    outln!("{ts} {level:<5} {message}  {}", fields.join(" "));
}

pub async fn run(mut args: LogsArgs, config: &myloware::Config) -> anyhow::Result<ExitCode> {
    let min = rank(&args.level).ok_or_else(|| {
        UserError(format!(
            "--level {:?}: expected error, warn, info, debug or trace",
            args.level
        ))
    })?;
    if let Some(key) = &args.run_id {
        args.run_id = Some(run_id_of(key, config).await?);
    }
    let path = myloware::telemetry::log_file(&config.home);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(_) if !args.follow => {
            return Err(UserError(format!(
                "no log file at {} yet: run a command first",
                path.display()
            ))
            .into())
        }
        Err(_) => {
            myloware::private_files::create_dir(path.parent().expect("a folder"))?;
            myloware::private_files::append(&path)?;
            std::fs::File::open(&path)?
        }
    };
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 {
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let position = reader.stream_position()?;
            reader.seek(SeekFrom::Start(position))?;
            continue;
        }
        let raw = line.trim_end();
        if let Ok(value) = serde_json::from_str::<Value>(raw) {
            if matches(&value, &args, min) {
                show(&value, raw, args.json);
            }
        }
    }
}
