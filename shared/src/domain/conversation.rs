//! Brendan's conversation memory: what each user and Brendan said.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{named_enum, RunId};

named_enum! {
    /// Who said it.
    pub enum ChatRole: "chat role" {
        User => "user",
        Brendan => "brendan",
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
    /// Runs the message is about (started or asked after).
    pub run_ids: Vec<RunId>,
    pub created_at: DateTime<Utc>,
}
