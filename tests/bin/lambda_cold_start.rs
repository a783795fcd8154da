//! Cold starts of the Lambda bootstraps, measured on this machine against a
//! small emulator of the Lambda Runtime API.
//!
//! For each function and each run it listens on a fresh loopback port, spawns
//! `<dir>/<function>/bootstrap` with `AWS_LAMBDA_RUNTIME_API` pointing there,
//! the `AWS_LAMBDA_*` variables Lambda sets and the variables `template.yaml`
//! gives the functions (Step Functions, DynamoDB, SQS: a deployment made
//! once on the local AWS emulator before the first measure), answers
//! its first `GET …/invocation/next` with one event (with the request id,
//! deadline, function ARN and trace id headers) and waits for
//! `POST …/invocation/{id}/response`. It prints, per function, the bootstrap's
//! size and the medians of
//! - init: process start → its first `invocation/next` (what Lambda bills as
//!   Init Duration: config, telemetry, the DynamoDB table checked, engine and
//!   clients built), and
//! - first answer: process start → the first invocation's response.
//!
//! ```text
//! cargo lambda build --release --x86-64        # bootstraps this machine can run
//! scripts/moto.sh start                        # the AWS emulator, on MOTO_PORT (5123)
//! cargo run -p myloware-tests --bin lambda-cold-start -- [--runs 20] [--dir target/lambda] [FUNCTION…]
//! ```
//! `--aws-endpoint URL` names the emulator (default: `MW_TEST_AWS_ENDPOINT`,
//! else `http://127.0.0.1:$MOTO_PORT`); its answers are loopback calls, so
//! the init figure has the table check's round trip at loopback cost.
//! `--runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"` starts each bootstrap
//! through that command: the arm64 bootstraps Lambda runs, on an x86-64
//! machine (their times are then the emulator's, not Lambda's; what counts is
//! that they start and answer).
//! Exits 1 when a bootstrap fails to start or answers with an error.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

const FUNCTIONS: &[&str] = &["chat", "webhook", "hitl", "runs", "worker", "callbacks"];
const API_KEY: &str = "cold-start-bench-api-key-0123456789";
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    let mut runs = 20usize;
    let mut dir = PathBuf::from("target/lambda");
    let mut only = Vec::new();
    let mut runner = Vec::new();
    let mut endpoint = myloware_tests::aws::endpoint();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--dir" => dir = args.next().context("--dir DIR")?.into(),
            "--aws-endpoint" => endpoint = args.next().context("--aws-endpoint URL")?,
            "--runner" => {
                runner = args
                    .next()
                    .context("--runner COMMAND")?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            }
            "-h" | "--help" => {
                println!(
                    "lambda-cold-start [--runs N] [--dir target/lambda] [--runner COMMAND] \
                     [--aws-endpoint URL] [FUNCTION…]"
                );
                return Ok(());
            }
            name if FUNCTIONS.contains(&name) => only.push(name.to_owned()),
            other => bail!("unknown argument {other:?} (functions: {FUNCTIONS:?})"),
        }
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let functions: Vec<String> = if only.is_empty() {
        FUNCTIONS.iter().map(|f| f.to_string()).collect()
    } else {
        only
    };
    let env = tokio::runtime::Runtime::new()?.block_on(async {
        let emulator = myloware_tests::aws::Emulator::at(&endpoint).await?;
        anyhow::Ok(emulator.deploy("cold-start").await?.env(&endpoint))
    })?;

    println!(
        "{:<10} {:>10} {:>12} {:>14} {:>12}   ({runs} runs each, medians)",
        "function", "size", "init", "first answer", "init max"
    );
    for function in &functions {
        let bootstrap = dir.join(function).join("bootstrap");
        let size = std::fs::metadata(&bootstrap)
            .with_context(|| {
                format!(
                    "{}: build the bootstraps first (cargo lambda build --release --x86-64)",
                    bootstrap.display()
                )
            })?
            .len();
        let mut inits = Vec::new();
        let mut answers = Vec::new();
        for run in 0..runs {
            let m = measure(function, &bootstrap, &runner, &env)
                .with_context(|| format!("{function}, run {}", run + 1))?;
            inits.push(m.init);
            answers.push(m.answer);
        }
        let max_init = inits.iter().max().copied().unwrap_or_default();
        println!(
            "{:<10} {:>7.2} MB {:>9.1} ms {:>11.1} ms {:>9.1} ms",
            function,
            size as f64 / 1_048_576.0,
            ms(median(&mut inits)),
            ms(median(&mut answers)),
            ms(max_init),
        );
    }
    Ok(())
}

struct Measured {
    init: Duration,
    answer: Duration,
}

/// What the emulator saw, in order.
enum Seen {
    Next(Instant),
    Response(Instant, String),
    Error(String),
}

fn measure(
    function: &str,
    bootstrap: &Path,
    runner: &[String],
    env: &[(&str, String)],
) -> Result<Measured> {
    // Absolute: the process starts in its own working folder.
    let bootstrap = &bootstrap.canonicalize()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let home = tempfile::tempdir()?;
    let event = event_for(function, env);
    let (seen_tx, seen) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || serve(listener, event, seen_tx, stop))
    };

    let started = Instant::now();
    let mut command = match runner.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(bootstrap);
            command
        }
        None => Command::new(bootstrap),
    };
    let child = command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/28/[$LATEST]cold-start",
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env(
            "LAMBDA_TASK_ROOT",
            bootstrap.parent().unwrap_or(Path::new(".")),
        )
        .env("MYLOWARE_HOME", home.path())
        .env("PUBLIC_BASE_URL", "https://api.example.test")
        .env("API_KEY", API_KEY)
        .env("HITL_SECRET", "cold-start-bench-hitl-secret-0123")
        .env("KIEAI_WEBHOOK_SECRET", "cold-start-bench-kieai-secret-01")
        .env(
            "UPLOAD_POST_WEBHOOK_SECRET",
            "cold-start-bench-upload-secret-0",
        )
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bootstrap.display()))?;
    let mut child = KillOnDrop(child);

    let mut init = None;
    let outcome = loop {
        let left = TIMEOUT.saturating_sub(started.elapsed());
        match seen.recv_timeout(left) {
            Ok(Seen::Next(at)) => {
                init.get_or_insert(at - started);
            }
            Ok(Seen::Response(at, body)) => break Ok((at - started, body)),
            Ok(Seen::Error(what)) => break Err(anyhow::anyhow!("{what}")),
            Err(_) => {
                let exited = child.0.try_wait()?;
                break Err(anyhow::anyhow!(
                    "no answer within {TIMEOUT:?} (process: {})",
                    exited.map_or("still running".into(), |s| s.to_string())
                ));
            }
        }
    };
    child.0.kill().ok();
    let status = child.0.wait()?;
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(addr); // wakes the accept loop, which sees `stop`
    let _ = server.join();
    match outcome {
        Ok((answer, body)) => {
            check_answer(function, &body)?;
            Ok(Measured {
                init: init.context("answered without asking for an event")?,
                answer,
            })
        }
        Err(e) => {
            let mut stderr = String::new();
            if let Some(mut err) = child.0.stderr.take() {
                err.read_to_string(&mut stderr).ok();
            }
            bail!("{e}; exit {status}; stderr:\n{}", tail(&stderr, 20))
        }
    }
}

/// The answer is the one the event asks for, not just any bytes.
fn check_answer(function: &str, body: &str) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("response is not JSON: {body}"))?;
    let ok = match function {
        "worker" | "callbacks" => {
            // The one malformed record is reported as a batch item failure.
            value["batchItemFailures"][0]["itemIdentifier"] == "cold-start-record-1"
        }
        "webhook" => value["statusCode"].as_u64().is_some_and(|s| s >= 400),
        "hitl" => value["statusCode"] == 404,
        _ => value["statusCode"] == 200,
    };
    if !ok {
        bail!("unexpected answer from {function}: {body}");
    }
    Ok(())
}

/// One request per function that exercises its handler; the queue
/// consumers' records come from the deployment's queues (`env`).
fn event_for(function: &str, env: &[(&str, String)]) -> String {
    let http = |method: &str, path: &str, body: &str| {
        serde_json::json!({
            "version": "2.0",
            "routeKey": format!("{method} {path}"),
            "rawPath": path,
            "rawQueryString": "",
            "headers": {
                "content-type": "application/json",
                "host": "api.example.test",
                "x-api-key": API_KEY,
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "coldstart",
                "domainName": "api.example.test",
                "domainPrefix": "api",
                "http": {
                    "method": method, "path": path, "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1", "userAgent": "lambda-cold-start",
                },
                "requestId": "cold-start",
                "routeKey": format!("{method} {path}"),
                "stage": "$default",
                "time": "28/Nov/2026:12:00:00 +0000",
                "timeEpoch": 1_795_867_200_000u64,
            },
            "body": body,
            "isBase64Encoded": false,
        })
        .to_string()
    };
    match function {
        "chat" => http(
            "POST",
            "/v1/chat/brendan",
            r#"{"user_id":"bench","message":"list my runs"}"#,
        ),
        "runs" => http("GET", "/v1/runs", ""),
        "hitl" => http(
            "GET",
            "/v1/hitl/link/0193a3a0-0000-7000-8000-000000000000/ideate",
            "",
        ),
        "webhook" => http("POST", "/v1/webhooks/kieai", r#"{"code":200}"#),
        _ => {
            let variable = if function == "worker" {
                "TASK_QUEUE_URL"
            } else {
                "CALLBACK_QUEUE_URL"
            };
            let url = env
                .iter()
                .find(|(k, _)| *k == variable)
                .map(|(_, v)| v.as_str());
            let queue = myloware::lambda::queue_name(url.unwrap_or(function));
            serde_json::json!({
            "Records": [{
                "messageId": "cold-start-record-1",
                "receiptHandle": "cold-start",
                "body": "{\"not\":\"a message\"}",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795867200000"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
                "awsRegion": "us-east-1",
            }]
            })
            .to_string()
        }
    }
}

/// The Runtime API, as much as one invocation needs. Each connection gets a
/// thread; the runtime's client keeps connections alive between requests.
fn serve(listener: TcpListener, event: String, seen: mpsc::Sender<Seen>, stop: Arc<AtomicBool>) {
    let mut handed_out = false;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { return };
        let event = (!handed_out).then(|| event.clone());
        handed_out = true;
        let seen = seen.clone();
        std::thread::spawn(move || {
            let _ = connection(stream, event, &seen);
        });
    }
}

fn connection(
    stream: TcpStream,
    mut event: Option<String>,
    seen: &mpsc::Sender<Seen>,
) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some((method, path, body)) = read_request(&mut reader)? else {
            return Ok(());
        };
        let at = Instant::now();
        match (method.as_str(), path.as_str()) {
            ("GET", "/2018-06-01/runtime/invocation/next") => {
                let _ = seen.send(Seen::Next(at));
                let Some(event) = event.take() else {
                    // No second invocation: the process is about to be killed.
                    return Ok(());
                };
                let deadline = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() + 30_000;
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", REQUEST_ID.to_owned()),
                    ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:cold-start".to_owned(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-674846c0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=0"
                            .to_owned(),
                    ),
                ];
                respond(&mut writer, 200, &headers, &event)?;
            }
            ("POST", p) if p == format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/response") => {
                respond(&mut writer, 202, &[], "{}")?;
                let _ = seen.send(Seen::Response(at, body));
            }
            ("POST", p) if p.ends_with("/error") => {
                respond(&mut writer, 202, &[], "{}")?;
                let _ = seen.send(Seen::Error(format!("the runtime reported {p}: {body}")));
            }
            _ => respond(&mut writer, 404, &[], "{}")?,
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body); `None` at EOF.
fn read_request(reader: &mut impl BufRead) -> Result<Option<(String, String, String)>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = headers.get("content-length") {
        body.resize(len.parse()?, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some((
        method,
        path,
        String::from_utf8_lossy(&body).into_owned(),
    )))
}

fn respond(w: &mut impl Write, status: u16, headers: &[(&str, String)], body: &str) -> Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        if status < 300 { "OK" } else { "Not Found" },
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    w.flush()?;
    Ok(())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
