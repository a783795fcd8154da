-- Run-tree spans: one row per chat turn, run, persona step, gate wait, LLM
-- call and tool call; written when the span opens and again when it closes.
-- A chat turn that started no run has no run_id (its trace stands alone).
CREATE TABLE spans (
    trace_id        TEXT NOT NULL,
    span_id         TEXT NOT NULL,
    parent_span_id  TEXT,
    run_id          TEXT,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attributes      TEXT NOT NULL,
    input           TEXT,
    output          TEXT,
    error           TEXT,
    start_time      TEXT NOT NULL,
    end_time        TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_by_trace ON spans (trace_id, start_time);
CREATE INDEX spans_by_run ON spans (run_id);
