//! The limits on what callers send, in one place: the API answers 413 for a
//! body over its limit and 422 for a field over its own, before anything is
//! stored (the README's API section lists them). A run's message is the
//! creative prompt, not a document: a few thousand characters is plenty, and
//! it is kept once, with the run.
use super::PipelineError;

/// A run's message (the creative prompt), in characters.
pub const MESSAGE_MAX_CHARS: usize = 4_000;
/// A chat turn's message, in characters.
pub const CHAT_MESSAGE_MAX_CHARS: usize = 4_000;
/// A user id (chat, runs), in characters: printable, no spaces at its ends.
pub const USER_ID_MAX_CHARS: usize = 128;
/// A gate decision's comment, in characters.
pub const COMMENT_MAX_CHARS: usize = 2_000;
/// A JSON request body, in bytes (webhooks have their own, larger limit).
pub const JSON_BODY_MAX_BYTES: usize = 64 * 1024;
/// A provider callback's body, in bytes.
pub const WEBHOOK_BODY_MAX_BYTES: usize = 2 * 1024 * 1024;

fn too_long(what: &str, max: usize) -> PipelineError {
    PipelineError::Invalid(format!("{what} is longer than {max} characters"))
}

/// A run's or a chat turn's message: at most `max` characters.
pub fn message(text: Option<String>, max: usize) -> Result<Option<String>, PipelineError> {
    match text {
        Some(text) if text.chars().count() > max => Err(too_long("message", max)),
        text => Ok(text),
    }
}

/// A user id: 1-128 printable characters.
pub fn user_id(text: &str) -> Result<&str, PipelineError> {
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > USER_ID_MAX_CHARS
        || text.chars().any(char::is_control)
    {
        return Err(PipelineError::Invalid(format!(
            "user_id must be 1-{USER_ID_MAX_CHARS} printable characters"
        )));
    }
    Ok(text)
}

/// An idempotency key (`POST /v1/runs`), in characters.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;

/// An idempotency key: 1-255 visible ASCII characters.
pub fn idempotency_key(key: &str) -> Result<&str, PipelineError> {
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_MAX_CHARS
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(PipelineError::Invalid(format!(
            "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX_CHARS} visible ASCII characters"
        )));
    }
    Ok(key)
}

/// A decision's comment: at most `COMMENT_MAX_CHARS`; blank is none.
pub fn comment(text: Option<String>) -> Result<Option<String>, PipelineError> {
    match text.filter(|t| !t.trim().is_empty()) {
        Some(text) if text.chars().count() > COMMENT_MAX_CHARS => {
            Err(too_long("comment", COMMENT_MAX_CHARS))
        }
        text => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_over_their_limit_are_refused() {
        assert!(message(Some("x".repeat(MESSAGE_MAX_CHARS)), MESSAGE_MAX_CHARS).is_ok());
        assert!(message(Some("x".repeat(MESSAGE_MAX_CHARS + 1)), MESSAGE_MAX_CHARS).is_err());
        assert_eq!(user_id("  dev ").unwrap(), "dev");
        for bad in ["", "  ", "a\nb", &"u".repeat(129)] {
            assert!(user_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(comment(Some("  ".into())).unwrap(), None);
        assert!(comment(Some("c".repeat(COMMENT_MAX_CHARS + 1))).is_err());
    }
}
