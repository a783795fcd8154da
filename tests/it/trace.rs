//! Run trees: a chat-started run's spans reach an OTLP/HTTP receiver as one
//! tree (graph → personas → LLM and tool calls), and a run paused at a gate
//! shows its gate span open in the store, the API and `mw trace`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use myloware::domain::{RunId, RunStatus, SpanId};
use myloware_tests::TestStack;
use serde_json::{json, Value};

type Received = Arc<Mutex<Vec<Value>>>;

/// An OTLP/HTTP receiver on a free loopback port: keeps every JSON body
/// POSTed to `/v1/traces` and the `x-api-key` header that came with it.
async fn otlp_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    async fn collect(
        State(received): State<Received>,
        headers: axum::http::HeaderMap,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        received
            .lock()
            .unwrap()
            .push(json!({ "x-api-key": key, "body": body }));
        Json(json!({}))
    }
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Every exported span, flattened out of the requests.
fn spans(received: &Received) -> Vec<Value> {
    let requests = received.lock().unwrap().clone();
    let mut out = Vec::new();
    for request in requests {
        let body = &request["body"];
        for rs in body["resourceSpans"].as_array().unwrap() {
            assert_eq!(
                rs["resource"]["attributes"][0],
                json!({"key": "service.name", "value": {"stringValue": "myloware"}})
            );
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

/// Asks Brendan for a test-video-gen run: the run's id and the chat turn's
/// trace id.
async fn run_started_in_chat(t: &TestStack) -> (String, String) {
    let (status, answer) = t
        .client
        .post(
            "/v1/chat/brendan",
            json!({ "user_id": "dev", "message": "Start a test video gen run" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let text = |key: &str, value: &Value| {
        value
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {answer}"))
            .to_owned()
    };
    (
        text("run_ids", &answer["run_ids"][0]),
        text("trace_id", &answer["trace_id"]),
    )
}

/// `mw trace key` against the test stack's API: what it printed (it must
/// succeed).
fn mw_trace(t: &TestStack, key: &str) -> String {
    let out = std::process::Command::new(crate::cli::mw_binary())
        .args(["trace", key, "--api-base", &t.stack.base_url])
        .env("API_KEY", "test-api-key-0123456789")
        .env("MYLOWARE_HOME", t.dir.path().join("cli-home"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chat_started_run_exports_one_tree_over_otlp() {
    let (endpoint, received) = otlp_receiver().await;
    let t = TestStack::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=otlp-test-key"),
    ])
    .await;
    let (run_id, chat_trace) = run_started_in_chat(&t).await;
    let run_id: RunId = run_id.parse().unwrap();
    t.wait_for_status(&run_id.to_string(), RunStatus::Published)
        .await;
    t.stack.pipeline.tracer.flush().await;

    let trace = run_id.as_uuid().simple().to_string();
    let graph_id = SpanId::graph(run_id).to_string();
    let personas = ["iggy", "riley", "alex", "quinn"];
    // The callbacks consumer closes the last persona as its job settles; the
    // exporter sends what closed, so wait until the root arrives.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let all = loop {
        let all = spans(&received);
        if all.iter().any(|s| s["spanId"] == graph_id) {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no graph span exported; got {all:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        t.stack.pipeline.tracer.flush().await;
    };
    assert!(received
        .lock()
        .unwrap()
        .iter()
        .all(|r| r["x-api-key"] == "otlp-test-key"));

    // The run's spans: one trace, the graph span its only root.
    let run_spans: Vec<&Value> = all.iter().filter(|s| s["traceId"] == trace).collect();
    let roots: Vec<&&Value> = run_spans
        .iter()
        .filter(|s| s.get("parentSpanId").is_none())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert_eq!(roots[0]["name"], "test-video-gen-graph");
    assert_eq!(roots[0]["spanId"], graph_id.as_str());
    assert_eq!(roots[0]["status"]["code"], 1);
    let by_id: HashMap<&str, &Value> = run_spans
        .iter()
        .map(|s| (s["spanId"].as_str().unwrap(), *s))
        .collect();
    let mut persona_ids = HashMap::new();
    for persona in personas {
        let name = format!("test-video-gen:{persona}");
        let found: Vec<&&Value> = run_spans.iter().filter(|s| s["name"] == name).collect();
        assert_eq!(found.len(), 1, "{name}: {found:#?}");
        let span = found[0];
        assert_eq!(span["parentSpanId"], graph_id.as_str(), "{name}");
        assert_eq!(span["status"]["code"], 1, "{name}: {span}");
        assert_eq!(
            attr(span, "gen_ai.operation.name"),
            Some(&json!({"stringValue": "invoke_agent"}))
        );
        assert_eq!(
            attr(span, "gen_ai.agent.name"),
            Some(&json!({"stringValue": persona}))
        );
        persona_ids.insert(span["spanId"].as_str().unwrap().to_owned(), persona);
    }
    // Below the personas: their LLM and tool calls, nothing else.
    let mut calls: HashMap<&str, (usize, usize)> = HashMap::new();
    for span in &run_spans {
        let parent = span["parentSpanId"].as_str().unwrap_or_default();
        if span["spanId"] == graph_id.as_str() || parent == graph_id {
            continue;
        }
        let persona = persona_ids
            .get(parent)
            .unwrap_or_else(|| panic!("{} is under {parent}, not a persona", span["name"]));
        assert!(by_id.contains_key(parent));
        let entry = calls.entry(persona).or_default();
        match attr(span, "gen_ai.operation.name") {
            Some(v) if v == &json!({"stringValue": "chat"}) => entry.0 += 1,
            Some(v) if v == &json!({"stringValue": "execute_tool"}) => {
                assert!(attr(span, "gen_ai.tool.name").is_some(), "{span}");
                assert!(attr(span, "input.value").is_some(), "{span}");
                entry.1 += 1
            }
            other => panic!("unexpected span under a persona: {span} ({other:?})"),
        }
        let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(end >= start, "{span}");
    }
    for persona in personas {
        let (llm, tools) = calls.get(persona).copied().unwrap_or_default();
        assert!(
            llm >= 1 && tools >= 1,
            "{persona}: {llm} LLM calls, {tools} tool calls"
        );
    }
    // Riley and Alex finish when their provider jobs settle, in the
    // callbacks consumer: their submit tools are in the tree all the same.
    let riley_tools: Vec<&str> = run_spans
        .iter()
        .filter(|s| {
            persona_ids.get(s["parentSpanId"].as_str().unwrap_or_default()) == Some(&"riley")
        })
        .filter_map(|s| s["name"].as_str())
        .filter(|n| n.starts_with("execute_tool "))
        .collect();
    assert!(!riley_tools.is_empty());

    // The chat turn: its own trace, naming the run it started.
    let chat: Vec<&Value> = all.iter().filter(|s| s["traceId"] == chat_trace).collect();
    let root = chat
        .iter()
        .find(|s| s["name"] == "brendan-chat")
        .expect("a brendan-chat span");
    assert!(root.get("parentSpanId").is_none());
    assert_eq!(
        attr(root, "myloware.run_ids"),
        Some(&json!({"stringValue": run_id.to_string()}))
    );
    assert!(chat
        .iter()
        .any(|s| s["name"] == "execute_tool start_run" && s["parentSpanId"] == root["spanId"]));
    // The run's root links back to the turn that started it, across traces.
    assert_eq!(
        roots[0]["links"],
        json!([{
            "traceId": chat_trace,
            "spanId": root["spanId"],
            "attributes": [{"key": "myloware.link", "value": {"stringValue": "started_from_chat_turn"}}],
        }]),
        "{:#}",
        roots[0]
    );
    // `mw trace` says so.
    let text = mw_trace(&t, &run_id.to_string());
    let graph_line = text
        .lines()
        .find(|l| l.starts_with("test-video-gen-graph"))
        .unwrap_or_else(|| panic!("{text}"));
    let chat_span = root["spanId"].as_str().unwrap();
    assert!(
        graph_line.contains(&format!(
            "started from chat turn {chat_span} (trace {chat_trace})"
        )),
        "{text}"
    );

    // The store holds the same tree, every span closed.
    let (status, tree) = t.client.get(&format!("/v1/runs/{run_id}/spans")).await;
    assert_eq!(status, 200, "{tree}");
    let stored = tree["spans"].as_array().unwrap();
    assert_eq!(stored.len(), run_spans.len());
    assert!(stored.iter().all(|s| s["status"] == "ok"), "{tree:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_waiting_at_a_gate_shows_the_gate_span_open() {
    let t = TestStack::start(&[]).await;
    let run = t.start_run("aismr").await;
    let id = run["run_id"].as_str().unwrap().to_owned();
    t.wait_for_gate(&id, "ideate").await;

    let (status, tree) = t.client.get(&format!("/v1/runs/{id}/spans")).await;
    assert_eq!(status, 200, "{tree}");
    let spans = tree["spans"].as_array().unwrap();
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span in {tree:#}"))
    };
    assert_eq!(named("aismr-graph")["status"], "open");
    assert_eq!(named("aismr:iggy")["status"], "ok");
    let gate = named("aismr:gate:ideate");
    assert_eq!(gate["status"], "open");
    assert_eq!(gate["end_time"], Value::Null);
    assert_eq!(gate["parent_span_id"], named("aismr-graph")["span_id"]);

    // `mw trace` through the API shows it open, by job code too.
    let code = run["job_code"].as_str().unwrap();
    let text = mw_trace(&t, code);
    assert!(text.contains("aismr-graph  … open"), "{text}");
    let gate_line = text
        .lines()
        .find(|l| l.contains("aismr:gate:ideate"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(gate_line.contains("… open"), "{text}");
    assert!(text.contains("aismr:iggy  ok"), "{text}");

    // Approved: the gate span closes, the next one opens.
    let (status, body) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    t.wait_for_gate(&id, "prepublish").await;
    let (_, tree) = t.client.get(&format!("/v1/runs/{id}/spans")).await;
    let spans = tree["spans"].as_array().unwrap();
    let status_of = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status_of("aismr:gate:ideate"), Some(json!("ok")));
    assert_eq!(status_of("aismr:gate:prepublish"), Some(json!("open")));

    // Cancelled: nothing is left open.
    let (status, body) = t
        .client
        .post(&format!("/v1/runs/{id}/cancel"), json!({ "by": "test" }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, tree) = t.client.get(&format!("/v1/runs/{id}/spans")).await;
    let spans = tree["spans"].as_array().unwrap();
    assert!(spans.iter().all(|s| s["status"] != "open"), "{tree:#}");
    assert_eq!(
        status_of("aismr:gate:prepublish"),
        Some(json!("open")),
        "the earlier read"
    );
    let graph = spans.iter().find(|s| s["name"] == "aismr-graph").unwrap();
    assert_eq!(graph["status"], "error");
    assert!(
        graph["error"].as_str().unwrap().contains("cancelled"),
        "{graph}"
    );
}

/// The trace id a chat turn answers opens its `brendan-chat` tree — over
/// the API and with `mw trace` — with the run the turn started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chat_turn_opens_by_its_trace_id() {
    let t = TestStack::start(&[]).await;
    let (run_id, chat_trace) = run_started_in_chat(&t).await;

    let (status, tree) = t.client.get(&format!("/v1/traces/{chat_trace}")).await;
    assert_eq!(status, 200, "{tree}");
    let names: Vec<&str> = tree["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"brendan-chat"), "{names:?}");
    assert!(names.iter().any(|n| n.contains("start_run")), "{names:?}");
    assert_eq!(tree["runs"][0]["run_id"], run_id.as_str());
    let (status, _) = t
        .client
        .get(&format!("/v1/traces/{}", "0".repeat(32)))
        .await;
    assert_eq!(status, 404, "a trace nobody recorded");
    let (status, _) = t.client.get("/v1/traces/not-a-trace").await;
    assert_eq!(status, 400);

    let text = mw_trace(&t, &chat_trace);
    assert!(
        text.starts_with(&format!("chat turn  trace {chat_trace}")),
        "{text}"
    );
    assert!(text.contains("brendan-chat"), "{text}");
    let code = tree["runs"][0]["job_code"].as_str().unwrap();
    assert!(
        text.contains(&format!("started run {code} ({run_id})")),
        "{text}"
    );
}

/// `mw live-run` on the embedded stack exports its run's whole tree over
/// OTLP before it exits: the root closed, a span per persona.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_run_exports_the_whole_tree_before_it_exits() {
    let (endpoint, received) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::cli::mw_binary())
            .args(["live-run", "test-video-gen", "--json"])
            .current_dir(&home)
            .env("MYLOWARE_HOME", home.join(".myloware"))
            .env("MOCK_LATENCY_MS", "0")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id: RunId = summary["run_id"].as_str().unwrap().parse().unwrap();
    let all = spans(&received);
    let graph = SpanId::graph(run_id).to_string();
    let root = all
        .iter()
        .find(|s| s["spanId"] == graph.as_str())
        .unwrap_or_else(|| panic!("the root was not exported: {all:#?}"));
    assert_eq!(root["status"]["code"], 1, "{root}");
    for persona in ["iggy", "riley", "alex", "quinn"] {
        let name = format!("test-video-gen:{persona}");
        assert!(
            all.iter().any(|s| s["name"] == name.as_str()),
            "{name} not exported"
        );
    }
}
