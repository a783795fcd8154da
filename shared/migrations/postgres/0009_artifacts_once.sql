-- An artifact recorded once however often its fact is reported
-- (Store::append_artifact_once): a platform's publishing result, which a
-- webhook and the reconciler's poll may both report, each more than once.
ALTER TABLE artifacts ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX artifacts_once ON artifacts (run_id, once_key) WHERE once_key IS NOT NULL;
