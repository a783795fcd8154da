-- Each provider callback asks how many jobs of its persona's task are still
-- pending (Store::task_jobs): with the task token and status in the index
-- that is answered from the index alone, not from every job row of the run.
-- The index still serves reads of a whole run by run_id.
DROP INDEX provider_jobs_by_run;
CREATE INDEX provider_jobs_by_task ON provider_jobs (run_id, task_token, status);
