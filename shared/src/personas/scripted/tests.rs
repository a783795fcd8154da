//! The scripted brain, one request at a time: Brendan's phrasings and the
//! sentences he builds from tool results. Whole persona turns are tested
//! through the agent loop (`personas::agent`).
use serde_json::{json, Value};

use super::ScriptedLlm;
use crate::personas::{brendan, tools::catalog};
use crate::providers::llm::{AssistantMessage, LlmError, LlmRequest, Message, ToolCall};

const RUN_ID: &str = "0190a0a0-0000-7000-8000-00000000000a";

fn request(messages: Vec<Message>) -> LlmRequest {
    let spec = brendan::spec();
    LlmRequest {
        messages: std::iter::once(Message::system(spec.prompt))
            .chain(messages)
            .collect(),
        tools: spec.tools.iter().map(|t| catalog::spec(t)).collect(),
    }
}

fn answer(messages: Vec<Message>) -> AssistantMessage {
    ScriptedLlm::new()
        .answer(&request(messages))
        .unwrap()
        .message
}

fn ask(text: &str) -> AssistantMessage {
    answer(vec![Message::user(text)])
}

fn call(text: &str) -> (String, Value) {
    let reply = ask(text);
    assert_eq!(reply.tool_calls.len(), 1, "{text:?} → {reply:?}");
    let call = &reply.tool_calls[0];
    (call.name.clone(), call.arguments.clone())
}

fn said(reply: AssistantMessage) -> String {
    assert!(reply.tool_calls.is_empty(), "{reply:?}");
    reply.content.unwrap()
}

/// A conversation in which `tool` was called with `args` and answered `result`.
fn after(text: &str, tool: &str, args: Value, result: Value) -> Vec<Message> {
    vec![
        Message::user(text),
        Message::Assistant(AssistantMessage::calls(vec![ToolCall {
            id: "call_brendan_1".into(),
            name: tool.into(),
            arguments: args,
        }])),
        Message::tool("call_brendan_1", result.to_string()),
    ]
}

#[test]
fn starting_a_test_video_gen_run() {
    for text in [
        "Start a test video gen run",
        "start a test-video-gen run",
        "please kick off test-video-gen",
    ] {
        assert_eq!(
            call(text),
            ("start_run".into(), json!({"project": "test-video-gen"})),
            "{text}"
        );
    }
}

#[test]
fn making_an_aismr_video_about_something() {
    assert_eq!(
        call("make an aismr video about a glass apple"),
        (
            "start_run".into(),
            json!({"project": "aismr", "message": "a glass apple"})
        )
    );
    assert_eq!(
        call("Create an ASMR video about \"liquid gold honey\"."),
        (
            "start_run".into(),
            json!({"project": "aismr", "message": "liquid gold honey"})
        )
    );
    let question = said(ask("make a video about cats"));
    assert!(question.starts_with("Which project"), "{question}");
    assert!(question.contains("test-video-gen and aismr"), "{question}");
}

#[test]
fn asking_for_a_status() {
    assert_eq!(
        call("what's the status of TVG-QXZ123?"),
        ("get_run_status".into(), json!({"run": "TVG-QXZ123"}))
    );
    assert_eq!(
        call(&format!("status of {RUN_ID}")),
        ("get_run_status".into(), json!({"run": RUN_ID}))
    );
    assert_eq!(
        call("how's tvg-qxz123 doing"),
        ("get_run_status".into(), json!({"run": "TVG-QXZ123"}))
    );
    assert_eq!(
        call("AIS-ABC123?"),
        ("get_run_status".into(), json!({"run": "AIS-ABC123"}))
    );
    assert!(said(ask("what's the status?")).starts_with("Which run?"));
}

#[test]
fn listing_runs() {
    for text in ["list my runs", "what are my runs?", "Show my recent runs"] {
        assert_eq!(call(text), ("list_my_runs".into(), json!({})), "{text}");
    }
    assert_eq!(
        call("list my last 5 runs"),
        ("list_my_runs".into(), json!({"limit": 5}))
    );
}

#[test]
fn approving_a_gate_uses_the_run_named_or_the_last_one_mentioned() {
    assert_eq!(
        call("approve the ideate gate for AIS-XYZ789"),
        (
            "approve_hitl_gate".into(),
            json!({"run": "AIS-XYZ789", "gate": "ideate"})
        )
    );
    let mut conversation = after(
        "make an aismr video about a glass apple",
        "start_run",
        json!({"project": "aismr", "message": "a glass apple"}),
        json!({"run_id": RUN_ID, "job_code": "AIS-ABC123", "project": "aismr", "status": "pending"}),
    );
    conversation.push(Message::Assistant(AssistantMessage::text(
        "Started aismr run AIS-ABC123.",
    )));
    conversation.push(Message::user("approve the ideate gate"));
    let reply = answer(conversation);
    assert_eq!(reply.tool_calls[0].name, "approve_hitl_gate");
    assert_eq!(
        reply.tool_calls[0].arguments,
        json!({"run": "AIS-ABC123", "gate": "ideate"})
    );
    assert_eq!(reply.tool_calls[0].id, "call_brendan_2", "ids stay unique");

    let question = said(ask("approve the ideate gate"));
    assert!(
        question.starts_with("Which run should I approve the ideate gate for?"),
        "{question}"
    );
    assert!(said(ask("approve it")).starts_with("Which gate"));
}

#[test]
fn run_listings_do_not_count_as_mentioning_a_run() {
    let mut conversation = after(
        "list my runs",
        "list_my_runs",
        json!({}),
        json!({"runs": [{"job_code": "AIS-ABC123"}, {"job_code": "TVG-QXZ123"}]}),
    );
    conversation.push(Message::user("approve the prepublish gate"));
    assert!(said(answer(conversation)).starts_with("Which run"));
}

#[test]
fn the_example_codes_of_brendans_own_answers_name_no_run() {
    let conversation = vec![
        Message::user("hello"),
        Message::Assistant(ask("hello")),
        Message::user("approve the ideate gate"),
    ];
    assert!(
        matches!(&conversation[1], Message::Assistant(r) if r.content.as_deref().is_some_and(|c| c.contains("AIS-QXZ456"))),
        "the help names an example code"
    );
    assert!(said(answer(conversation)).starts_with("Which run"));
}

#[test]
fn asking_for_an_approval_link() {
    assert_eq!(
        call("give me the approval link for prepublish on AIS-ABC123"),
        (
            "request_hitl_link".into(),
            json!({"run": "AIS-ABC123", "gate": "prepublish"})
        )
    );
    assert_eq!(
        call("link for the pre-publish gate of AIS-ABC123 please"),
        (
            "request_hitl_link".into(),
            json!({"run": "AIS-ABC123", "gate": "prepublish"})
        )
    );
}

#[test]
fn anything_else_gets_the_list_of_what_brendan_can_do() {
    for text in ["hello", "what's the weather like?", ""] {
        let help = said(ask(text));
        assert!(help.contains("start a test-video-gen run"), "{help}");
        assert!(help.contains("list my runs"), "{help}");
    }
}

#[test]
fn tool_results_become_friendly_sentences() {
    let started = said(answer(after(
        "start a test-video-gen run",
        "start_run",
        json!({"project": "test-video-gen"}),
        json!({"run_id": RUN_ID, "job_code": "TVG-ABC123", "project": "test-video-gen", "status": "pending"}),
    )));
    assert_eq!(
        started,
        format!("Started test-video-gen run TVG-ABC123 (run id {RUN_ID}). I'll keep an eye on it.")
    );

    let status = said(answer(after(
        "status of TVG-QXZ123",
        "get_run_status",
        json!({"run": "TVG-QXZ123"}),
        json!({"job_code": "TVG-QXZ123", "project": "test-video-gen", "status": "failed", "error": "riley: kie.ai rejected the prompt"}),
    )));
    assert_eq!(
        status,
        "Run TVG-QXZ123 (test-video-gen) is failed. Error: riley: kie.ai rejected the prompt"
    );

    let listed = said(answer(after(
        "list my runs",
        "list_my_runs",
        json!({}),
        json!({"runs": [{"job_code": "AIS-ABC123", "project": "aismr", "status": "awaiting_approval"}]}),
    )));
    assert_eq!(
        listed,
        "Your recent runs: AIS-ABC123 (aismr, awaiting_approval)."
    );

    let link = said(answer(after(
        "approval link for prepublish on AIS-ABC123",
        "request_hitl_link",
        json!({"run": "AIS-ABC123", "gate": "prepublish"}),
        json!({"url": "http://x/approve?token=t", "gate": "prepublish"}),
    )));
    assert_eq!(
        link,
        "Here is the approval link for the prepublish gate of AIS-ABC123: http://x/approve?token=t"
    );

    let approved = said(answer(after(
        "approve the ideate gate for AIS-ABC123",
        "approve_hitl_gate",
        json!({"run": "AIS-ABC123", "gate": "ideate"}),
        json!({"job_code": "AIS-ABC123", "gate": "ideate", "status": "running"}),
    )));
    assert_eq!(
        approved,
        "Approved the ideate gate of AIS-ABC123; the run continues. It is now running."
    );
}

#[test]
fn tool_errors_are_said_plainly() {
    let sorry = said(answer(after(
        "start an aismr run",
        "start_run",
        json!({"project": "aismr"}),
        json!({"error": "the store is unavailable"}),
    )));
    assert_eq!(
        sorry,
        "Sorry, I couldn't start that run: the store is unavailable"
    );
}

#[test]
fn a_prompt_naming_nobody_is_refused() {
    let err = ScriptedLlm::new()
        .answer(&LlmRequest {
            messages: vec![Message::system("Be helpful."), Message::user("hi")],
            tools: vec![],
        })
        .unwrap_err();
    assert!(matches!(err, LlmError::Script(_)), "{err:?}");
}

#[test]
fn usage_is_estimated_and_the_model_is_named() {
    let response = ScriptedLlm::new()
        .answer(&request(vec![Message::user("list my runs")]))
        .unwrap();
    assert_eq!(response.model, "scripted");
    let usage = response.usage.unwrap();
    assert!(
        usage.prompt_tokens > 100 && usage.completion_tokens > 0,
        "{usage:?}"
    );
}
