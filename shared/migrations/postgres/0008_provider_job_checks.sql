-- A provider job whose callback is overdue is asked about by a reconciler
-- (Store::claim_due_provider_jobs): while pending, next_check_at is when it
-- is next due, checks how many times a reconciler has claimed it; once
-- settled, settled_by says whether its callback or a poll settled it.
-- Jobs pending before this migration are due at once; those settled before
-- it were all settled by their callbacks.
ALTER TABLE provider_jobs ADD COLUMN next_check_at TIMESTAMPTZ;
ALTER TABLE provider_jobs ADD COLUMN checks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE provider_jobs ADD COLUMN settled_by TEXT;
UPDATE provider_jobs SET next_check_at = created_at WHERE status = 'pending';
UPDATE provider_jobs SET settled_by = 'callback' WHERE status <> 'pending';
-- The due jobs, earliest first; it holds only the pending ones, so it stays
-- small however many have settled.
CREATE INDEX provider_jobs_due ON provider_jobs (next_check_at) WHERE status = 'pending';
-- A job's callbacks, found by its provider and id: the orphans a newly
-- registered job adopts (Store::adopt_orphaned_webhook_events).
CREATE INDEX webhook_events_by_provider_job ON webhook_events (provider, provider_job_id);
