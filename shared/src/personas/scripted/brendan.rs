//! Brendan's part: a plain-English request becomes one tool call, and the
//! tool's result becomes a friendly sentence. Keyword rules, checked in a
//! fixed order (approve, link, status, list, start), are enough for the
//! phrasings people actually use, and everything else gets a list of what
//! Brendan can do.
use serde_json::{json, Value};

use super::Transcript;
use crate::domain::{JobCode, RunId};
use crate::personas::agent::error_in_content;
use crate::personas::tools::catalog;
use crate::personas::{Agent, ProjectSpec};
use crate::providers::llm::{AssistantMessage, Message};

/// The job codes Brendan's answers give as examples.
const EXAMPLE_CODES: [&str; 2] = ["TVG-QXZ123", "AIS-QXZ456"];

pub(super) const HELP: &str = "I can start a run (\"start a test-video-gen run\", \"make an aismr video about a glass apple\"), \
check on one (\"what's the status of TVG-QXZ123?\"), list yours (\"list my runs\"), get an approval link \
(\"give me the approval link for prepublish on AIS-QXZ456\") or approve a gate (\"approve the ideate gate\").";

pub(super) fn reply(transcript: &Transcript<'_>) -> AssistantMessage {
    let Some((asked_at, text)) = transcript.last_user() else {
        return AssistantMessage::text(format!("Hi, I'm Brendan. {HELP}"));
    };
    let answered = transcript.calls_after(asked_at);
    if !answered.is_empty() {
        let sentences: Vec<String> = answered
            .iter()
            .map(|past| describe(&past.call.name, &past.call.arguments, past.result))
            .collect();
        return AssistantMessage::text(sentences.join(" "));
    }
    match intent(text, transcript.messages()) {
        Ok((tool, args)) if transcript.offers(tool) => {
            AssistantMessage::calls(vec![transcript.call(Agent::Brendan, tool, args)])
        }
        Ok((tool, _)) => AssistantMessage::text(format!("I can't use {tool} here. {HELP}")),
        Err(Reply(answer)) => AssistantMessage::text(answer),
    }
}

/// What Brendan says instead of calling a tool: the question a request
/// leaves open, or his greeting.
#[derive(Debug)]
struct Reply(String);

impl From<&str> for Reply {
    fn from(text: &str) -> Self {
        Reply(text.to_owned())
    }
}

impl From<String> for Reply {
    fn from(text: String) -> Self {
        Reply(text)
    }
}

/// The tool call a request asks for, or the question/answer to give instead.
fn intent(text: &str, conversation: &[Message]) -> Result<(&'static str, Value), Reply> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |word: &str| words.contains(&word);
    let run = run_in(text);
    let gate = gate_in(&lower);
    let recent = || run.clone().or_else(|| recent_run(conversation));

    if has("approve") && !has("link") {
        let gate = gate.ok_or("Which gate should I approve? For example ideate or prepublish.")?;
        let run = recent().ok_or_else(|| {
            format!("Which run should I approve the {gate} gate for? Give me its job code (like AIS-QXZ456) or run id.")
        })?;
        return Ok((
            catalog::APPROVE_HITL_GATE,
            json!({"run": run, "gate": gate}),
        ));
    }
    if has("link") {
        let gate =
            gate.ok_or("Which gate do you want the link for? For example ideate or prepublish.")?;
        let run = recent().ok_or_else(|| {
            format!("Which run do you want the {gate} approval link for? Give me its job code or run id.")
        })?;
        return Ok((
            catalog::REQUEST_HITL_LINK,
            json!({"run": run, "gate": gate}),
        ));
    }
    let listing = ((has("list") || has("show") || lower.contains("what are my"))
        && (has("runs") || has("jobs")))
        || lower.contains("my runs")
        || lower.contains("recent runs");
    if has("status")
        || lower.contains("how is")
        || lower.contains("how's")
        || lower.contains("check on")
        || (run.is_some() && !listing && project_in(&lower).is_none())
    {
        let run = recent().ok_or("Which run? Give me its job code (like TVG-QXZ123) or run id.")?;
        return Ok((catalog::GET_RUN_STATUS, json!({"run": run})));
    }
    if listing {
        let limit = words
            .iter()
            .find_map(|w| w.parse::<u32>().ok())
            .filter(|n| (1..=50).contains(n));
        return Ok((
            catalog::LIST_MY_RUNS,
            limit.map_or(json!({}), |n| json!({"limit": n})),
        ));
    }
    let starting = [
        "start", "make", "create", "launch", "generate", "begin", "new", "produce",
    ]
    .iter()
    .any(|verb| has(verb))
        || lower.contains("kick off");
    if starting {
        let project = project_in(&lower).ok_or_else(|| {
            format!(
                "Which project should I start? I know {}.",
                project_names().join(" and ")
            )
        })?;
        let mut args = json!({"project": project});
        if let Some(topic) = topic_in(text) {
            args["message"] = json!(topic);
        }
        return Ok((catalog::START_RUN, args));
    }
    Err(format!("Hi, I'm Brendan. {HELP}").into())
}

fn project_names() -> Vec<String> {
    ProjectSpec::all()
        .unwrap_or_default()
        .into_iter()
        .map(|spec| spec.name.to_string())
        .collect()
}

/// A project named in the text: exactly, with spaces for dashes, or by the
/// common "asmr" spelling.
fn project_in(lower: &str) -> Option<String> {
    let mut names = project_names();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    names
        .into_iter()
        .find(|name| lower.contains(name.as_str()) || lower.contains(&name.replace('-', " ")))
        .or_else(|| lower.contains("asmr").then(|| "aismr".to_owned()))
}

fn gate_in(lower: &str) -> Option<String> {
    let squashed = lower.replace("pre-publish", "prepublish");
    ProjectSpec::all()
        .unwrap_or_default()
        .iter()
        .flat_map(|spec| spec.gates.iter().map(|gate| gate.name.to_string()))
        .find(|gate| squashed.contains(gate.as_str()))
}

/// "… about a glass apple." → "a glass apple".
fn topic_in(text: &str) -> Option<String> {
    let at = text.to_lowercase().find(" about ")?;
    let topic = text[at + " about ".len()..]
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim_matches(['"', '\'', '“', '”'])
        .trim();
    (!topic.is_empty()).then(|| topic.to_owned())
}

/// The last job code in a text, else its last run id: people (and Brendan's
/// own sentences) name runs by job code.
fn run_in(text: &str) -> Option<String> {
    let tokens = || text.split(|c: char| !c.is_ascii_alphanumeric() && c != '-');
    tokens()
        .filter_map(|token| token.parse::<JobCode>().ok())
        .next_back()
        .map(|code| code.to_string())
        .or_else(|| {
            tokens()
                .filter_map(|token| token.parse::<RunId>().ok())
                .next_back()
                .map(|id| id.to_string())
        })
}

/// The most recently mentioned run in the conversation: in what was said, in
/// tool arguments, and in tool results (except run listings, which name many).
fn recent_run(conversation: &[Message]) -> Option<String> {
    let listing_ids: Vec<&str> = conversation
        .iter()
        .filter_map(|m| match m {
            Message::Assistant(reply) => Some(&reply.tool_calls),
            _ => None,
        })
        .flatten()
        .filter(|call| call.name == catalog::LIST_MY_RUNS)
        .map(|call| call.id.as_str())
        .collect();
    conversation.iter().rev().find_map(|message| match message {
        Message::Tool { tool_call_id, .. } if listing_ids.contains(&tool_call_id.as_str()) => None,
        Message::Assistant(reply) => reply
            .tool_calls
            .iter()
            .rev()
            .find_map(|call| run_in(&call.arguments.to_string()))
            // Brendan's own sentences name the runs tools answered, and
            // examples ("a job code like TVG-QXZ123") that are no run.
            .or_else(|| {
                let content = reply.content.as_deref()?;
                run_in(
                    &EXAMPLE_CODES
                        .iter()
                        .fold(content.to_owned(), |text, code| text.replace(code, "")),
                )
            }),
        Message::System { .. } => None,
        other => other.text().and_then(run_in),
    })
}

/// One friendly sentence about a finished tool call.
fn describe(tool: &str, args: &Value, content: Option<&str>) -> String {
    if let Some(error) = content.and_then(error_in_content) {
        let action = match tool {
            catalog::START_RUN => "start that run",
            catalog::GET_RUN_STATUS => "get that run's status",
            catalog::LIST_MY_RUNS => "list your runs",
            catalog::REQUEST_HITL_LINK => "get that approval link",
            catalog::APPROVE_HITL_GATE => "approve that gate",
            _ => "do that",
        };
        return format!("Sorry, I couldn't {action}: {error}");
    }
    let result: Value = content
        .and_then(|content| serde_json::from_str(content).ok())
        .unwrap_or(Value::Null);
    let field = |name: &str| result[name].as_str().map(str::to_owned);
    let run = field("job_code")
        .or_else(|| field("run_id"))
        .or_else(|| args["run"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "the run".to_owned());
    let gate = field("gate")
        .or_else(|| args["gate"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "the".to_owned());
    match tool {
        catalog::START_RUN => {
            let project = field("project")
                .or_else(|| args["project"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let id = field("run_id").map_or(String::new(), |id| format!(" (run id {id})"));
            format!("Started {project} run {run}{id}. I'll keep an eye on it.")
        }
        catalog::GET_RUN_STATUS => {
            let mut text = match (field("project"), field("status")) {
                (Some(project), Some(status)) => format!("Run {run} ({project}) is {status}."),
                (None, Some(status)) => format!("Run {run} is {status}."),
                _ => format!("I found run {run}, but it has no status yet."),
            };
            if let Some(step) = field("current_step") {
                text.push_str(&format!(" It is at {step}."));
            }
            if let Some(error) = field("error") {
                text.push_str(&format!(" Error: {error}"));
            }
            text
        }
        catalog::LIST_MY_RUNS => {
            let runs = result["runs"].as_array().cloned().unwrap_or_default();
            if runs.is_empty() {
                return "You have no runs yet. Say \"start a test-video-gen run\" to make one."
                    .to_owned();
            }
            let listed: Vec<String> = runs
                .iter()
                .map(|r| {
                    let name = r["job_code"]
                        .as_str()
                        .or(r["run_id"].as_str())
                        .unwrap_or("?");
                    let project = r["project"].as_str().unwrap_or("?");
                    let status = r["status"].as_str().unwrap_or("?");
                    format!("{name} ({project}, {status})")
                })
                .collect();
            format!("Your recent runs: {}.", listed.join(", "))
        }
        catalog::REQUEST_HITL_LINK => match field("url") {
            Some(url) => format!("Here is the approval link for the {gate} gate of {run}: {url}"),
            None => format!("I asked for the {gate} approval link of {run}, but none came back."),
        },
        catalog::APPROVE_HITL_GATE => {
            let status = field("status").map_or(String::new(), |s| format!(" It is now {s}."));
            format!("Approved the {gate} gate of {run}; the run continues.{status}")
        }
        other => format!("Done: {other}."),
    }
}
