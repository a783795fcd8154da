-- Brendan's conversation memory: the messages of each user's conversation,
-- in order.
CREATE TABLE conversation_messages (
    user_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    run_ids     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
