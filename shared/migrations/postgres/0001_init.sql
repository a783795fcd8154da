-- MyloWare schema (Postgres). Names are part of the interface: keep them in step
-- with migrations/sqlite and DESIGN.md.
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    status          TEXT NOT NULL,
    job_code        TEXT NOT NULL UNIQUE,
    user_id         TEXT,
    input           JSONB NOT NULL,
    result          JSONB,
    execution_id    TEXT,
    providers_mode  TEXT NOT NULL,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC);
CREATE INDEX runs_by_updated ON runs (updated_at DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC);

CREATE TABLE artifacts (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    provider    TEXT,
    persona     TEXT,
    url         TEXT,
    checksum    TEXT,
    metadata    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX artifacts_by_run ON artifacts (run_id, created_at);

CREATE TABLE webhook_events (
    id                TEXT PRIMARY KEY,
    run_id            TEXT REFERENCES runs (run_id) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    provider_job_id   TEXT,
    signature_status  TEXT NOT NULL,
    headers           JSONB NOT NULL,
    payload           JSONB NOT NULL,
    status            TEXT NOT NULL,
    error             TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    processed_at      TIMESTAMPTZ,
    UNIQUE (provider, idempotency_key)
);
CREATE INDEX webhook_events_by_run ON webhook_events (run_id, created_at);
CREATE INDEX webhook_events_by_created ON webhook_events (created_at);

CREATE TABLE provider_jobs (
    provider    TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    persona     TEXT NOT NULL,
    task_token  TEXT,
    status      TEXT NOT NULL,
    result      JSONB,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    settled_at  TIMESTAMPTZ,
    PRIMARY KEY (provider, job_id)
);
CREATE INDEX provider_jobs_by_run ON provider_jobs (run_id);

CREATE TABLE hitl_requests (
    run_id        TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    gate          TEXT NOT NULL,
    task_token    TEXT,
    requested_at  TIMESTAMPTZ NOT NULL,
    decision      TEXT,
    decided_by    TEXT,
    comment       TEXT,
    decided_at    TIMESTAMPTZ,
    PRIMARY KEY (run_id, gate)
);
