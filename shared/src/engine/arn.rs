//! ARNs of the local engine, in Step Functions' shape so that logs, the
//! store and the CLI read the same whichever engine runs.
pub const LOCAL_PARTITION_PREFIX: &str = "arn:aws:states:local:000000000000";

pub fn state_machine(name: &str) -> String {
    format!("{LOCAL_PARTITION_PREFIX}:stateMachine:{name}")
}

pub fn execution(state_machine: &str, name: &str) -> String {
    format!("{LOCAL_PARTITION_PREFIX}:execution:{state_machine}:{name}")
}

/// The last `:`-separated part: the name in a state machine or execution ARN.
pub fn name_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// The ARN of execution `name` of the state machine `state_machine_arn`
/// (`…:stateMachine:<machine>` → `…:execution:<machine>:<name>`), in either
/// engine; `None` for an ARN of another shape.
pub fn execution_of(state_machine_arn: &str, name: &str) -> Option<String> {
    let (prefix, machine) = state_machine_arn.split_once(":stateMachine:")?;
    Some(format!("{prefix}:execution:{machine}:{name}"))
}
