-- How a provider job was settled: by its callback, or by a reconciler that
-- asked the provider once the callback was overdue (settled_by). Jobs
-- settled before this migration were all settled by their callbacks.
ALTER TABLE provider_jobs ADD COLUMN settled_by TEXT;
UPDATE provider_jobs SET settled_by = 'callback' WHERE status <> 'pending';
