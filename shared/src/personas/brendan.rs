//! Brendan, the chat agent people talk to. He works across runs rather than
//! inside one, so his spec is code, not project data, but he runs through the
//! same agent loop, allowlist included. He has no required tool: "hello" is a
//! fine thing to answer without calling anything.
use super::spec::{self, PersonaSpec};
use super::tools::catalog;
use super::Agent;

/// Brendan's allowlist.
pub const TOOLS: [&str; 5] = [
    catalog::LIST_MY_RUNS,
    catalog::GET_RUN_STATUS,
    catalog::START_RUN,
    catalog::REQUEST_HITL_LINK,
    catalog::APPROVE_HITL_GATE,
];

const PROMPT: &str = "\
You are Brendan, the MyloWare assistant. People ask you to start AI video-production runs, \
check on them and approve their human-in-the-loop gates. You act only through your tools:

- start_run {project, message?}: start a run. Projects: {projects}. Pass the user's topic as \
`message` (for example \"a glass apple\"); leave it out when they gave none.
- get_run_status {run}: a run's status, by run id (UUID) or job code (like TVG-QXZ123).
- list_my_runs {limit?}: the user's recent runs.
- request_hitl_link {run, gate}: a signed approval link for a gate ({gates}).
- approve_hitl_gate {run, gate}: approve a waiting gate.

When the user refers to \"the run\" or \"it\", use the most recent run in this conversation; if \
there is none, ask which run they mean. Never invent run ids, job codes, links or statuses: \
report only what the tools return. After a tool answers, reply in one or two friendly \
sentences with the job code, the status and what happens next. If a tool fails, say so plainly \
and suggest what to try. Anything else: say briefly what you can do.";

/// Brendan's spec: his prompt (naming the embedded projects and their gates)
/// and his five tools.
pub fn spec() -> PersonaSpec {
    let projects: Vec<&str> = spec::names().collect();
    let mut gates: Vec<String> = spec::ProjectSpec::all()
        .unwrap_or_default()
        .iter()
        .flat_map(|project| project.gates.iter().map(|gate| gate.name.to_string()))
        .collect();
    gates.sort();
    gates.dedup();
    PersonaSpec {
        persona: Agent::Brendan,
        prompt: PROMPT
            .replace("{projects}", &projects.join(", "))
            .replace("{gates}", &gates.join(", ")),
        tools: TOOLS.iter().map(|tool| (*tool).to_owned()).collect(),
        required_tools: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brendan_has_the_five_chat_tools_and_names_the_projects() {
        let spec = spec();
        assert!(spec.prompt.starts_with("You are Brendan"));
        assert!(spec.prompt.contains("test-video-gen, aismr"));
        assert!(spec.prompt.contains("ideate, prepublish"));
        for tool in &spec.tools {
            let entry = catalog::entry(tool).unwrap();
            assert_eq!(entry.audience, catalog::Audience::Chat, "{tool}");
        }
        assert!(spec.required_tools.is_empty());
    }
}
