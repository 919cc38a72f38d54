-- name: list_queues
-- The first $2 queues by name after $1 (each with a settings row or a job), with their settings and
-- their jobs by derived status: from the maintained counts (migration 0018), not a scan of
-- spool.jobs. key_throttled reads only the jobs behind a rate key whose window is shut, through
-- jobs_rate_key_idx.
WITH counts AS (
    SELECT * FROM spool.queue_stats(NULL, now())
), names AS (
    SELECT name FROM spool.queues WHERE name > $1
    UNION
    SELECT queue FROM counts WHERE queue > $1
    ORDER BY 1
    LIMIT $2
), key_held AS (
    SELECT j.queue, count(*) AS key_throttled
    FROM spool.rate_keys k
    JOIN spool.jobs j ON j.rate_key = k.key
    WHERE k.opens_at > now() AND j.state = 'pending' AND j.rate_key IS NOT NULL
        AND j.attempt = 0 AND j.run_at <= now() AND j.queue IN (SELECT name FROM names)
    GROUP BY j.queue
)
SELECT n.name, coalesce(q.paused, false) AS paused, q.max_attempts,
    q.backoff_kind, q.backoff_initial, q.backoff_max, q.backoff_multiplier, q.backoff_jitter,
    q.lease_duration, q.attempt_timeout, q.retention_succeeded, q.retention_cancelled,
    q.retention_dead, c.ready, c.scheduled, c.retrying, c.running, c.dead, c.succeeded,
    c.cancelled, c.lag, c.finished_last_minute, h.key_throttled, q.rate_limit, q.rate_interval,
    q.rate_burst,
    q.rate_limit IS NOT NULL
        AND spool.rate_room(q.rate_tat, q.rate_limit, q.rate_interval, q.rate_burst, now()) = 0 AS queue_throttled
FROM names n
LEFT JOIN spool.queues q ON q.name = n.name
LEFT JOIN counts c ON c.queue = n.name
LEFT JOIN key_held h ON h.queue = n.name
ORDER BY n.name

-- name: get_queue
-- One queue as list_queues describes it; no row when it has neither settings nor jobs.
WITH counts AS (
    SELECT * FROM spool.queue_stats($1, now())
), key_held AS (
    SELECT count(*) AS key_throttled
    FROM spool.rate_keys k
    JOIN spool.jobs j ON j.rate_key = k.key
    WHERE k.opens_at > now() AND j.state = 'pending' AND j.rate_key IS NOT NULL
        AND j.attempt = 0 AND j.run_at <= now() AND j.queue = $1
)
SELECT $1 AS name, coalesce(q.paused, false) AS paused, q.max_attempts,
    q.backoff_kind, q.backoff_initial, q.backoff_max, q.backoff_multiplier, q.backoff_jitter,
    q.lease_duration, q.attempt_timeout, q.retention_succeeded, q.retention_cancelled,
    q.retention_dead, c.ready, c.scheduled, c.retrying, c.running, c.dead, c.succeeded,
    c.cancelled, c.lag, c.finished_last_minute, h.key_throttled, q.rate_limit, q.rate_interval,
    q.rate_burst,
    q.rate_limit IS NOT NULL
        AND spool.rate_room(q.rate_tat, q.rate_limit, q.rate_interval, q.rate_burst, now()) = 0 AS queue_throttled
FROM key_held h
LEFT JOIN counts c ON true
LEFT JOIN spool.queues q ON q.name = $1
WHERE c.total > 0 OR q.name IS NOT NULL

-- name: queue_gauges
-- The metrics' per-queue gauges (spoold/metrics/gauges.py), for every queue with a job: the counts
-- ListQueues reads, and whether the queue is paused.
SELECT s.queue, s.ready, s.scheduled, s.retrying, s.running, s.succeeded, s.dead, s.cancelled,
    s.waiting, extract(epoch FROM s.lag)::float8 AS lag, coalesce(q.paused, false) AS paused
FROM spool.queue_stats(NULL, now()) s
LEFT JOIN spool.queues q ON q.name = s.queue

-- name: roll_up_counts
-- Folds the count deltas into spool.queue_counts (the `counts` loop); how many deltas it folded.
SELECT spool.roll_up_counts(now())

-- name: set_paused
-- Pauses or resumes a queue, creating its settings row if needed. Resuming wakes lease waiters.
WITH saved AS (
    INSERT INTO spool.queues AS q (name, paused) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()
    RETURNING q.name
)
SELECT name, CASE WHEN NOT $2 THEN pg_notify('spool_ready', name)::text END AS notified FROM saved

-- name: update_defaults
-- Writes the defaults named in $2 (column names), keeping the others; creates the row if needed.
INSERT INTO spool.queues AS q (name, max_attempts, backoff_kind, backoff_initial, backoff_max,
    backoff_multiplier, backoff_jitter, lease_duration, attempt_timeout, retention_succeeded,
    retention_cancelled, retention_dead)
VALUES ($1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (name) DO UPDATE SET
    max_attempts = CASE WHEN 'max_attempts' = ANY($2) THEN excluded.max_attempts ELSE q.max_attempts END,
    backoff_kind = CASE WHEN 'backoff_kind' = ANY($2) THEN excluded.backoff_kind ELSE q.backoff_kind END,
    backoff_initial = CASE WHEN 'backoff_initial' = ANY($2)
        THEN excluded.backoff_initial ELSE q.backoff_initial END,
    backoff_max = CASE WHEN 'backoff_max' = ANY($2) THEN excluded.backoff_max ELSE q.backoff_max END,
    backoff_multiplier = CASE WHEN 'backoff_multiplier' = ANY($2)
        THEN excluded.backoff_multiplier ELSE q.backoff_multiplier END,
    backoff_jitter = CASE WHEN 'backoff_jitter' = ANY($2)
        THEN excluded.backoff_jitter ELSE q.backoff_jitter END,
    lease_duration = CASE WHEN 'lease_duration' = ANY($2)
        THEN excluded.lease_duration ELSE q.lease_duration END,
    attempt_timeout = CASE WHEN 'attempt_timeout' = ANY($2)
        THEN excluded.attempt_timeout ELSE q.attempt_timeout END,
    retention_succeeded = CASE WHEN 'retention_succeeded' = ANY($2)
        THEN excluded.retention_succeeded ELSE q.retention_succeeded END,
    retention_cancelled = CASE WHEN 'retention_cancelled' = ANY($2)
        THEN excluded.retention_cancelled ELSE q.retention_cancelled END,
    retention_dead = CASE WHEN 'retention_dead' = ANY($2)
        THEN excluded.retention_dead ELSE q.retention_dead END,
    updated_at = now()

-- name: set_rate_limit
-- Sets or (with NULLs) removes the queue's rate limit, creating its settings row if needed. A new
-- limit starts with a full bucket.
INSERT INTO spool.queues AS q (name, rate_limit, rate_interval, rate_burst) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET
    rate_limit = excluded.rate_limit,
    rate_interval = excluded.rate_interval,
    rate_burst = excluded.rate_burst,
    rate_tat = CASE WHEN excluded.rate_limit IS NULL THEN NULL ELSE q.rate_tat END,
    updated_at = now()

-- name: delete_finished_jobs
-- Deletes up to $2 of the queue's finished jobs (their attempts go with them, ON DELETE CASCADE),
-- as ranges of jobs_finished_idx. SKIP LOCKED: a job being requeued or pruned is left alone.
WITH doomed AS (
    SELECT j.id FROM spool.jobs j
    WHERE j.queue = $1 AND j.state IN ('succeeded', 'dead', 'cancelled') AND j.finished_at IS NOT NULL
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM spool.jobs j USING doomed WHERE j.id = doomed.id
RETURNING j.id

-- name: delete_queue
-- Deletes the queue's settings row if the queue has no job left; returns the jobs left and whether
-- a settings row was deleted.
WITH left_over AS (
    SELECT count(*) AS jobs FROM spool.jobs WHERE queue = $1
), gone AS (
    DELETE FROM spool.queues q WHERE q.name = $1 AND (SELECT jobs FROM left_over) = 0
    RETURNING q.name
)
SELECT (SELECT jobs FROM left_over) AS jobs, (SELECT count(*) FROM gone) AS deleted

-- name: existing_queues
-- Which of the names are queues (a settings row or a job), each looked up through an index.
SELECT n.name FROM unnest($1::text[]) AS n(name)
WHERE EXISTS (SELECT 1 FROM spool.queues q WHERE q.name = n.name)
   OR EXISTS (SELECT 1 FROM spool.jobs j WHERE j.state = 'pending'::spool.job_state AND j.queue = n.name)
   OR EXISTS (SELECT 1 FROM spool.jobs j WHERE j.finished_at IS NOT NULL AND j.queue = n.name)
   OR EXISTS (SELECT 1 FROM spool.jobs j WHERE j.state = 'running'::spool.job_state AND j.queue = n.name)

-- name: count_queues
-- How many queues there are: from the maintained counts (migration 0018), not a pass over the jobs.
SELECT count(*) FROM (
    SELECT name FROM spool.queues UNION SELECT queue FROM spool.queue_stats(NULL, now())
) AS q

-- name: queue_activity
-- Jobs that reached SUCCEEDED or DEAD in each of the last $1 minutes (the current one included),
-- per queue: the queues are found by a loose index scan of jobs_finished_idx, and each
-- (queue, state) is a range of it from the window's start, so the cost is the jobs finished in
-- the window, not the history.
WITH RECURSIVE w AS (
    SELECT date_trunc('minute', now()) - ($1::integer - 1) * interval '1 minute' AS start
), names AS (
    SELECT min(queue) AS name FROM spool.jobs WHERE finished_at IS NOT NULL
    UNION ALL
    SELECT (SELECT min(j.queue) FROM spool.jobs j WHERE j.finished_at IS NOT NULL AND j.queue > names.name)
    FROM names
    WHERE names.name IS NOT NULL
)
SELECT w.start, n.name AS queue, s.state::text AS state, f.minute, f.n
FROM w
CROSS JOIN names n
CROSS JOIN unnest('{succeeded,dead}'::spool.job_state[]) AS s(state)
CROSS JOIN LATERAL (
    SELECT floor(extract(epoch FROM j.finished_at - w.start) / 60)::integer AS minute, count(*) AS n
    FROM spool.jobs j
    WHERE j.queue = n.name AND j.state = s.state AND j.finished_at IS NOT NULL AND j.finished_at >= w.start
    GROUP BY 1
) AS f
WHERE n.name IS NOT NULL
ORDER BY n.name
