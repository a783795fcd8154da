//! From JSON to the model: the top level and the scopes (`StartAt` + `States`), with the graph
//! checks that need a whole scope (targets exist, every state is reachable).

use super::diagnostics::{state_location, Diagnostics, Fields, ValidationErrors};
use super::{Catcher, Scope, ScopeId, State, StateKind, StateMachine, Transition};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// AWS's limit on state names.
const MAX_NAME_CHARS: usize = 80;

pub(super) fn parse_machine(definition: &Value) -> Result<StateMachine, ValidationErrors> {
    let Some(obj) = definition.as_object() else {
        return Err(ValidationErrors::single(
            "the definition must be a JSON object",
        ));
    };
    let mut b = Builder::default();
    let top = Fields { obj, location: "" };
    top.check_known(
        &["StartAt", "States", "Comment", "Version", "TimeoutSeconds"],
        "a state machine",
        &mut b.diag,
    );
    let comment = top.string("Comment", &mut b.diag).map(str::to_owned);
    let version = top.string("Version", &mut b.diag).map(str::to_owned);
    let timeout_seconds = top.integer("TimeoutSeconds", 1, &mut b.diag);
    b.scope(obj, "", "", &[]);
    b.diag.finish()?;
    Ok(StateMachine {
        comment,
        version,
        timeout_seconds,
        scopes: b.scopes,
    })
}

#[derive(Default)]
pub(super) struct Builder {
    pub(super) scopes: Vec<Scope>,
    pub(super) diag: Diagnostics,
}

impl Builder {
    /// Parses a `StartAt` + `States` object. Scope-level problems are reported at `location`;
    /// its states are located under `state_prefix`. `extra` lists allowed fields besides
    /// `StartAt`, `States` and `Comment` (the top level checks its own fields).
    pub(super) fn scope(
        &mut self,
        obj: &Map<String, Value>,
        location: &str,
        state_prefix: &str,
        extra: &[&str],
    ) -> ScopeId {
        let id = ScopeId(self.scopes.len() as u32);
        self.scopes.push(Scope {
            start_at: String::new(),
            states: BTreeMap::new(),
        });
        let fields = Fields { obj, location };
        if !location.is_empty() {
            let mut allowed = vec!["StartAt", "States", "Comment"];
            allowed.extend_from_slice(extra);
            fields.check_known(&allowed, "a list of states", &mut self.diag);
        }
        let start_at = fields.string("StartAt", &mut self.diag);
        if start_at.is_none() && !fields.has("StartAt") {
            self.diag.push(location, "StartAt is missing");
        }
        let declared = match fields.get("States") {
            None => {
                self.diag.push(location, "States is missing");
                return id;
            }
            Some(Value::Object(states)) if states.is_empty() => {
                self.diag.push(location, "States must not be empty");
                return id;
            }
            Some(Value::Object(states)) => states,
            Some(_) => {
                self.diag.push(location, "States must be an object");
                return id;
            }
        };
        let mut states = BTreeMap::new();
        let mut all_parsed = true;
        for (name, value) in declared {
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                self.diag.push(
                    &state_location(state_prefix, name),
                    format!("a state name must have 1 to {MAX_NAME_CHARS} characters"),
                );
            }
            match self.state(name, value, state_prefix) {
                Some(state) => {
                    states.insert(name.clone(), state);
                }
                None => all_parsed = false,
            }
        }
        let names: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
        for (name, state) in &states {
            for (field, target) in successors(state) {
                if !names.contains(target) {
                    self.diag.push(
                        &state_location(state_prefix, name),
                        format!("{field} {target:?} does not exist"),
                    );
                }
            }
        }
        if let Some(start) = start_at {
            if !names.contains(start) {
                self.diag
                    .push(location, format!("StartAt {start:?} does not exist"));
            } else if all_parsed {
                let mut reached = BTreeSet::from([start]);
                let mut queue = VecDeque::from([start]);
                while let Some(name) = queue.pop_front() {
                    for (_, target) in successors(&states[name]) {
                        if names.contains(target) && reached.insert(target) {
                            queue.push_back(target);
                        }
                    }
                }
                for name in names.difference(&reached) {
                    self.diag.push(
                        &state_location(state_prefix, name),
                        format!("the state is not reachable from StartAt {start:?}"),
                    );
                }
            }
        }
        self.scopes[id.0 as usize] = Scope {
            start_at: start_at.unwrap_or_default().to_owned(),
            states,
        };
        id
    }
}

/// The states this one can transition to, each with the field that names it.
fn successors(state: &State) -> Vec<(String, &str)> {
    fn push_transition<'a>(t: &'a Transition, out: &mut Vec<(String, &'a str)>) {
        if let Transition::Next(n) = t {
            out.push(("Next".to_owned(), n.as_str()));
        }
    }
    fn push_catch<'a>(catch: &'a [Catcher], out: &mut Vec<(String, &'a str)>) {
        for (i, c) in catch.iter().enumerate() {
            out.push((format!("Catch[{i}].Next"), c.next.as_str()));
        }
    }
    let mut out = Vec::new();
    match &state.kind {
        StateKind::Pass(s) => push_transition(&s.transition, &mut out),
        StateKind::Wait(s) => push_transition(&s.transition, &mut out),
        StateKind::Task(s) => {
            push_transition(&s.transition, &mut out);
            push_catch(&s.handling.catch, &mut out);
        }
        StateKind::Parallel(s) => {
            push_transition(&s.transition, &mut out);
            push_catch(&s.handling.catch, &mut out);
        }
        StateKind::Map(s) => {
            push_transition(&s.transition, &mut out);
            push_catch(&s.handling.catch, &mut out);
        }
        StateKind::Choice(s) => {
            for (i, rule) in s.choices.iter().enumerate() {
                out.push((format!("Choices[{i}].Next"), rule.next()));
            }
            if let Some(d) = &s.default {
                out.push(("Default".to_owned(), d.as_str()));
            }
        }
        StateKind::Succeed(_) | StateKind::Fail(_) => {}
    }
    out
}
