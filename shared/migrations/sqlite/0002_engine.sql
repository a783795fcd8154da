-- The local engine's durable state: executions (with a snapshot of the
-- interpreter), their history, and the local queue (an outbox written in the
-- same transaction as the transition that sends a message). Task tokens carry
-- their execution, so no table maps them.
-- Definitions are kept once, by content hash, out of the hot executions rows.
CREATE TABLE execution_definitions (
    hash        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
);

CREATE TABLE executions (
    execution_arn      TEXT PRIMARY KEY,
    state_machine_arn  TEXT NOT NULL,
    name               TEXT NOT NULL,
    definition_hash    TEXT NOT NULL REFERENCES execution_definitions (hash),
    input              TEXT NOT NULL,
    status             TEXT NOT NULL,
    output             TEXT,
    error              TEXT,
    cause              TEXT,
    snapshot           TEXT NOT NULL,
    version            BIGINT NOT NULL,
    start_date         TEXT NOT NULL,
    stop_date          TEXT,
    UNIQUE (state_machine_arn, name)
);
CREATE INDEX executions_by_status ON executions (status, start_date);

-- History in pages: the events of one transition as one JSON array.
CREATE TABLE execution_history (
    execution_arn   TEXT NOT NULL REFERENCES executions (execution_arn) ON DELETE CASCADE,
    first_event_id  BIGINT NOT NULL,
    last_event_id   BIGINT NOT NULL,
    events          TEXT NOT NULL,
    PRIMARY KEY (execution_arn, first_event_id)
);

CREATE TABLE queue_messages (
    id             TEXT PRIMARY KEY,
    queue_url      TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    receive_count  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX queue_messages_by_queue ON queue_messages (queue_url, created_at);
