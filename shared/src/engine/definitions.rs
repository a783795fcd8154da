//! The persona graphs as files: `statemachine/<name>.asl.json`, the single
//! source of each graph for both engines. `${Name}` placeholders are
//! `DefinitionSubstitutions` (SAM fills them in AWS; `substitutions` here).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::asl::model::StateMachine;
use super::asl::substitute::substitute;

/// The persona graphs, built into the binary so that `mw` runs anywhere:
/// `(state machine name, definition text with placeholders)`.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "test-video-gen",
        include_str!("../../../statemachine/test-video-gen.asl.json"),
    ),
    (
        "aismr",
        include_str!("../../../statemachine/aismr.asl.json"),
    ),
];

/// The embedded graphs with `values` substituted, checked.
pub fn embedded(
    values: &HashMap<String, String>,
) -> Result<Vec<(String, String)>, DefinitionError> {
    EMBEDDED
        .iter()
        .map(|(name, raw)| {
            let invalid = |message: String| DefinitionError::Invalid {
                path: format!("statemachine/{name}.asl.json"),
                message,
            };
            let text = substitute(raw, values).map_err(|e| invalid(e.to_string()))?;
            StateMachine::from_json_str(&text).map_err(|e| invalid(e.to_string()))?;
            Ok(((*name).to_owned(), text))
        })
        .collect()
}

/// The local task queue's URL: where persona and gate tasks are sent.
pub const LOCAL_TASK_QUEUE_URL: &str = "local://myloware/tasks";

/// A definition file, loaded and checked.
#[derive(Debug, Clone)]
pub struct DefinitionFile {
    pub path: PathBuf,
    /// The file name without `.asl.json`: the state machine's name.
    pub name: String,
    /// The definition text with substitutions resolved.
    pub text: String,
    pub machine: StateMachine,
}

/// Why a definition file cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The values of the placeholders our definitions use.
pub fn substitutions(task_queue_url: &str) -> HashMap<String, String> {
    HashMap::from([("TaskQueueUrl".to_owned(), task_queue_url.to_owned())])
}

/// The state machine name of `path`: `statemachine/aismr.asl.json` → `aismr`.
pub fn name_of(path: &Path) -> String {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("statemachine");
    file.strip_suffix(".asl.json")
        .or_else(|| file.strip_suffix(".json"))
        .unwrap_or(file)
        .to_owned()
}

/// Reads, substitutes and validates one definition file.
pub fn load(
    path: &Path,
    values: &HashMap<String, String>,
) -> Result<DefinitionFile, DefinitionError> {
    let shown = path.display().to_string();
    let raw = std::fs::read_to_string(path).map_err(|source| DefinitionError::Read {
        path: shown.clone(),
        source,
    })?;
    let text = substitute(&raw, values).map_err(|e| DefinitionError::Invalid {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let machine = StateMachine::from_json_str(&text).map_err(|e| DefinitionError::Invalid {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    Ok(DefinitionFile {
        path: path.to_owned(),
        name: name_of(path),
        text,
        machine,
    })
}

/// Every `*.asl.json` in `dir`, sorted by name.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::asl::driver::{echo_worker, run_to_completion, Driver};
    use crate::engine::asl::machine::ExecutionStatus;
    use serde_json::{json, Value};

    fn graphs() -> Vec<(String, StateMachine)> {
        embedded(&substitutions(LOCAL_TASK_QUEUE_URL))
            .expect("the graphs load")
            .into_iter()
            .map(|(name, text)| {
                let machine = StateMachine::from_json_str(&text).expect("parses");
                (name, machine)
            })
            .collect()
    }

    /// The task states of a graph's raw definition a run can resume at:
    /// every task but the ones recording a failure or a rejection.
    fn resumable(name: &str) -> Vec<String> {
        let raw = EMBEDDED.iter().find(|(n, _)| *n == name).unwrap().1;
        let definition: Value = serde_json::from_str(raw).unwrap();
        let states = definition["States"].as_object().unwrap();
        states
            .iter()
            .filter(|(n, s)| {
                s["Type"] == "Task" && !matches!(n.as_str(), "RecordFailure" | "RecordRejection")
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The body of the first message the execution sent.
    fn first_message(driver: &Driver<'_>) -> Value {
        serde_json::from_str(&driver.messages[0].message_body).unwrap()
    }

    #[test]
    fn without_resume_at_a_run_starts_at_iggy() {
        for (name, machine) in graphs() {
            let driver = Driver::start(&machine, json!({ "run_id": "r" }));
            let body = first_message(&driver);
            assert_eq!(body["persona"], "iggy", "{name}: {body}");
            assert_eq!(driver.history[1].event_type, "ChoiceStateEntered", "{name}");
        }
    }

    #[test]
    fn resume_at_starts_at_the_state_it_names_with_the_input_as_given() {
        for (name, machine) in graphs() {
            let states = resumable(&name);
            assert!(states.len() >= 5, "{name}: {states:?}");
            for state in states {
                let input =
                    json!({ "run_id": "r", "resume_at": state, "alex": { "render_url": "u" } });
                let driver = Driver::start(&machine, input);
                let entered: Vec<&str> = driver
                    .history
                    .iter()
                    .filter(|e| e.event_type == "TaskStateEntered")
                    .filter_map(|e| e.details["name"].as_str())
                    .collect();
                assert_eq!(entered, [state.as_str()], "{name}");
                assert_eq!(first_message(&driver)["input"]["alex"]["render_url"], "u");
            }
        }
    }

    #[test]
    fn a_resume_at_that_names_no_state_fails_the_run_with_that_cause() {
        for (name, machine) in graphs() {
            for wrong in [json!("Nowhere"), json!(7), json!("RecordFailure")] {
                let input = json!({ "run_id": "r", "resume_at": wrong });
                let driver = run_to_completion(&machine, input, echo_worker);
                let first = first_message(&driver);
                assert_eq!(first["task"], "record_failure", "{name}: {first}");
                let result = driver.snapshot.result().expect("ended, not waiting");
                assert_eq!(result.status, ExecutionStatus::Failed, "{name}");
                assert_eq!(result.error.as_deref(), Some("Run.UnknownResumeState"));
                let cause = result.cause.clone().unwrap_or_default();
                let shown = wrong
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or(wrong.to_string());
                assert!(
                    cause.contains(&shown) && cause.contains("names no state"),
                    "{cause}"
                );
            }
        }
    }
}
