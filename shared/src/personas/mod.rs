//! The personas: who does what in a run, with which tools, and the loop that
//! lets a model do it.
//!
//! Projects are data (`shared/projects/*.json`, embedded at build time): each
//! names its personas' prompts, tool allowlists and required tools, its clip
//! spec and its gates. The code here enforces what the data promises: a
//! persona can only call tools on its allowlist, and it has not done its job
//! until every required tool succeeded. Brendan, the chat agent, runs through
//! the very same loop with his own spec.
use std::fmt;
use std::str::FromStr;

use crate::domain::{ParseError, Persona};

pub mod agent;
pub mod brendan;
pub mod context;
pub mod scripted;
pub mod spec;
pub mod tools;

pub use agent::{
    run_agent, AgentError, AgentObserver, AgentOutcome, NoopObserver, ToolCallRecord, MAX_TURNS,
};
pub use context::PersonaContext;
pub use scripted::ScriptedLlm;
pub use spec::{
    ClipSpec, GatePlacement, GateSpec, PersonaSpec, ProjectSpec, SpecError, UnknownProject,
};
pub use tools::{Tool, ToolContext, ToolError, ToolRegistry, ToolSpec};

/// Whoever runs the agent loop: one of the graph's personas, or Brendan, who
/// talks to people rather than working on a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Agent {
    Brendan,
    Persona(Persona),
}

impl Agent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Brendan => "brendan",
            Self::Persona(persona) => persona.as_str(),
        }
    }

    /// The graph persona, unless this is Brendan.
    pub fn persona(self) -> Option<Persona> {
        match self {
            Self::Brendan => None,
            Self::Persona(persona) => Some(persona),
        }
    }

    /// The name as people write it: `Iggy`, `Brendan`.
    pub fn display_name(self) -> String {
        let name = self.as_str();
        name[..1].to_ascii_uppercase() + &name[1..]
    }
}

impl From<Persona> for Agent {
    fn from(persona: Persona) -> Self {
        Self::Persona(persona)
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Agent {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "brendan" => Ok(Self::Brendan),
            other => other.parse().map(Self::Persona),
        }
    }
}

crate::domain::serde_via_str!(Agent);

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_named_like_personas() {
        assert_eq!("brendan".parse::<Agent>().unwrap(), Agent::Brendan);
        assert_eq!(
            "quinn".parse::<Agent>().unwrap(),
            Agent::Persona(Persona::Quinn)
        );
        assert!("bob".parse::<Agent>().is_err());
        assert_eq!(Agent::from(Persona::Iggy).display_name(), "Iggy");
        assert_eq!(serde_json::to_value(Agent::Brendan).unwrap(), "brendan");
    }
}
