//! Workspace integration tests: one binary, shared helpers in `myloware_tests`.
mod cli;
mod runbook_queries;
mod store_conformance;
