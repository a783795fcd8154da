//! Terminal output: tables for people, JSON for scripts. `outln!` is
//! `println!` that ends the process quietly when stdout is closed (`mw … |
//! head`) instead of panicking.

/// `println!` to stdout; a closed stdout ends the process (exit 141, as a
/// SIGPIPE would).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}
/// `eprintln!` under `mw --verbose` only: where a command reads and writes.
macro_rules! noteln {
    ($($arg:tt)*) => {{
        if $crate::output::verbose() {
            eprintln!($($arg)*);
        }
    }};
}
pub(crate) use noteln;

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once, from `--verbose`, before any command runs.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

use chrono::{DateTime, Utc};
use comfy_table::{presets, Cell, ContentArrangement, Table};
pub(crate) use outln;
use serde::Serialize;

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().map(Cell::new));
    table
}

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2026-11-28 13:40:02` (UTC), the same on every machine.
pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn opt(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

/// A JSON value on one line, cut to `max` characters.
pub fn compact(value: &serde_json::Value, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
