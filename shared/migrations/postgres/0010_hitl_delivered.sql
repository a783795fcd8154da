-- When the engine took a gate's decision. A decision stored without it (the
-- process stopped, or the engine call failed, between the two) is sent
-- again until the engine confirms it. Decisions made before this column
-- existed were delivered when they were made.
ALTER TABLE hitl_requests ADD COLUMN delivered_at TIMESTAMPTZ;
UPDATE hitl_requests SET delivered_at = decided_at WHERE decision IS NOT NULL;
CREATE INDEX hitl_requests_undelivered ON hitl_requests (decided_at)
    WHERE decision IS NOT NULL AND delivered_at IS NULL;
