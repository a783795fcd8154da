-- The local engine's durable state: executions (with a snapshot of the
-- interpreter), their history, task tokens, and the local queue (an outbox
-- written in the same transaction as the transition that sends a message).
CREATE TABLE executions (
    execution_arn      TEXT PRIMARY KEY,
    state_machine_arn  TEXT NOT NULL,
    name               TEXT NOT NULL,
    definition         TEXT NOT NULL,
    input              TEXT NOT NULL,
    status             TEXT NOT NULL,
    output             TEXT,
    error              TEXT,
    cause              TEXT,
    snapshot           TEXT NOT NULL,
    version            BIGINT NOT NULL,
    start_date         TIMESTAMPTZ NOT NULL,
    stop_date          TIMESTAMPTZ,
    UNIQUE (state_machine_arn, name)
);
CREATE INDEX executions_by_status ON executions (status, start_date);

CREATE TABLE execution_history (
    execution_arn      TEXT NOT NULL REFERENCES executions (execution_arn) ON DELETE CASCADE,
    event_id           BIGINT NOT NULL,
    previous_event_id  BIGINT NOT NULL,
    type               TEXT NOT NULL,
    timestamp          TIMESTAMPTZ NOT NULL,
    details            TEXT NOT NULL,
    PRIMARY KEY (execution_arn, event_id)
);

CREATE TABLE task_tokens (
    token          TEXT PRIMARY KEY,
    execution_arn  TEXT NOT NULL REFERENCES executions (execution_arn) ON DELETE CASCADE,
    state_name     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX task_tokens_by_execution ON task_tokens (execution_arn);

CREATE TABLE queue_messages (
    id             TEXT PRIMARY KEY,
    queue_url      TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    receive_count  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX queue_messages_by_queue ON queue_messages (queue_url, created_at);
