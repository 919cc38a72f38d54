-- Requeues become visible in a job's history, and a SUCCEEDED job has no last error.
--
-- jobs.requeues counts the Requeues of a job; each attempt records the count it started under,
-- so the history shows where a fresh attempt budget began (attempt numbers restart there).
-- Constant defaults: adding the columns rewrites neither table.
ALTER TABLE spool.jobs ADD COLUMN requeues integer NOT NULL DEFAULT 0;
ALTER TABLE spool.attempts ADD COLUMN requeues integer NOT NULL DEFAULT 0;

-- The job-level error is the latest failure that still matters: kept through retries and
-- requeues, cleared by an Ack (the attempts keep every error). Jobs acked before this
-- migration lose theirs here, so the constraint holds for every row.
UPDATE spool.jobs SET error_type = NULL, error_message = NULL, error_details = NULL
WHERE state = 'succeeded'
  AND (error_type IS NOT NULL OR error_message IS NOT NULL OR error_details IS NOT NULL);

ALTER TABLE spool.jobs ADD CONSTRAINT jobs_succeeded_without_error CHECK (
    state <> 'succeeded' OR (error_type IS NULL AND error_message IS NULL AND error_details IS NULL));
ALTER TABLE spool.jobs ADD CONSTRAINT jobs_requeues_range CHECK (requeues >= 0);
