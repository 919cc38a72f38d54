-- Searches over the job history. `/* AND filter */` is where store/filters.py puts the composed
-- filter condition (on alias j); its parameters are numbered after the query's own.

-- name: list_newest
SELECT j.* FROM spool.jobs j
WHERE true /* AND filter */
ORDER BY j.id DESC
LIMIT $1

-- name: list_oldest
SELECT j.* FROM spool.jobs j
WHERE true /* AND filter */
ORDER BY j.id
LIMIT $1

-- name: requeue_matching
-- Up to $2 finished jobs in an allowed state ($1) matching the filter go back to PENDING with a
-- fresh attempt budget. SKIP LOCKED: two operators requeueing at once split the work instead of
-- waiting on each other, and a job being pruned is left alone.
WITH picked AS (
    SELECT j.id FROM spool.jobs j
    WHERE j.state = ANY($1::spool.job_state[]) /* AND filter */
    ORDER BY j.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE spool.jobs j SET
        state = 'pending',
        attempt = 0,
        requeues = j.requeues + 1,
        run_at = now(),
        cancel_requested = false,
        finished_at = NULL,
        updated_at = now()
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*
), woken AS (
    SELECT DISTINCT queue FROM requeued
)
SELECT requeued.*, (SELECT count(pg_notify('spool_ready', woken.queue)::text) FROM woken) AS notified
FROM requeued
ORDER BY requeued.id

-- name: prune_finished
-- Deletes up to $4 finished jobs past their queue's retention (spool.queues.retention_*, else the
-- defaults $1 succeeded, $2 cancelled, $3 dead); attempts go with them (ON DELETE CASCADE).
-- The queues that hold finished jobs are found by a loose index scan of jobs_finished_idx (one
-- descent per queue), and each (queue, state) is an exact range of that index, so a round costs
-- what it deletes, not the size of the history. SKIP LOCKED: several processes can prune at once.
WITH RECURSIVE names AS (
    SELECT min(queue) AS name FROM spool.jobs WHERE finished_at IS NOT NULL
    UNION ALL
    SELECT (SELECT min(j.queue) FROM spool.jobs j WHERE j.finished_at IS NOT NULL AND j.queue > names.name)
    FROM names
    WHERE names.name IS NOT NULL
), policy AS (
    SELECT n.name, s.state, CASE s.state
            WHEN 'succeeded' THEN coalesce(q.retention_succeeded, $1::interval)
            WHEN 'cancelled' THEN coalesce(q.retention_cancelled, $2::interval)
            ELSE coalesce(q.retention_dead, $3::interval)
        END AS keep
    FROM names n
    CROSS JOIN unnest('{succeeded,cancelled,dead}'::spool.job_state[]) AS s(state)
    LEFT JOIN spool.queues q ON q.name = n.name
    WHERE n.name IS NOT NULL
), doomed AS (
    SELECT d.id
    FROM policy p
    CROSS JOIN LATERAL (
        SELECT j.id FROM spool.jobs j
        WHERE j.queue = p.name AND j.state = p.state
          AND j.finished_at IS NOT NULL AND j.finished_at < now() - p.keep
        ORDER BY j.finished_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) AS d
    LIMIT $4
)
DELETE FROM spool.jobs j USING doomed WHERE j.id = doomed.id
RETURNING j.id

-- name: prune_rate_keys
-- Deletes up to $1 rate-limit key buckets that have been full for over a minute (a bucket whose tat
-- has passed lets as many start as a key without a row) and that no PENDING job names, so that
-- distinct keys (one per customer, say) do not pile up. A claim admitting a key's job holds that
-- job PENDING until it commits, with the bucket locked: neither is deleted under it.
WITH doomed AS (
    SELECT k.key FROM spool.rate_keys k
    WHERE (k.tat IS NULL OR k.tat < now() - interval '1 minute')
      AND NOT EXISTS (
          SELECT 1 FROM spool.jobs j
          WHERE j.rate_key = k.key AND j.state = 'pending'::spool.job_state)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM spool.rate_keys k USING doomed WHERE k.key = doomed.key
RETURNING k.key
