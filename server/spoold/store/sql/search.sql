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
      AND (j.state <> 'succeeded' OR j.pipeline_id IS NULL)
    ORDER BY j.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE spool.jobs j SET
        -- A step with parents still unfinished waits for them again, as does one of a paused pipeline.
        state = CASE WHEN waiting_on > 0
            OR EXISTS (SELECT 1 FROM spool.pipelines p WHERE p.id = j.pipeline_id AND p.paused)
            THEN 'waiting' ELSE 'pending' END::spool.job_state,
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
    SELECT DISTINCT queue FROM requeued WHERE requeued.state = 'pending'
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
          -- Pipeline steps go with their pipeline (prune_pipelines): a result is a child's input.
          AND j.pipeline_id IS NULL
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

-- name: prune_pipelines
-- Deletes up to $4 pipelines, with their steps, whose steps are all finished or waiting behind a
-- dead or cancelled one, once the newest step finished longer ago than the retention of the
-- pipeline's state ($1 succeeded, $2 cancelled, $3 failed); returns the steps deleted.
WITH doomed AS (
    SELECT p.id FROM spool.pipelines p
    CROSS JOIN LATERAL (
        SELECT spool.pipeline_state(array_agg(j.state) FILTER (WHERE j.id IS DISTINCT FROM p.on_failure_id)) AS state,
               bool_and(j.state NOT IN ('pending', 'running')) AS idle,
               max(j.finished_at) AS last
        FROM spool.jobs j WHERE j.pipeline_id = p.id
    ) AS s
    WHERE s.state <> 'running' AND s.idle
      AND s.last < now() - CASE s.state WHEN 'succeeded' THEN $1::interval
          WHEN 'cancelled' THEN $2::interval ELSE $3::interval END
    ORDER BY p.id
    LIMIT $4
    FOR UPDATE OF p SKIP LOCKED
), steps AS (
    DELETE FROM spool.jobs j USING doomed WHERE j.pipeline_id = doomed.id RETURNING j.id
), gone AS (
    DELETE FROM spool.pipelines p USING doomed WHERE p.id = doomed.id
)
SELECT id FROM steps
