//! What the two SQL adapters share: the statements that are the same in
//! SQLite and Postgres, written once (`store`, `engine`), and what they do
//! alike with the rows they read.
//!
//! A shared statement is written with Postgres's placeholders (`$1`, `$2`,
//! …); `statement!` derives SQLite's (`?1`, `?2`, …) from the same text at
//! compile time, so neither adapter rewrites text on a call. SQLite would
//! read `$1` as a *named* parameter, numbered by first appearance rather
//! than by its digits, hence the rewrite. What differs between the dialects
//! (`= ANY($2)` against an `IN` list, Postgres's row locks and CTEs, the
//! `RETURNING` Postgres needs to read back its JSONB) stays in each adapter.
pub(crate) mod engine;
pub(crate) mod store;

use crate::domain::{Gate, RunId};
use crate::store::StoreError;

/// One statement in both dialects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement {
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

/// The statement whose text is the concatenation of its arguments (string
/// literals, or the column-list macros of `store` and `engine`), written
/// with Postgres's `$N` placeholders; its SQLite text has `?N` instead.
macro_rules! statement {
    ($($text:expr),+ $(,)?) => {{
        const POSTGRES: &str = concat!($($text),+);
        const SQLITE: [u8; POSTGRES.len()] = $crate::store::sql::sqlite_placeholders(POSTGRES);
        $crate::store::sql::Statement {
            postgres: POSTGRES,
            sqlite: $crate::store::sql::utf8(&SQLITE),
        }
    }};
}
pub(crate) use statement;

/// `postgres` with every placeholder `$N` written `?N` (same length: only
/// the `$` changes).
pub(crate) const fn sqlite_placeholders<const N: usize>(postgres: &str) -> [u8; N] {
    let text = postgres.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        let placeholder = text[i] == b'$' && i + 1 < N && text[i + 1].is_ascii_digit();
        out[i] = if placeholder { b'?' } else { text[i] };
        i += 1;
    }
    out
}

/// The text of `bytes`, checked at compile time (a `$` replaced by a `?`
/// in valid UTF-8 is valid UTF-8).
pub(crate) const fn utf8(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => panic!("a statement is not UTF-8"),
    }
}

/// What noting a gate's delivery found: the gate's decision column, if the
/// gate exists. Delivery is noted only for a decided gate.
pub(crate) fn delivered(
    decision: Option<Option<String>>,
    run_id: RunId,
    gate: &Gate,
) -> Result<(), StoreError> {
    match decision {
        None => Err(StoreError::not_found(format!(
            "gate {gate} request of run {run_id}"
        ))),
        Some(None) => Err(StoreError::Refused(format!(
            "gate {gate} of run {run_id} is not decided"
        ))),
        Some(Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_reads_numbered_placeholders_where_postgres_has_dollars() {
        const S: Statement = statement!("UPDATE t SET a = $2, b = '$x' WHERE id = $1 AND n = $10");
        assert_eq!(
            S.postgres,
            "UPDATE t SET a = $2, b = '$x' WHERE id = $1 AND n = $10"
        );
        assert_eq!(
            S.sqlite,
            "UPDATE t SET a = ?2, b = '$x' WHERE id = ?1 AND n = ?10"
        );
    }
}
