-- Bulk operations (spoold/bulk.py). `/* AND filter */` is where store/filters.py puts the
-- operation's filter (on alias j); its parameters are numbered after the query's own.

-- name: count_matching
-- How many jobs match, counted up to $1: the cost is bounded by the limit, not the table.
SELECT count(*) AS n FROM (
    SELECT 1 FROM spool.jobs j
    WHERE true /* AND filter */
    LIMIT $1
) AS matching

-- name: newest_job
SELECT coalesce(max(id), 0) AS id FROM spool.jobs

-- name: create_operation
INSERT INTO spool.bulk_operations (action, filter, criteria, include_succeeded, expected, max_id, created_by)
VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6, $7)
RETURNING *

-- name: get_operation
SELECT * FROM spool.bulk_operations WHERE id = $1

-- name: list_operations
-- Newest first, after the id $1 of the previous page's last (0: from the newest).
SELECT * FROM spool.bulk_operations
WHERE $1::bigint = 0 OR id < $1::bigint
ORDER BY id DESC
LIMIT $2

-- name: abort_operation
UPDATE spool.bulk_operations SET state = 'aborted', finished_at = now(), updated_at = now()
WHERE id = $1 AND state = 'running'
RETURNING *

-- name: pick_operation
-- The oldest running operation no other server is working on now.
SELECT * FROM spool.bulk_operations
WHERE state = 'running'
ORDER BY id
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: advance_operation
-- After a batch: $2 more jobs handled, the cursor at $3, finished when $4.
UPDATE spool.bulk_operations SET
    done = done + $2,
    cursor = $3,
    updated_at = now(),
    state = CASE WHEN $4 THEN 'succeeded' ELSE state END,
    finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
WHERE id = $1
RETURNING *

-- (A requeue batch is search.sql's requeue_matching, with the id range added to its filter: one
-- rule for Requeue by filter and for bulk requeues, pipeline steps included.)

-- name: cancel_batch
-- The next $3 matching PENDING or RUNNING jobs ($4) with ids in ($1, $2], as CancelJob does:
-- PENDING ends CANCELLED at once, RUNNING is flagged for its worker's next heartbeat.
WITH picked AS (
    SELECT j.id FROM spool.jobs j
    WHERE j.id > $1 AND j.id <= $2 AND j.state = ANY($4::spool.job_state[]) /* AND filter */
    ORDER BY j.id
    LIMIT $3
    FOR UPDATE
), cancelled AS (
    UPDATE spool.jobs j SET
        state = CASE WHEN j.state = 'pending' THEN 'cancelled'::spool.job_state ELSE j.state END,
        cancel_requested = true,
        finished_at = CASE WHEN j.state = 'pending' THEN now() ELSE j.finished_at END,
        updated_at = now()
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id
)
SELECT (SELECT count(*) FROM cancelled) AS handled,
       (SELECT coalesce(max(id), 0) FROM picked) AS last_id
