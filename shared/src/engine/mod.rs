//! The workflow engine: the ASL model and interpreter core (`asl`), the
//! `Engine` port shaped like the Step Functions API, and the durable local
//! engine (`local`) that runs `statemachine/*.asl.json` with nothing installed,
//! with its queue, and the same port on AWS Step Functions (`stepfunctions`).
pub mod arn;
pub mod asl;
pub mod definitions;
pub mod local;
mod port;
pub mod stepfunctions;

pub use local::{LocalEngine, LocalQueue};
pub(crate) use port::execution_name;
pub use port::{
    is_throttle_code, is_transient_code, validate_execution_name, Engine, EngineError,
    ExecutionDescription, ExecutionEnded, StartedExecution,
};
pub use stepfunctions::StepFunctionsEngine;
