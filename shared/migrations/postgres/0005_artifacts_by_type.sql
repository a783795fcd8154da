-- Steps look up a run's artifacts of a few types (Store::list_artifacts_of):
-- with the type in the index they read only those, not every artifact of
-- the run. The index still serves reads of a whole run by run_id.
DROP INDEX artifacts_by_run;
CREATE INDEX artifacts_by_run_type ON artifacts (run_id, type, created_at);
