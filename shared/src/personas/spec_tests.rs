use serde_json::{json, Value};

use super::*;

#[test]
fn every_embedded_spec_loads() {
    let all = ProjectSpec::all().unwrap();
    assert_eq!(all.len(), EMBEDDED.len());
    for spec in &all {
        assert_eq!(ProjectSpec::load(spec.name.as_str()).unwrap(), *spec);
        for persona in &spec.personas {
            assert!(
                persona
                    .prompt
                    .starts_with(&format!("You are {}", persona.persona.display_name())),
                "{}/{}: prompts open by naming the persona",
                spec.name,
                persona.persona
            );
        }
    }
}

#[test]
fn the_two_projects_say_what_the_design_says() {
    let tvg = ProjectSpec::load("test-video-gen").unwrap();
    assert_eq!(tvg.clips, clips(2));
    assert!(tvg.gates.is_empty());
    let aismr = ProjectSpec::load("aismr").unwrap();
    assert_eq!(aismr.clips, clips(12));
    assert_eq!(
        aismr.gates,
        vec![
            GateSpec {
                name: "ideate".parse().unwrap(),
                placement: GatePlacement::After(Persona::Iggy),
            },
            GateSpec {
                name: "prepublish".parse().unwrap(),
                placement: GatePlacement::Before(Persona::Quinn),
            },
        ]
    );
    assert!(aismr.gate("prepublish").is_some());
    for spec in [&tvg, &aismr] {
        let order: Vec<_> = spec.personas.iter().map(|p| p.persona).collect();
        assert_eq!(
            order,
            Persona::ALL
                .iter()
                .map(|&p| Agent::Persona(p))
                .collect::<Vec<_>>()
        );
        let riley = spec.persona(Persona::Riley).unwrap();
        assert!(riley
            .required_tools
            .contains(&"submit_clip_jobs".to_owned()));
        assert!(riley.allows("write_script"));
        assert!(!riley.allows("publish_video"));
    }
}

fn clips(count: u32) -> ClipSpec {
    ClipSpec {
        count,
        duration_seconds: 8,
        aspect_ratio: "9:16".into(),
    }
}

fn minimal() -> Value {
    json!({
        "name": "demo",
        "description": "d",
        "default_message": "m",
        "clips": {"count": 1, "duration_seconds": 8, "aspect_ratio": "9:16"},
        "personas": [
            {"persona": "riley", "prompt": ["You are Riley.", "Write."], "tools": ["submit_clip_jobs"], "required_tools": ["submit_clip_jobs"]}
        ]
    })
}

fn parse(spec: Value) -> Result<ProjectSpec, SpecError> {
    ProjectSpec::parse(&spec.to_string())
}

#[test]
fn a_minimal_spec_parses_and_joins_prompt_lines() {
    let spec = parse(minimal()).unwrap();
    assert_eq!(spec.personas[0].prompt, "You are Riley.\nWrite.");
}

#[test]
fn a_budget_is_dollars_or_nothing() {
    assert_eq!(parse(minimal()).unwrap().budget_usd, None);
    let mut spec = minimal();
    spec["budget_usd"] = json!(12.5);
    assert_eq!(parse(spec.clone()).unwrap().budget_usd, Some(12.5));
    spec["budget_usd"] = json!(-1);
    let err = parse(spec).unwrap_err().to_string();
    assert!(err.contains("budget_usd") && err.contains("demo"), "{err}");
}

#[test]
fn errors_name_project_persona_and_tool() {
    let mut spec = minimal();
    spec["personas"][0]["tools"] = json!(["submit_clip_jobs", "make_coffee"]);
    let err = parse(spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"project demo: persona riley: tool "make_coffee" is not in the tool catalog"#
    );

    let mut spec = minimal();
    spec["personas"][0]["required_tools"] = json!(["submit_clip_jobs", "write_script"]);
    let err = parse(spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"project demo: persona riley: required tool "write_script" is not in its allowlist"#
    );

    let mut spec = minimal();
    spec["personas"][0]["tools"] = json!(["submit_clip_jobs", "start_run"]);
    let err = parse(spec).unwrap_err();
    assert!(
        matches!(err, SpecError::ChatTool { ref tool, .. } if tool == "start_run"),
        "{err}"
    );

    let mut spec = minimal();
    spec["personas"][0]["tools"] = json!(["write_script"]);
    spec["personas"][0]["required_tools"] = json!([]);
    let err = parse(spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"project demo: persona riley: must require tool "submit_clip_jobs""#
    );
}

#[test]
fn structural_mistakes_are_refused() {
    let mut spec = minimal();
    spec["personas"] = json!([spec["personas"][0], spec["personas"][0]]);
    assert!(parse(spec).unwrap_err().to_string().contains("graph order"));

    let mut spec = minimal();
    spec["gates"] = json!([{"name": "ideate", "after": "iggy"}]);
    assert!(parse(spec)
        .unwrap_err()
        .to_string()
        .contains("does not have"));

    let mut spec = minimal();
    spec["clips"]["aspect_ratio"] = json!("4:3");
    assert!(parse(spec)
        .unwrap_err()
        .to_string()
        .contains("clips must be"));

    let mut spec = minimal();
    spec["personas"][0]["allowlist"] = json!([]);
    let err = parse(spec).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("project demo: not a valid spec"),
        "{err}"
    );
}

#[test]
fn unknown_projects_list_the_known_ones() {
    let err = ProjectSpec::load("nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown project "nope" (known: test-video-gen, aismr)"#
    );
}
