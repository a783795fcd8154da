//! MyloWare core: everything the Lambda functions and the `mw` CLI share.
//! The map is docs/architecture.md; each module's docs say why it exists.
pub mod api;
pub mod aws;
pub mod config;
pub mod domain;
pub mod engine;
pub mod hitl;
pub mod lambda;
pub mod personas;
pub mod pipeline;
pub mod private_files;
pub mod providers;
pub mod queue;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod wiring;

pub use config::Config;
