//! Each way a persona fails: a tool outside the allowlist, a missing required
//! tool, tool errors (and recovering from one), bad arguments, the turn
//! limit, an unregistered tool and a failing model.
use serde_json::json;

use super::super::*;
use super::{aismr_context, calling, play, run_ctx, Replay};
use crate::domain::Persona;
use crate::personas::testing::{FakeTool, Fakes};
use crate::personas::ScriptedLlm;

#[tokio::test]
async fn a_tool_outside_the_allowlist_fails_the_persona_before_anything_runs() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all();
    let llm = Replay::new(vec![AssistantMessage::calls(vec![
        ToolCall {
            id: "1".into(),
            name: "record_ideas".into(),
            arguments: json!({"title": "t", "ideas": ["i"], "hook": "h"}),
        },
        ToolCall {
            id: "2".into(),
            name: "publish_video".into(),
            arguments: json!({}),
        },
    ])]);
    let err = play(&spec, Persona::Iggy, &context, &fakes, &llm)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::ToolNotAllowed { persona: Agent::Persona(Persona::Iggy), tool } if tool == "publish_video"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "persona iggy called tool \"publish_video\", which is not on its allowlist"
    );
    assert_eq!(err.code(), "Agent.ToolNotAllowed");
    assert!(fakes.calls().is_empty(), "no tool of that turn ran");
}

#[tokio::test]
async fn finishing_without_the_required_tool_fails() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all();
    let llm = Replay::new(vec![
        calling(
            "write_script",
            json!({"scenes": [{"prompt": "p", "duration_seconds": 8}]}),
        ),
        AssistantMessage::text("All done!"),
    ]);
    let err = play(&spec, Persona::Riley, &context, &fakes, &llm)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::MissingRequiredTool { persona: Agent::Persona(Persona::Riley), tool } if tool == "submit_clip_jobs"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tool_error_is_fed_back_once_and_then_fails_the_persona() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all().with(FakeTool::failing(
        "submit_clip_jobs",
        "kie.ai answered 500",
        |_| true,
    ));
    let err = play(&spec, Persona::Riley, &context, &fakes, &ScriptedLlm)
        .await
        .unwrap_err();
    match &err {
        AgentError::Tool {
            persona,
            tool,
            message,
        } => {
            assert_eq!(*persona, Agent::Persona(Persona::Riley));
            assert_eq!(tool, "submit_clip_jobs");
            assert_eq!(message, "kie.ai answered 500");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "persona riley: tool submit_clip_jobs failed: kie.ai answered 500"
    );

    // A model that retries twice fails on the second error.
    let llm = Replay::new(vec![calling("submit_clip_jobs", json!({"clips": []}))]);
    let err = play(&spec, Persona::Riley, &context, &fakes, &llm)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Tool { .. }), "{err:?}");
}

#[tokio::test]
async fn a_model_that_retries_after_an_error_recovers() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all().with(FakeTool::failing("submit_clip_jobs", "busy, retry", |n| {
        n == 0
    }));
    let clip = json!({"clips": [{"prompt": "p", "duration_seconds": 8, "aspect_ratio": "9:16"}]});
    let llm = Replay::new(vec![
        calling("submit_clip_jobs", clip.clone()),
        calling("submit_clip_jobs", clip),
        AssistantMessage::text("Submitted."),
    ]);
    let outcome = play(&spec, Persona::Riley, &context, &fakes, &llm)
        .await
        .unwrap();
    assert_eq!(outcome.tool_results.len(), 2);
    assert_eq!(
        outcome.tool_results[0].error.as_deref(),
        Some("busy, retry")
    );
    assert!(outcome.result_of("submit_clip_jobs").is_some());
    let fed_back = outcome.messages.iter().find_map(|m| match m {
        Message::Tool { content, .. } => Some(content.clone()),
        _ => None,
    });
    assert_eq!(fed_back.as_deref(), Some(r#"{"error":"busy, retry"}"#));
}

#[tokio::test]
async fn missing_inputs_are_refused_by_the_schema_clearly() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all();
    let err = play(&spec, Persona::Alex, &context, &fakes, &ScriptedLlm)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "persona alex: tool render_video failed: invalid arguments: clip_urls: needs at least 1 item(s), got 0"
    );
    let err = play(&spec, Persona::Quinn, &context, &fakes, &ScriptedLlm)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("tool publish_video failed"),
        "{err}"
    );
    assert!(
        fakes.calls().iter().all(|(tool, _)| tool != "render_video"),
        "refused before the tool ran"
    );
}

#[tokio::test]
async fn arguments_that_are_not_an_object_are_refused_without_calling_the_tool() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all();
    let llm = Replay::new(vec![
        calling("record_ideas", json!("{title: oops")),
        AssistantMessage::text("sorry"),
    ]);
    let err = play(&spec, Persona::Iggy, &context, &fakes, &llm)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("invalid arguments: arguments: expected an object, got a string"),
        "{err}"
    );
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn a_model_that_never_stops_hits_the_turn_limit() {
    let (spec, context) = aismr_context();
    let fakes = Fakes::all();
    let llm = Replay::new(vec![calling(
        "write_script",
        json!({"scenes": [{"prompt": "p", "duration_seconds": 8}]}),
    )]);
    let err = play(&spec, Persona::Riley, &context, &fakes, &llm)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::TooManyTurns {
                turns: MAX_TURNS,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fakes.calls().len(), MAX_TURNS as usize);
}

#[tokio::test]
async fn an_unregistered_tool_and_a_failing_model_are_errors() {
    let (spec, context) = aismr_context();
    let empty = Fakes {
        registry: ToolRegistry::new(),
        log: Default::default(),
    };
    let err = play(&spec, Persona::Iggy, &context, &empty, &ScriptedLlm)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ToolNotRegistered { .. }),
        "{err:?}"
    );

    let spec_without_name = PersonaSpec {
        prompt: "Be helpful.".into(),
        ..spec.persona(Persona::Iggy).unwrap().clone()
    };
    let err = run_agent(
        &spec_without_name,
        &Fakes::all().registry,
        &ScriptedLlm,
        &run_ctx(&spec, Persona::Iggy, &context),
        &[Message::user("hi")],
        &NoopObserver,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::Llm {
                source: LlmError::Script(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "Agent.LlmFailed");
}
