//! Amazon States Language: model, parser, validation and the pure interpreter core.
//!
//! Everything here is pure (no I/O, no clock, no async): the durable local engine and the CLI
//! drive it. Start with [`StateMachine::parse`] (after [`substitute()`] for `${…}` placeholders),
//! then [`Snapshot::start`] and [`Snapshot::handle`].

pub mod choice;
pub mod context;
pub mod driver;
pub mod error;
pub mod intrinsics;
pub mod machine;
pub mod model;
pub mod path;
pub mod payload;
pub mod substitute;
pub mod timestamp;

pub use error::{error_matches, StatesError};
pub use machine::{
    Effect, Event, EventError, ExecutionContext, ExecutionResult, ExecutionStatus, HistoryEvent,
    PendingToken, Snapshot, Step,
};
pub use model::{
    Resource, StateKind, StateMachine, UnsupportedResource, ValidationError, ValidationErrors,
};
pub use substitute::{substitute, SubstitutionError};
