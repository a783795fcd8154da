//! MyloWare core: everything the Lambda functions and the `mw` CLI share.
//! See DESIGN.md for the map; each module's docs say why it exists.
pub mod config;
pub mod domain;
pub mod engine;
pub mod store;
pub mod telemetry;

pub use config::Config;
