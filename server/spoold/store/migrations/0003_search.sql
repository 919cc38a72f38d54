-- Search over the job history (ListJobs, Requeue by filter) and retention (the pruner).
-- Every index here is partial: it holds finished or failed rows only, so the enqueue / lease /
-- heartbeat path of a healthy job pays nothing for it (docs/storage.md has the costs).

-- pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it. Spool installs
-- it into its own schema when it is missing; an existing install elsewhere is reused as it is.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA spool;

-- Case-insensitive substring search over the last error's type and message (ILIKE '%text%').
-- One expression rather than two columns: one index to maintain instead of two. The newline
-- keeps a search from matching across the type/message boundary by accident.
DO $$
DECLARE
    trgm_schema name := (
        SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm');
BEGIN
    EXECUTE format(
        'CREATE INDEX jobs_error_trgm_idx ON spool.jobs USING gin '
        '((coalesce(error_type, '''') || E''\n'' || coalesce(error_message, '''')) %I.gin_trgm_ops) '
        'WHERE error_type IS NOT NULL OR error_message IS NOT NULL',
        trgm_schema);
END
$$;

-- The pruner: per queue and terminal state, oldest finished first. Also lists a queue's recent
-- failures by state. A row enters it when it finishes (an update that is never HOT anyway, since
-- the state changes) and leaves it when it is requeued or pruned.
CREATE INDEX jobs_finished_idx ON spool.jobs (queue, state, finished_at) WHERE finished_at IS NOT NULL;
