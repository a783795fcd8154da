//! Whole persona turns: every persona of both projects with the scripted
//! brain, the observer's view, Brendan across two chat turns, and a persona
//! turn over HTTP through the OpenAI adapter.
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::super::*;
use super::{aismr_context, play, run_ctx};
use crate::domain::{Persona, RunId};
use crate::personas::testing::Fakes;
use crate::personas::tools::catalog;
use crate::personas::ScriptedLlm;
use crate::personas::{brendan, PersonaContext, ProjectSpec};
use crate::providers::llm::openai::fake_server::FakeServer;
use crate::providers::llm::OpenAiLlm;

/// Plays every persona of `project` in graph order, feeding each one's output
/// into the next one's state the way the worker and callbacks would.
async fn produce(project: &str, message: &str) -> (Fakes, Vec<AgentOutcome>) {
    let spec = ProjectSpec::load(project).unwrap();
    let fakes = Fakes::all();
    let mut context = PersonaContext::new(RunId::new(), &spec, Some(message));
    let mut outcomes = Vec::new();
    for &persona in Persona::ALL {
        let outcome = play(&spec, persona, &context, &fakes, &ScriptedLlm)
            .await
            .unwrap();
        let output = match persona {
            Persona::Iggy => outcome.tool_results[0].args.clone(),
            Persona::Riley => {
                let clips = outcome.result_of(catalog::SUBMIT_CLIP_JOBS).unwrap()["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|job| json!({"index": job["index"], "url": format!("https://clips.test/{}.mp4", job["job_id"].as_str().unwrap())}))
                    .collect::<Vec<_>>();
                json!({"clips": clips})
            }
            Persona::Alex => json!({"render_url": "https://renders.test/final.mp4"}),
            Persona::Quinn => json!({"publish_urls": ["https://tiktok.test/1"]}),
        };
        context = context.with_output(persona, output);
        outcomes.push(outcome);
    }
    (fakes, outcomes)
}

#[tokio::test]
async fn aismr_runs_every_persona_in_order_with_twelve_clips() {
    let (fakes, outcomes) = produce("aismr", "a glass apple").await;
    assert_eq!(
        fakes.names(),
        [
            "record_ideas",
            "write_script",
            "submit_clip_jobs",
            "render_video",
            "write_caption",
            "publish_video"
        ]
    );
    let calls = fakes.calls();
    let ideas = &calls[0].1;
    assert_eq!(ideas["title"], "Glass Apple");
    assert_eq!(ideas["ideas"].as_array().unwrap().len(), 3);

    let scenes = calls[1].1["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 12);
    let clips = calls[2].1["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 12, "Riley submits exactly clips.count clips");
    for (scene, clip) in scenes.iter().zip(clips) {
        assert_eq!(
            clip["prompt"], scene["prompt"],
            "the script's prompts are submitted"
        );
        assert_eq!(clip["duration_seconds"], 8);
        assert_eq!(clip["aspect_ratio"], "9:16");
    }
    assert!(clips[0]["prompt"]
        .as_str()
        .unwrap()
        .starts_with("Scene 1 of 12: Glass Apple in extreme close-up"));

    let render = &calls[3].1;
    assert_eq!(render["title"], "Glass Apple");
    assert_eq!(render["clip_urls"].as_array().unwrap().len(), 12);
    assert_eq!(render["clip_urls"][0], "https://clips.test/job-0.mp4");
    assert_eq!(render["aspect_ratio"], "9:16");

    let caption = &calls[4].1;
    assert!(caption["hashtags"]
        .as_array()
        .unwrap()
        .contains(&json!("#aismr")));
    let publish = &calls[5].1;
    assert_eq!(publish["video_url"], "https://renders.test/final.mp4");
    assert_eq!(publish["platforms"], json!(["tiktok", "youtube"]));
    assert!(publish["caption"].as_str().unwrap().contains("#asmr"));

    let summaries: Vec<&str> = outcomes.iter().map(|o| o.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "Recorded 3 ideas for \"Glass Apple\".",
            "Wrote 12 scenes and submitted 12 clip jobs.",
            "Submitted the render of \"Glass Apple\" from 12 clips.",
            "Submitted \"Glass Apple\" for publishing to tiktok and youtube.",
        ]
    );
    assert_eq!(outcomes[1].turns, 3, "two tool turns and a final answer");
    assert!(outcomes.iter().all(|o| o.usage.total_tokens() > 0));
}

#[tokio::test]
async fn test_video_gen_makes_two_clips_from_the_default_message() {
    let spec = ProjectSpec::load("test-video-gen").unwrap();
    let (fakes, _) = produce("test-video-gen", "").await;
    let calls = fakes.calls();
    assert_eq!(calls.len(), 6);
    assert!(calls[0].1["hook"]
        .as_str()
        .unwrap()
        .contains(&spec.default_message));
    assert_eq!(calls[2].1["clips"].as_array().unwrap().len(), 2);
    assert_eq!(calls[3].1["clip_urls"].as_array().unwrap().len(), 2);
    assert!(calls[4].1["hashtags"]
        .as_array()
        .unwrap()
        .contains(&json!("#myloware")));
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait]
impl AgentObserver for Recorder {
    async fn llm_call_started(&self, call: &LlmCallStarted<'_>) {
        self.0.lock().unwrap().push(format!(
            "llm+{} tools={}",
            call.turn,
            call.request.tools.len()
        ));
    }
    async fn llm_call_ended(&self, call: &LlmCallEnded<'_>) {
        assert!(call.ended_at >= call.started_at);
        self.0
            .lock()
            .unwrap()
            .push(format!("llm-{} ok={}", call.turn, call.outcome.is_ok()));
    }
    async fn tool_call_started(&self, call: &ToolCallStarted<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("tool+{} {}", call.name, call.call_id));
    }
    async fn tool_call_ended(&self, persona: Agent, record: &ToolCallRecord) {
        self.0.lock().unwrap().push(format!(
            "tool-{} {persona} error={:?}",
            record.name, record.error
        ));
    }
}

#[tokio::test]
async fn the_observer_sees_every_call_open_and_close() {
    let (spec, context) = aismr_context();
    let recorder = Recorder::default();
    let persona = spec.persona(Persona::Quinn).unwrap();
    let context = context.with_output(Persona::Alex, json!({"render_url": "https://r/1.mp4"}));
    run_agent(
        persona,
        &Fakes::all().registry,
        &ScriptedLlm,
        &run_ctx(&spec, Persona::Quinn, &context),
        &[Message::user(context.to_user_message())],
        &recorder,
    )
    .await
    .unwrap();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "llm+1 tools=2",
            "llm-1 ok=true",
            "tool+write_caption call_quinn_1",
            "tool-write_caption quinn error=None",
            "llm+2 tools=2",
            "llm-2 ok=true",
            "tool+publish_video call_quinn_2",
            "tool-publish_video quinn error=None",
            "llm+3 tools=2",
            "llm-3 ok=true",
        ]
    );
}

#[tokio::test]
async fn brendan_starts_a_run_and_remembers_it_next_turn() {
    let spec = brendan::spec();
    let fakes = Fakes::all();
    let ctx = ToolContext::chat("user-1");
    let first = run_agent(
        &spec,
        &fakes.registry,
        &ScriptedLlm,
        &ctx,
        &[Message::user("make an aismr video about a glass apple")],
        &NoopObserver,
    )
    .await
    .unwrap();
    assert_eq!(
        first.summary,
        "Started aismr run AIS-ABC123 (run id 0190a0a0-0000-7000-8000-00000000000a). I'll keep an eye on it."
    );
    assert_eq!(
        fakes.calls()[0],
        (
            "start_run".into(),
            json!({"project": "aismr", "message": "a glass apple"})
        )
    );

    let mut history = first.messages.clone();
    history.push(Message::user("approve the ideate gate"));
    let second = run_agent(
        &spec,
        &fakes.registry,
        &ScriptedLlm,
        &ctx,
        &history,
        &NoopObserver,
    )
    .await
    .unwrap();
    assert_eq!(
        fakes.calls()[1],
        (
            "approve_hitl_gate".into(),
            json!({"run": "AIS-ABC123", "gate": "ideate"})
        )
    );
    assert_eq!(
        second.summary,
        "Approved the ideate gate of AIS-ABC123; the run continues. It is now running."
    );

    let chat = run_agent(
        &spec,
        &fakes.registry,
        &ScriptedLlm,
        &ctx,
        &[Message::user("hi there")],
        &NoopObserver,
    )
    .await
    .unwrap();
    assert!(chat.tool_results.is_empty() && chat.summary.contains("I can start a run"));
}

#[tokio::test]
async fn the_openai_adapter_drives_a_whole_persona_turn_over_http() {
    let server = FakeServer::answering(|request| {
        ScriptedLlm::new()
            .answer(request)
            .expect("the scripted brain answers")
    })
    .await;
    let llm = OpenAiLlm::new(&server.base_url, None, "gpt-fake", Duration::from_secs(5)).unwrap();
    let (spec, context) = aismr_context();
    let fakes = Fakes::all();
    let outcome = play(&spec, Persona::Riley, &context, &fakes, &llm)
        .await
        .unwrap();
    assert_eq!(fakes.names(), ["write_script", "submit_clip_jobs"]);
    assert_eq!(fakes.calls()[1].1["clips"].as_array().unwrap().len(), 12);
    assert_eq!(
        outcome.summary,
        "Wrote 12 scenes and submitted 12 clip jobs."
    );
    assert_eq!(outcome.turns, 3);
    assert!(outcome.usage.prompt_tokens > 0, "usage crosses the wire");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].body["tools"][1]["function"]["name"],
        "submit_clip_jobs"
    );
    assert_eq!(seen[2].body["messages"][3]["role"], "tool");
}
