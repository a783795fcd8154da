//! The dashboard's server side: `/ui` and its files, and the run graph the
//! page draws (`GET /v1/runs/{id}/graph`).
use axum::body::Body;
use axum::http::{Request, StatusCode};
use myloware::domain::RunStatus;
use myloware::pipeline::{RunGraph, StepStatus};
use myloware_tests::TestStack;
use serde_json::{json, Value};
use tower::ServiceExt;

fn run_id(run: &Value) -> String {
    run["run_id"].as_str().expect("run_id").to_owned()
}

async fn graph(t: &TestStack, id: &str) -> RunGraph {
    let (status, body) = t.client.get(&format!("/v1/runs/{id}/graph")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a run graph")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_graph_shows_the_definition_and_where_the_run_waits() {
    let t = TestStack::start(&[]).await;
    let run = t.start_run("aismr").await;
    let id = run_id(&run);
    t.wait_for_gate(&id, "ideate").await;

    let g = graph(&t, &id).await;
    assert_eq!(g.run_id.to_string(), id);
    assert_eq!(g.state_machine, "aismr");
    assert_eq!(g.status, RunStatus::AwaitingApproval);
    assert_eq!(g.definition["StartAt"], "Resume");
    assert_eq!(
        g.definition["States"]["GateIdeate"]["Parameters"]["MessageBody"]["gate"],
        "ideate"
    );
    assert_eq!(g.current, ["GateIdeate"]);
    let visited: Vec<(&str, StepStatus)> = g
        .steps
        .iter()
        .map(|s| (s.state.as_str(), s.status))
        .collect();
    assert_eq!(
        visited,
        [
            // The entry choice: a new run goes on to its first persona.
            ("Resume", StepStatus::Succeeded),
            ("Iggy", StepStatus::Succeeded),
            ("GateIdeate", StepStatus::Running)
        ]
    );
    let iggy = &g.steps[1];
    assert_eq!(iggy.attempts, 1);
    let (scheduled, ended) = (iggy.scheduled_at.unwrap(), iggy.ended_at.unwrap());
    assert!(iggy.entered_at <= scheduled && scheduled <= ended);
    assert!(ended <= g.steps[2].entered_at);

    // By job code too, and the run moves on once the gate is approved.
    let (status, body) = t
        .client
        .post(&format!("/v1/hitl/approve/{id}/ideate"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    t.wait_for_gate(&id, "prepublish").await;
    let g = graph(&t, run["job_code"].as_str().unwrap()).await;
    assert_eq!(g.current, ["GatePrepublish"]);
    let states: Vec<&str> = g.steps.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(
        states,
        [
            "Resume",
            "Iggy",
            "GateIdeate",
            "Riley",
            "Alex",
            "GatePrepublish"
        ]
    );
    assert!(g.steps[..5]
        .iter()
        .all(|s| s.status == StepStatus::Succeeded && s.ended_at.is_some()));

    // A rejected gate: the run ends, nothing is current, the catch path shows.
    let (status, body) = t
        .client
        .post(&format!("/v1/hitl/reject/{id}/prepublish"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    t.wait_for_status(&id, RunStatus::Rejected).await;
    let g = graph(&t, &id).await;
    assert!(g.current.is_empty(), "{:?}", g.current);
    let tail: Vec<(&str, StepStatus)> = g.steps[5..]
        .iter()
        .map(|s| (s.state.as_str(), s.status))
        .collect();
    assert_eq!(
        tail,
        [
            ("GatePrepublish", StepStatus::Failed),
            ("RecordRejection", StepStatus::Succeeded),
            // The end state of a rejection: an outcome, not a failure.
            ("Rejected", StepStatus::Succeeded),
        ]
    );
    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_graph_needs_the_key_and_a_known_run() {
    let t = TestStack::start(&[]).await;
    let id = run_id(&t.start_run("test-video-gen").await);
    let anonymous = t
        .client
        .http
        .get(format!("{}/v1/runs/{id}/graph", t.stack.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = t.client.get(&format!("/v1/runs/{unknown}/graph")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = t.client.get("/v1/runs/not a run/graph").await;
    assert!(status == 400 || status == 422, "{status} {body}");
    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_serves_the_page_and_its_files_without_the_key() {
    let t = TestStack::start(&[]).await;
    let get = |path: &str| {
        t.client
            .http
            .get(format!("{}{path}", t.stack.base_url))
            .send()
    };
    for path in ["/ui", "/ui/"] {
        let page = get(path).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let headers = page.headers().clone();
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
        assert!(html.contains(r#"href="/ui/app.css""#));
        assert!(html.contains(r#"id="api-key" type="password""#));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing is fetched from elsewhere"
        );
    }
    // app.js and the modules it imports, each served as JavaScript.
    let mut scripts = String::new();
    for file in [
        "app.js",
        "dom.js",
        "graph.js",
        "timeline.js",
        "tree.js",
        "cost.js",
    ] {
        let js = get(&format!("/ui/{file}")).await.unwrap();
        assert_eq!(js.status(), 200, "{file}");
        assert!(js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        let text = js.text().await.unwrap();
        assert!(
            !text.contains("innerHTML"),
            "{file}: data goes in as text only"
        );
        for import in text.lines().filter_map(|l| l.split(" from \"./").nth(1)) {
            let name = import.trim_end_matches("\";");
            assert_eq!(
                get(&format!("/ui/{name}")).await.unwrap().status(),
                200,
                "{file} imports {name}"
            );
        }
        scripts.push_str(&text);
    }
    for route in ["/v1/runs", "/graph", "/evidence", "/v1/hitl/", "x-api-key"] {
        assert!(scripts.contains(route), "the page uses {route}");
    }
    let css = get("/ui/app.css").await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(get("/ui/nope.js").await.unwrap().status(), 404);
    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/v1/runs/{id}/graph"]["get"].is_object());
    assert!(doc["paths"]["/ui"]["get"].is_object());
    t.stack.shutdown().await;
}

/// What the `runs` function serves: the runs, system and dashboard routers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runs_function_router_serves_the_dashboard_and_the_graph() {
    let t = TestStack::start(&[]).await;
    let id = run_id(&t.start_run("test-video-gen").await);
    let state = myloware::api::AppState {
        pipeline: t.stack.pipeline.clone(),
        api_key: secrecy::SecretString::from("test-api-key-0123456789"),
    };
    let router = myloware::api::runs_router(state.clone())
        .merge(myloware::api::system_router(state.clone()))
        .merge(myloware::api::ui_router(state));
    let page = router
        .clone()
        .oneshot(Request::get("/ui").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let graph = router
        .oneshot(
            Request::get(format!("/v1/runs/{id}/graph"))
                .header("x-api-key", "test-api-key-0123456789")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(graph.status(), StatusCode::OK);
    t.stack.shutdown().await;
}
