//! Tools: the only way a persona touches the world.
//!
//! A [`Tool`] is a named capability with a JSON-Schema for its arguments; the
//! [`ToolRegistry`] maps names to implementations and is built once at
//! start-up. The [`catalog`] fixes every tool's name, description and schema,
//! so project specs can be checked against it without any implementation, and
//! implementations (which talk to providers and the store) live elsewhere.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Agent;
use crate::domain::{Persona, Project, RunId, SpanLink};

pub use crate::providers::llm::ToolSpec;

pub mod catalog;
pub mod schema;

/// One capability a model can ask for.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name, description and argument schema the model sees; normally
    /// `catalog::spec(NAME)`.
    fn spec(&self) -> ToolSpec;

    /// Runs the tool. `args` is the model's arguments object; use
    /// [`parse_args`] to turn it into the catalog's typed arguments.
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError>;
}

/// Who calls a tool, and on what: a persona on one run, or Brendan in a chat
/// with one user. Tools that need a run ask for [`ToolContext::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolContext {
    Run(RunScope),
    Chat(ChatScope),
}

/// A persona's work on one run, inside one engine task.
#[derive(Clone, PartialEq, Eq)]
pub struct RunScope {
    pub run_id: RunId,
    pub project: Project,
    pub persona: Persona,
    /// The engine task token to complete when the persona's work is done
    /// (now, or when its provider jobs settle). Never shown to a model.
    pub task_token: Option<String>,
}

/// The task token completes an engine task, so it stays out of logs.
impl fmt::Debug for RunScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunScope")
            .field("run_id", &self.run_id)
            .field("project", &self.project)
            .field("persona", &self.persona)
            .field(
                "task_token",
                &self.task_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Brendan talking to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatScope {
    pub user_id: String,
    /// The `brendan-chat` span of the turn, which runs it starts link to.
    pub turn: Option<SpanLink>,
}

impl ToolContext {
    pub fn run(
        run_id: RunId,
        project: Project,
        persona: Persona,
        task_token: Option<String>,
    ) -> Self {
        Self::Run(RunScope {
            run_id,
            project,
            persona,
            task_token,
        })
    }

    pub fn chat(user_id: impl Into<String>) -> Self {
        Self::Chat(ChatScope {
            user_id: user_id.into(),
            turn: None,
        })
    }

    /// Brendan's scope in the chat turn recorded as span `turn`.
    pub fn chat_turn(user_id: impl Into<String>, turn: SpanLink) -> Self {
        Self::Chat(ChatScope {
            user_id: user_id.into(),
            turn: Some(turn),
        })
    }

    pub fn agent(&self) -> Agent {
        match self {
            Self::Run(scope) => Agent::Persona(scope.persona),
            Self::Chat(_) => Agent::Brendan,
        }
    }

    /// The run scope, or an error a tool can return as is.
    pub fn run_scope(&self) -> Result<&RunScope, ToolError> {
        match self {
            Self::Run(scope) => Ok(scope),
            Self::Chat(_) => Err(ToolError::WrongContext { needs: "a run" }),
        }
    }

    /// The chat scope, or an error a tool can return as is.
    pub fn chat_scope(&self) -> Result<&ChatScope, ToolError> {
        match self {
            Self::Chat(scope) => Ok(scope),
            Self::Run(_) => Err(ToolError::WrongContext { needs: "a chat" }),
        }
    }
}

/// Why a tool call failed. The agent loop shows the message to the model, so
/// it should say what to do differently; it must not carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool was called outside the context it works in.
    #[error("this tool needs {needs}")]
    WrongContext { needs: &'static str },
    /// The tool ran and could not do its job.
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A service the tool needs failed in a way that may pass (a timeout,
    /// a throttle, a server error) and went on failing through the client's
    /// own retries. Not shown to the model: the persona's step fails as
    /// `Worker.Transient`, which the state machine retries.
    #[error("{message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ToolError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            source: None,
        }
    }

    /// A failure with its cause kept for logs.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Failed {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A provider call that failed, with what the provider said in the
    /// message (the HTTP status and its words, never a key): transient or
    /// final as the failure is.
    pub fn provider(what: impl std::fmt::Display, error: crate::providers::ProviderError) -> Self {
        let message = format!("{what}: {error}");
        if error.is_transient() {
            Self::Transient {
                message,
                source: Some(Box::new(error)),
            }
        } else {
            Self::Failed {
                message,
                source: Some(Box::new(error)),
            }
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Work a provider accepted whose record could not be written: the
    /// work exists, and its record or callback must still settle it.
    pub fn accepted_unrecorded(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Transient {
            message: format!("{}: {cause}", what.into()),
            source: Some(Box::new(AcceptedUnrecorded(Box::new(cause)))),
        }
    }

    /// Whether this is a provider's submission that may have been accepted
    /// though it failed (`ProviderError::may_have_been_accepted`), or was
    /// accepted and not recorded (`accepted_unrecorded`).
    pub fn may_have_been_accepted(&self) -> bool {
        let (Self::Transient { source, .. } | Self::Failed { source, .. }) = self else {
            return false;
        };
        let Some(source) = source.as_deref() else {
            return false;
        };
        source.is::<AcceptedUnrecorded>()
            || source
                .downcast_ref::<crate::providers::ProviderError>()
                .is_some_and(crate::providers::ProviderError::may_have_been_accepted)
    }
}

/// The cause of an `accepted_unrecorded` failure.
#[derive(Debug, thiserror::Error)]
#[error("accepted, not recorded: {0}")]
pub struct AcceptedUnrecorded(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Parses a model's arguments into a tool's typed arguments.
pub fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T, ToolError> {
    if !args.is_object() {
        return Err(ToolError::InvalidArguments(format!(
            "expected a JSON object, got {}",
            truncate(&args.to_string(), 120)
        )));
    }
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Tool implementations by name, built once at start-up and shared.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool under its spec's name, replacing any tool of that name.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> &mut Self {
        self.tools.insert(tool.spec().name, tool);
        self
    }

    /// Builder form of [`register`](Self::register).
    pub fn with(mut self, tool: Arc<dyn Tool>) -> Self {
        self.register(tool);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.tools.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personas::testing::FakeTool;

    #[test]
    fn the_registry_finds_tools_by_name() {
        let registry = ToolRegistry::new()
            .with(FakeTool::ok(catalog::RECORD_IDEAS))
            .with(FakeTool::ok(catalog::START_RUN));
        assert!(registry.get("record_ideas").is_some());
        assert!(registry.get("nope").is_none());
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["record_ideas", "start_run"]
        );
        assert_eq!(format!("{registry:?}"), r#"{"record_ideas", "start_run"}"#);
    }

    #[test]
    fn contexts_say_what_they_are_for() {
        let chat = ToolContext::chat("u1");
        assert_eq!(chat.agent(), Agent::Brendan);
        let err = chat.run_scope().unwrap_err();
        assert_eq!(err.to_string(), "this tool needs a run");
        let run = ToolContext::run(RunId::new(), "aismr".parse().unwrap(), Persona::Alex, None);
        assert_eq!(run.agent(), Agent::Persona(Persona::Alex));
        assert!(run.chat_scope().is_err());
        let with_token = ToolContext::run(
            RunId::new(),
            "aismr".parse().unwrap(),
            Persona::Alex,
            Some("secret-task-token".into()),
        );
        let shown = format!("{with_token:?}");
        assert!(
            !shown.contains("secret-task-token") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn arguments_must_be_an_object_of_the_right_shape() {
        let err = parse_args::<catalog::StartRunArgs>(Value::String("x".into())).unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
        let err = parse_args::<catalog::StartRunArgs>(serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("missing field `project`"), "{err}");
    }
}

#[cfg(test)]
mod in_doubt_tests {
    use super::ToolError;

    /// Work accepted and not recorded is in doubt, like a submission whose
    /// answer was lost: its intent stays open for its callback to settle it.
    #[test]
    fn work_accepted_and_not_recorded_is_in_doubt() {
        let unrecorded = ToolError::accepted_unrecorded(
            "kie.ai accepted clip t1",
            std::io::Error::other("ThrottlingException"),
        );
        assert!(unrecorded.is_transient());
        assert!(unrecorded.may_have_been_accepted());
        assert!(unrecorded.to_string().contains("kie.ai accepted clip t1"));
        assert!(!ToolError::failed("refused").may_have_been_accepted());
        let transient = ToolError::Transient {
            message: "a store hiccup".into(),
            source: Some(Box::new(std::io::Error::other("timeout"))),
        };
        assert!(!transient.may_have_been_accepted());
    }
}
