//! The workflow engine: the ASL model and interpreter core (`asl`), and the
//! durable local engine and the `Engine` port on top of it.
pub mod asl;
