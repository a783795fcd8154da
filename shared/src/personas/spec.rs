//! Project specs: the data that says what a project's personas do.
//!
//! Specs live in `shared/projects/<name>.json` and are compiled in, so a
//! deployed function can never disagree with the code it was built with. They
//! are validated when first loaded (each tool in the catalog, graph tools
//! only, required tools on the allowlist, the persona contracts kept), and
//! every error names the project, the persona and the tool.
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::tools::catalog::{self, Audience};
use super::Agent;
use crate::domain::{Gate, Persona, Project};

/// The embedded specs, by name.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "test-video-gen",
        include_str!("../../projects/test-video-gen.json"),
    ),
    ("aismr", include_str!("../../projects/aismr.json")),
];

/// A project: its personas, clips and gates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectSpec {
    pub name: Project,
    pub description: String,
    /// The brief used when the user gives none.
    pub default_message: String,
    pub clips: ClipSpec,
    /// Human approval points, in graph order.
    pub gates: Vec<GateSpec>,
    /// The personas, in graph order.
    pub personas: Vec<PersonaSpec>,
    /// The most a run may spend, in USD (`pipeline::cost`): past it, the
    /// run stops before its next persona. `BUDGET_USD` overrides it.
    pub budget_usd: Option<f64>,
}

/// What clips a run makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipSpec {
    pub count: u32,
    pub duration_seconds: u32,
    pub aspect_ratio: String,
}

/// A gate and where it sits in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    pub name: Gate,
    #[serde(flatten)]
    pub placement: GatePlacement,
}

/// `{"after": "iggy"}` or `{"before": "quinn"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatePlacement {
    After(Persona),
    Before(Persona),
}

impl GatePlacement {
    pub fn persona(self) -> Persona {
        match self {
            Self::After(persona) | Self::Before(persona) => persona,
        }
    }
}

/// One agent's part: its system prompt, the tools it may call, and the tools
/// it must have called successfully before it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonaSpec {
    pub persona: Agent,
    pub prompt: String,
    pub tools: Vec<String>,
    pub required_tools: Vec<String>,
}

impl PersonaSpec {
    pub fn allows(&self, tool: &str) -> bool {
        self.tools.iter().any(|allowed| allowed == tool)
    }
}

/// The tool each graph persona exists to call; a spec that does not require
/// it is refused, so a data edit cannot quietly stop publishing.
pub fn contract(persona: Persona) -> Option<&'static str> {
    match persona {
        Persona::Iggy => None,
        Persona::Riley => Some(catalog::SUBMIT_CLIP_JOBS),
        Persona::Alex => Some(catalog::RENDER_VIDEO),
        Persona::Quinn => Some(catalog::PUBLISH_VIDEO),
    }
}

/// A project name with no spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown project {name:?} (known: {})", .known.join(", "))]
pub struct UnknownProject {
    pub name: String,
    pub known: Vec<String>,
}

/// A spec that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Unknown(#[from] UnknownProject),
    #[error("project {project}: {message}")]
    Invalid { project: String, message: String },
    #[error("project {project}: persona {persona}: tool {tool:?} is not in the tool catalog")]
    UnknownTool {
        project: String,
        persona: String,
        tool: String,
    },
    #[error(
        "project {project}: persona {persona}: tool {tool:?} is a chat tool, not for the graph"
    )]
    ChatTool {
        project: String,
        persona: String,
        tool: String,
    },
    #[error(
        "project {project}: persona {persona}: required tool {tool:?} is not in its allowlist"
    )]
    RequiredNotAllowed {
        project: String,
        persona: String,
        tool: String,
    },
    #[error("project {project}: persona {persona}: must require tool {tool:?}")]
    BrokenContract {
        project: String,
        persona: String,
        tool: String,
    },
}

impl ProjectSpec {
    /// The embedded spec called `name`, validated.
    pub fn load(name: &str) -> Result<Self, SpecError> {
        embedded()
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, spec)| spec.clone())
            .ok_or_else(|| {
                SpecError::from(UnknownProject {
                    name: name.chars().take(64).collect(),
                    known: names().map(str::to_owned).collect(),
                })
            })?
    }

    /// Every embedded spec, or the first that is invalid.
    pub fn all() -> Result<Vec<Self>, SpecError> {
        embedded().iter().map(|(_, spec)| spec.clone()).collect()
    }

    /// Parses and validates a spec from its JSON text.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let file: SpecFile = serde_json::from_str(text).map_err(|e| SpecError::Invalid {
            project: serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned()),
            message: format!("not a valid spec: {e}"),
        })?;
        file.validate()
    }

    pub fn persona(&self, persona: Persona) -> Option<&PersonaSpec> {
        self.personas
            .iter()
            .find(|spec| spec.persona == Agent::Persona(persona))
    }

    pub fn gate(&self, name: &str) -> Option<&GateSpec> {
        self.gates.iter().find(|gate| gate.name.as_str() == name)
    }
}

/// The names of the embedded projects.
pub fn names() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(name, _)| *name)
}

fn embedded() -> &'static [(&'static str, Result<ProjectSpec, SpecError>)] {
    static SPECS: OnceLock<Vec<(&'static str, Result<ProjectSpec, SpecError>)>> = OnceLock::new();
    SPECS.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(name, text)| {
                let spec = ProjectSpec::parse(text).and_then(|spec| {
                    if spec.name.as_str() == *name {
                        Ok(spec)
                    } else {
                        Err(SpecError::Invalid {
                            project: (*name).to_owned(),
                            message: format!("the file names itself {:?}", spec.name.as_str()),
                        })
                    }
                });
                (*name, spec)
            })
            .collect()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: Project,
    description: String,
    default_message: String,
    clips: ClipSpec,
    #[serde(default)]
    gates: Vec<GateSpec>,
    personas: Vec<PersonaFile>,
    #[serde(default)]
    budget_usd: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonaFile {
    persona: Persona,
    prompt: Text,
    tools: Vec<String>,
    #[serde(default)]
    required_tools: Vec<String>,
}

/// Long prompts read better in JSON as a list of lines.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    One(String),
    Lines(Vec<String>),
}

impl SpecFile {
    fn validate(self) -> Result<ProjectSpec, SpecError> {
        let project = self.name.to_string();
        let invalid = |message: String| SpecError::Invalid {
            project: project.clone(),
            message,
        };
        if self.description.trim().is_empty() || self.default_message.trim().is_empty() {
            return Err(invalid(
                "description and default_message must not be empty".into(),
            ));
        }
        let clips = &self.clips;
        if !(1..=50).contains(&clips.count)
            || !(1..=catalog::MAX_CLIP_SECONDS).contains(&clips.duration_seconds)
            || !catalog::ASPECT_RATIOS.contains(&clips.aspect_ratio.as_str())
        {
            return Err(invalid(format!(
                "clips must be 1-50 clips of 1-{}s in one of {:?}",
                catalog::MAX_CLIP_SECONDS,
                catalog::ASPECT_RATIOS
            )));
        }
        if self.personas.is_empty()
            || self
                .personas
                .windows(2)
                .any(|w| w[0].persona >= w[1].persona)
        {
            return Err(invalid(
                "personas must be listed once each, in graph order (iggy, riley, alex, quinn)"
                    .into(),
            ));
        }
        for (i, gate) in self.gates.iter().enumerate() {
            if self.gates[..i].iter().any(|g| g.name == gate.name) {
                return Err(invalid(format!("gate {} is listed twice", gate.name)));
            }
            let anchor = gate.placement.persona();
            if !self.personas.iter().any(|p| p.persona == anchor) {
                return Err(invalid(format!(
                    "gate {} is placed at persona {anchor}, which the project does not have",
                    gate.name
                )));
            }
        }
        if let Some(budget) = self.budget_usd {
            if !budget.is_finite() || budget < 0.0 {
                return Err(invalid(format!(
                    "budget_usd {budget} is not an amount of dollars"
                )));
            }
        }
        let personas = self
            .personas
            .into_iter()
            .map(|file| file.validate(&project))
            .collect::<Result<_, _>>()?;
        Ok(ProjectSpec {
            name: self.name,
            description: self.description,
            default_message: self.default_message,
            clips: self.clips,
            gates: self.gates,
            personas,
            budget_usd: self.budget_usd,
        })
    }
}

impl PersonaFile {
    fn validate(self, project: &str) -> Result<PersonaSpec, SpecError> {
        let persona = self.persona.to_string();
        let named = |tool: &str| (project.to_owned(), persona.clone(), tool.to_owned());
        let prompt = match self.prompt {
            Text::One(text) => text,
            Text::Lines(lines) => lines.join("\n"),
        };
        if prompt.trim().is_empty() {
            return Err(SpecError::Invalid {
                project: project.to_owned(),
                message: format!("persona {persona}: the prompt is empty"),
            });
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let (project, persona, tool) = named(tool);
            match catalog::entry(&tool) {
                None => {
                    return Err(SpecError::UnknownTool {
                        project,
                        persona,
                        tool,
                    })
                }
                Some(entry) if entry.audience != Audience::Graph => {
                    return Err(SpecError::ChatTool {
                        project,
                        persona,
                        tool,
                    })
                }
                Some(_) if self.tools[..i].contains(&tool) => {
                    return Err(SpecError::Invalid {
                        project,
                        message: format!("persona {persona}: tool {tool:?} is listed twice"),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(tool) = self.required_tools.iter().find(|t| !self.tools.contains(t)) {
            let (project, persona, tool) = named(tool);
            return Err(SpecError::RequiredNotAllowed {
                project,
                persona,
                tool,
            });
        }
        if let Some(tool) = contract(self.persona) {
            if !self.required_tools.iter().any(|t| t == tool) {
                let (project, persona, tool) = named(tool);
                return Err(SpecError::BrokenContract {
                    project,
                    persona,
                    tool,
                });
            }
        }
        Ok(PersonaSpec {
            persona: Agent::Persona(self.persona),
            prompt,
            tools: self.tools,
            required_tools: self.required_tools,
        })
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
