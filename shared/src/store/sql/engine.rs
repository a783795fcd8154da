//! The local engine's statements that SQLite and Postgres share, and what
//! both adapters store alike: definition hashes and history pages.
use super::{statement, Statement};
use crate::store::engine::HistoryRecord;
use crate::store::StoreError;

macro_rules! execution_columns {
    () => {
        "execution_arn, state_machine_arn, name, definition_hash, input, status, output, error, \
         cause, snapshot, version, start_date, stop_date"
    };
}
/// The columns of an execution as read, with its definition text.
macro_rules! execution_read {
    () => {
        "SELECT e.execution_arn, e.state_machine_arn, e.name, d.definition, e.input, e.status, \
         e.output, e.error, e.cause, e.snapshot, e.version, e.start_date, e.stop_date \
         FROM executions e JOIN execution_definitions d ON d.hash = e.definition_hash"
    };
}
pub(crate) use execution_columns;

/// An execution's columns, in the order the rows' readers take them.
pub(crate) const EXECUTION_COLUMNS: &str = execution_columns!();

/// An execution with its definition text, by ARN.
pub(crate) const LOAD_EXECUTION: Statement =
    statement!(execution_read!(), " WHERE e.execution_arn = $1");
/// An execution as described: no definition text.
pub(crate) const DESCRIBE_EXECUTION: Statement = statement!(
    "SELECT execution_arn, state_machine_arn, name, '' AS definition, input, status, output, \
     error, cause, snapshot, version, start_date, stop_date FROM executions \
     WHERE execution_arn = $1"
);
pub(crate) const RUNNING_EXECUTIONS: Statement = statement!(
    execution_read!(),
    " WHERE e.status = 'RUNNING' ORDER BY e.start_date"
);
pub(crate) const HISTORY_PAGES: Statement = statement!(
    "SELECT events FROM execution_history WHERE execution_arn = $1 ORDER BY first_event_id"
);
/// The messages of queue `$1` not yet acknowledged, oldest first.
pub(crate) const QUEUED_MESSAGES: Statement = statement!(
    "SELECT id, queue_url, body, created_at, receive_count FROM queue_messages \
     WHERE queue_url = $1 ORDER BY created_at, id"
);

/// The key a definition is stored under: its SHA-256, hex.
pub(crate) fn definition_hash(definition: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(definition.as_bytes()))
}

/// The history events of one commit as one JSON array: one row per
/// transition rather than per event keeps the write path short.
pub(crate) fn history_page(events: &[HistoryRecord]) -> String {
    use std::fmt::Write as _;
    let size: usize = events.iter().map(|e| e.details.len() + 128).sum();
    let mut page = String::with_capacity(size + 2);
    page.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            page.push(',');
        }
        let details = if e.details.is_empty() {
            "null"
        } else {
            &e.details
        };
        let _ = write!(
            page,
            "{{\"id\":{},\"previous_event_id\":{},\"type\":",
            e.event_id, e.previous_event_id
        );
        push_json_string(&mut page, &e.event_type);
        page.push_str(",\"timestamp\":");
        push_json_string(
            &mut page,
            &e.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        page.push_str(",\"details\":");
        page.push_str(details);
        page.push('}');
    }
    page.push(']');
    page
}

/// Appends `text` as a JSON string.
fn push_json_string(out: &mut String, text: &str) {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(text).to_string());
    }
}

/// Reads a page written by `history_page`.
pub(crate) fn read_history_page(page: &str) -> Result<Vec<HistoryRecord>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Event {
        id: i64,
        previous_event_id: i64,
        #[serde(rename = "type")]
        event_type: String,
        timestamp: chrono::DateTime<chrono::Utc>,
        details: serde_json::Value,
    }
    let events: Vec<Event> = serde_json::from_str(page)?;
    Ok(events
        .into_iter()
        .map(|e| HistoryRecord {
            event_id: e.id,
            previous_event_id: e.previous_event_id,
            event_type: e.event_type,
            timestamp: e.timestamp,
            details: e.details.to_string(),
        })
        .collect())
}
