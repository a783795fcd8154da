//! The OpenAPI document (`GET /openapi.json`), built from the handlers' own
//! types: every request body, query string and answer is the JSON Schema
//! schemars derives from the type the handler reads or writes, so the
//! document cannot drift from the code. The operations themselves (method,
//! path, who may call, which types) are listed once, in `operations`; a test
//! reads the routers' sources and fails when a route is missing from it.
use schemars::generate::{Contract, SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::chat::{ChatAnswer, ChatBody};
use super::hitl::{DecisionBody, GatePage, TokenQuery};
use super::runs::{CancelBody, ListQuery, RedriveBody, ReplayBody, ShowQuery, StartBody};
use super::system::Health;
use super::webhooks::{CallbackQuery, WebhookAnswer};
use crate::domain::{Provider, Run};
use crate::pipeline::limits;
use crate::pipeline::{ApprovalLink, ChatTree, Evidence, GateDecision, RunGraph, RunTree};
use crate::store::RunPage;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Open,
    ApiKey,
    /// The approval link's token (`?token=`) or the API key.
    TokenOrKey,
    /// The provider's signature scheme (webhooks).
    Signature,
}

/// One operation, with schemas made by the generators.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    query: Option<Schema>,
    body: Option<(Schema, bool)>,
    ok: (u16, Answer),
}

/// What a success looks like.
enum Answer {
    Json(Schema),
    Text(&'static str),
}

/// The error shape every refusal has.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct ErrorAnswer {
    pub error: ErrorBody,
}

#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable code: `not_found`, `unauthorized`, `payload_too_large`, …
    pub code: String,
    pub message: String,
}

/// The operations, in the order the document lists them.
fn operations(answers: &mut SchemaGenerator, requests: &mut SchemaGenerator) -> Vec<Op> {
    let mut ops = Ops {
        answers,
        requests,
        list: Vec::new(),
    };
    // One row per operation (method, path, summary, who may call, then the
    // types it reads and answers): the rows look alike because this is the table.
    ops.get("/health", "Liveness and configuration summary", Auth::Open)
        .json::<Health>();
    ops.get("/openapi.json", "This document", Auth::Open)
        .answer(200, Answer::Json(json_schema_object()));
    ops.get(
        "/ui",
        "The run dashboard (it asks for the API key and sends it as x-api-key)",
        Auth::Open,
    )
    .text("text/html");
    ops.get("/ui/", "The run dashboard", Auth::Open)
        .text("text/html");
    ops.get(
        "/ui/{file}",
        "The dashboard's scripts and styles",
        Auth::Open,
    )
    .text("*/*");
    ops.get(
        "/metrics",
        "Prometheus metrics: runs, webhooks, provider jobs, gates, persona steps",
        Auth::ApiKey,
    )
    .text("text/plain");
    ops.post(
        "/v1/chat/brendan",
        "One turn with Brendan: he answers, and may start or act on the user's runs",
        Auth::ApiKey,
    )
    .body::<ChatBody>(true)
    .json::<ChatAnswer>();
    ops.post("/v1/runs", "Start a run", Auth::ApiKey)
        .body::<StartBody>(true)
        .created::<Run>();
    ops.get(
        "/v1/runs",
        "Runs, newest first, filtered and paged",
        Auth::ApiKey,
    )
    .query::<ListQuery>()
    .json::<RunPage>();
    ops.get("/v1/runs/{id}",
        "A run by id or job code; with status and wait, once its status is no longer that one or the wait is over",
        Auth::ApiKey)
        .query::<ShowQuery>()
        .json::<Run>();
    ops.get(
        "/v1/runs/{id}/evidence",
        "The run with its artifacts, webhook events, provider jobs, gates, history and spans",
        Auth::ApiKey,
    )
    .json::<Evidence>();
    ops.get(
        "/v1/runs/{id}/graph",
        "The run's state machine definition, its steps and the states it is in now",
        Auth::ApiKey,
    )
    .json::<RunGraph>();
    ops.get(
        "/v1/runs/{id}/spans",
        "The run tree: every span, open or closed, by start time",
        Auth::ApiKey,
    )
    .json::<RunTree>();
    ops.get(
        "/v1/traces/{trace_id}",
        "A chat turn's tree (the trace id the chat answers) and the runs it started",
        Auth::ApiKey,
    )
    .json::<ChatTree>();
    ops.post("/v1/runs/{id}/cancel", "Cancel a live run", Auth::ApiKey)
        .body::<CancelBody>(false)
        .json::<Run>();
    ops.post("/v1/runs/{id}/redrive",
        "Continue a failed run from the state that failed, reusing its settled work (409 when it is not failed)",
        Auth::ApiKey)
        .body::<RedriveBody>(false)
        .json::<Run>();
    ops.post(
        "/v1/runs/{id}/replay",
        "A new run that starts at a state of this one with the context recorded there",
        Auth::ApiKey,
    )
    .body::<ReplayBody>(true)
    .created::<Run>();
    ops.get(
        "/v1/hitl/link/{id}/{gate}",
        "A signed approval link for a waiting gate",
        Auth::ApiKey,
    )
    .json::<ApprovalLink>();
    ops.get(
        "/v1/hitl/approve/{id}/{gate}",
        "The gate: JSON, or to a browser (Accept: text/html) a page to approve or reject it",
        Auth::TokenOrKey,
    )
    .query::<TokenQuery>()
    .json::<GatePage>();
    ops.post(
        "/v1/hitl/approve/{id}/{gate}",
        "Approve the gate (once)",
        Auth::TokenOrKey,
    )
    .query::<TokenQuery>()
    .body::<DecisionBody>(false)
    .json::<GateDecision>();
    ops.post(
        "/v1/hitl/reject/{id}/{gate}",
        "Reject the gate (once): the run ends rejected",
        Auth::TokenOrKey,
    )
    .query::<TokenQuery>()
    .body::<DecisionBody>(false)
    .json::<GateDecision>();
    ops.post("/v1/webhooks/{provider}",
        "A provider's callback, checked with the provider's signature scheme (Shotstack: the run token in the URL)",
        Auth::Signature)
        .query::<CallbackQuery>()
        .body_schema(json_schema_object(), true)
        .json::<WebhookAnswer>();
    ops.list
}

/// The operations listed so far, and the generators their schemas come
/// from: requests' as they are read, answers' as they are written.
struct Ops<'g> {
    answers: &'g mut SchemaGenerator,
    requests: &'g mut SchemaGenerator,
    list: Vec<Op>,
}

impl<'g> Ops<'g> {
    fn get(&mut self, path: &'static str, summary: &'static str, auth: Auth) -> NewOp<'_, 'g> {
        self.op("get", path, summary, auth)
    }

    fn post(&mut self, path: &'static str, summary: &'static str, auth: Auth) -> NewOp<'_, 'g> {
        self.op("post", path, summary, auth)
    }

    fn op(
        &mut self,
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        auth: Auth,
    ) -> NewOp<'_, 'g> {
        NewOp {
            ops: self,
            op: Op {
                method,
                path,
                summary,
                auth,
                query: None,
                body: None,
                // Replaced by `answer`, the only way to the list.
                ok: (200, Answer::Text("text/plain")),
            },
        }
    }
}

/// An operation being described: what it reads, then what it answers
/// (which lists it).
struct NewOp<'a, 'g> {
    ops: &'a mut Ops<'g>,
    op: Op,
}

impl NewOp<'_, '_> {
    /// The query string, as `T` reads it.
    fn query<T: JsonSchema>(mut self) -> Self {
        self.op.query = Some(self.ops.requests.root_schema_for::<T>());
        self
    }

    /// A JSON body `T`, required or not.
    fn body<T: JsonSchema>(self, required: bool) -> Self {
        let schema = self.ops.requests.subschema_for::<T>();
        self.body_schema(schema, required)
    }

    fn body_schema(mut self, schema: Schema, required: bool) -> Self {
        self.op.body = Some((schema, required));
        self
    }

    /// 200 with a `T` as JSON.
    fn json<T: JsonSchema>(self) {
        let schema = self.ops.answers.subschema_for::<T>();
        self.answer(200, Answer::Json(schema));
    }

    /// 201 with a `T` as JSON.
    fn created<T: JsonSchema>(self) {
        let schema = self.ops.answers.subschema_for::<T>();
        self.answer(201, Answer::Json(schema));
    }

    /// 200 with text of the media type `kind`.
    fn text(self, kind: &'static str) {
        self.answer(200, Answer::Text(kind));
    }

    fn answer(mut self, status: u16, answer: Answer) {
        self.op.ok = (status, answer);
        self.ops.list.push(self.op);
    }
}

fn json_schema_object() -> Schema {
    schemars::json_schema!({ "type": "object" })
}

/// The projects runs can be started for: the embedded state machines.
fn projects() -> Vec<&'static str> {
    crate::engine::definitions::EMBEDDED
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

/// The gates of every project, from their specs.
fn gates() -> Vec<String> {
    let mut gates: Vec<String> = projects()
        .into_iter()
        .filter_map(|p| crate::personas::ProjectSpec::load(p).ok())
        .flat_map(|spec| spec.gates.into_iter().map(|g| g.name.to_string()))
        .collect();
    gates.sort();
    gates.dedup();
    gates
}

/// A path parameter's schema and description.
fn path_parameter(name: &str, answers: &mut SchemaGenerator) -> Value {
    let (schema, description) = match name {
        "id" => (
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
            "the run's id, or its job code (TVG-QXZ123)",
        ),
        "gate" => (
            json!({ "type": "string", "enum": gates() }),
            "a gate of the run's project",
        ),
        "trace_id" => (
            json!({ "type": "string", "pattern": "^[0-9a-fA-F]{32}$" }),
            "a trace id: 32 hex digits",
        ),
        "file" => (
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
            "a file of the dashboard: app.js, app.css, …",
        ),
        "provider" => (
            answers.subschema_for::<Provider>().to_value(),
            "kieai, shotstack or upload-post",
        ),
        other => (json!({ "type": "string" }), other),
    };
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

/// The query parameters a query struct's schema describes.
fn query_parameters(schema: &Schema) -> Vec<Value> {
    let value = schema.as_value();
    let required: Vec<&str> = value["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    value["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            let description = schema
                .as_object_mut()
                .and_then(|s| s.remove("description"))
                .unwrap_or(Value::Null);
            let mut parameter = json!({ "name": name, "in": "query",
                "required": required.contains(&name.as_str()), "schema": schema });
            if !description.is_null() {
                parameter["description"] = description;
            }
            parameter
        })
        .collect()
}

fn security(auth: Auth) -> Value {
    match auth {
        Auth::Open | Auth::Signature => json!([]),
        Auth::ApiKey => json!([{ "apiKey": [] }, { "bearer": [] }]),
        Auth::TokenOrKey => json!([{ "apiKey": [] }, { "bearer": [] }, { "approvalToken": [] }]),
    }
}

fn generator(contract: Contract) -> SchemaGenerator {
    SchemaSettings::openapi3()
        .with(|s| s.contract = contract)
        .into_generator()
}

/// The whole document.
pub fn document() -> Value {
    let mut answers = generator(Contract::Serialize);
    let mut requests = generator(Contract::Deserialize);
    let error = answers.subschema_for::<ErrorAnswer>().to_value();
    let mut paths: Map<String, Value> = Map::new();
    for op in operations(&mut answers, &mut requests) {
        let mut parameters: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| path_parameter(name, &mut answers))
            .collect();
        if let Some(query) = &op.query {
            parameters.extend(query_parameters(query));
        }
        if op.method == "post" && op.path == "/v1/runs" {
            parameters.push(json!({
                "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "names this start: sent again (after a lost answer), it answers the run the first one made; with another project or message, 409",
                "schema": { "type": "string", "minLength": 1,
                            "maxLength": crate::pipeline::limits::IDEMPOTENCY_KEY_MAX_CHARS,
                            "pattern": "^[!-~]+$" },
            }));
        }
        let ok = match op.ok.1 {
            Answer::Json(schema) => json!({ "application/json": { "schema": schema } }),
            Answer::Text(kind) => json!({ kind: { "schema": { "type": "string" } } }),
        };
        let mut responses = json!({
            op.ok.0.to_string(): { "description": "done", "content": ok },
            "default": { "description": "refused, in the one error shape",
                         "content": { "application/json": { "schema": error } } },
        });
        if op.path == "/v1/hitl/approve/{id}/{gate}" {
            // A browser's request gets a page.
            responses[op.ok.0.to_string()]["content"]["text/html"] =
                json!({ "schema": { "type": "string" } });
        }
        let mut operation = json!({
            "summary": op.summary,
            "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": parameters,
            "responses": responses,
            "security": security(op.auth),
        });
        if let Some((schema, required)) = op.body {
            operation["requestBody"] = json!({ "required": required,
                "content": { "application/json": { "schema": schema } } });
            if op.method == "post" && op.path.starts_with("/v1/hitl/") {
                // The approval page's form posts its fields.
                operation["requestBody"]["content"]["application/x-www-form-urlencoded"] =
                    json!({ "schema": schema });
            }
        }
        paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item")
            .insert(op.method.to_owned(), operation);
    }
    let mut schemas: Map<String, Value> = Map::new();
    for mut generator in [answers, requests] {
        for (name, schema) in generator.take_definitions(true) {
            schemas.entry(name).or_insert(schema);
        }
    }
    // The projects are data (the embedded state machines), not a Rust enum.
    if let Some(project) = schemas
        .get_mut("StartBody")
        .and_then(|s| s.pointer_mut("/properties/project"))
    {
        *project = json!({ "type": "string", "enum": projects(),
                           "description": "the project: its state machine's name" });
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "MyloWare API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Runs, their evidence, gates and chat. Limits: a JSON body at most {} bytes, a \
                 callback's {} bytes (413 past them); a run's or a chat message at most {} \
                 characters, a user id {}, a comment {} (422 past them).",
                limits::JSON_BODY_MAX_BYTES,
                limits::WEBHOOK_BODY_MAX_BYTES,
                limits::MESSAGE_MAX_CHARS,
                limits::USER_ID_MAX_CHARS,
                limits::COMMENT_MAX_CHARS,
            ),
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" },
                "bearer": { "type": "http", "scheme": "bearer", "description": "the API key as a bearer token (Prometheus scrapers)" },
                "approvalToken": { "type": "apiKey", "in": "query", "name": "token" },
            },
            "schemas": schemas,
        },
        "paths": paths,
    })
}

/// Every `(method, path)` the routers serve, read from their sources.
#[cfg(test)]
fn routed() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut routes = Vec::new();
    let mut files = vec![dir.join("ui/mod.rs")];
    for entry in std::fs::read_dir(dir).unwrap() {
        files.push(entry.unwrap().path());
    }
    for path in files {
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        // `.route("…", handlers)`, on one line or as rustfmt breaks it.
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + 7..].trim_start();
            let Some(quoted) = rest.strip_prefix('"') else {
                continue;
            };
            rest = quoted;
            let route = &rest[..rest.find('"').unwrap()];
            let end = [")\n", "),\n"]
                .iter()
                .filter_map(|end| rest.find(end))
                .min()
                .unwrap_or(rest.len());
            let handlers = &rest[..end];
            for method in ["get", "post", "put", "delete", "patch"] {
                if handlers.contains(&format!("{method}(")) {
                    routes.push((method.to_owned(), route.to_owned()));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_and_nothing_else() {
        let doc = document();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(|method| (method.clone(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        documented.sort();
        let routed = routed();
        assert!(routed.len() >= 19, "{routed:?}");
        assert_eq!(
            documented, routed,
            "a route without its description, or the reverse"
        );
    }

    #[test]
    fn every_operation_has_its_schemas_and_every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Run",
            "Evidence",
            "RunPage",
            "ErrorAnswer",
            "StartBody",
            "ChatAnswer",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        for reference in text.split("\"$ref\":\"").skip(1) {
            let name = reference
                .split('"')
                .next()
                .unwrap()
                .trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "unresolved {name}");
        }
        let list = &doc["paths"]["/v1/runs"]["get"]["parameters"];
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["status", "project", "limit", "after"]);
        let run = &doc["paths"]["/v1/runs/{id}"]["get"];
        assert_eq!(run["parameters"][0]["in"], "path");
        assert_eq!(run["security"][0]["apiKey"], json!([]));
        assert!(run["responses"]["default"]["content"]["application/json"].is_object());
    }
}
