//! Workspace integration tests: one binary, shared helpers in `myloware_tests`.
mod asl_corpus;
mod aws_path;
mod callbacks;
mod cli;
mod doctor;
mod dynamodb_table;
mod engine_durability;
mod engine_port;
mod lambda_events;
mod personas;
mod pipeline;
mod restart;
mod runbook_queries;
mod store_conformance;
mod trace;
mod ui;
mod ui_browser;
