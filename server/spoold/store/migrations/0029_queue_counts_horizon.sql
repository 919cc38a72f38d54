-- Scheduled jobs far in the future in one count row per queue, not one per due second.
--
-- Migration 0018 kept 'pending' counts by the second of their run_at for as long as the jobs were
-- in the future, so that readers could tell ready from scheduled to the second: jobs scheduled at
-- random over the next day made a count row per distinct second (40,000 at 1,000,000 jobs), and
-- every scrape and ListQueues summed them all. Now the counts loop keeps a horizon, two minutes
-- ahead: the jobs due before it are counted by the second as before, those due at or after it in
-- one 'later' row per queue, keyed by the horizon. About once a minute the loop moves the horizon
-- on and takes the jobs it passed out of the 'later' row into per-second rows, read from
-- jobs_pending_idx (spool.due_between): a job is read there once, when it comes within two minutes
-- of being due. The count rows a queue keeps are bounded whatever its schedule: per second for
-- four minutes around now, then per minute, hour and day in the past (spool.count_key), plus one.
--
-- Readers stay exact at their snapshot whenever the loop last ran. The triggers are unchanged (their
-- deltas keep the second); a reader puts a 'pending' delta at or past its queue's horizon into the
-- 'later' range. Should the loop stop for a minute, `at` reaches the horizon: the reader then counts
-- the range's jobs due by `at` from jobs_pending_idx (bounded by the jobs that became due since the
-- loop stopped), and the rest of the range is scheduled.

-- The pending first attempts of one queue due in [lo, hi), by the second of their run_at. A walk of
-- jobs_pending_idx (queue, priority DESC, run_at, id): one descent per distinct priority in the queue,
-- then the run_at range under each, so a backlog of ready jobs is never read through.
CREATE FUNCTION spool.due_between(one_queue text, lo timestamptz, hi timestamptz)
RETURNS TABLE (due timestamptz, n bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    WITH RECURSIVE prio AS (
        SELECT max(j.priority) AS p FROM spool.jobs j
        WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue
        UNION ALL
        SELECT (SELECT max(j.priority) FROM spool.jobs j
            WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue AND j.priority < prio.p)
        FROM prio WHERE prio.p IS NOT NULL
    )
    SELECT date_trunc('second'::text, j.run_at, 'UTC'::text), count(*)
    FROM prio
    JOIN spool.jobs j ON j.priority = prio.p
    WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue AND j.run_at >= lo
        AND j.run_at < hi AND j.attempt = 0
    GROUP BY 1
$$;

-- Folds the deltas as before, and keeps the horizon: every 'pending' delta at or past it, and every
-- per-second row that is, goes to the queue's 'later' row; when the horizon is less than a minute
-- ahead of `at` (or more than two), it moves to two minutes ahead, and the jobs it passed leave the
-- 'later' rows for per-second ones. One statement, so that the deltas it folds and the jobs it reads
-- are of one snapshot: a job's delta is either folded here or seen by a later round, never both.
CREATE OR REPLACE FUNCTION spool.roll_up_counts(at timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    folded bigint;
    now_s constant timestamptz := date_trunc('second'::text, at, 'UTC'::text);
    b_old timestamptz;
    b_new timestamptz;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('spool.roll_up_counts')::bigint) THEN
        RETURN 0;
    END IF;
    SELECT max(k.due) INTO b_old FROM spool.queue_counts k WHERE k.bucket = 'later'::text;
    b_new := CASE WHEN b_old BETWEEN now_s + '1 minute'::interval AND now_s + '2 minutes'::interval
        THEN b_old ELSE now_s + '2 minutes'::interval END;
    WITH moved AS (
        DELETE FROM spool.queue_count_deltas RETURNING queue, bucket, due, n
    ), far AS (
        SELECT k.queue FROM spool.queue_counts k WHERE k.bucket = 'later'::text AND k.due = b_old
    ), passed AS (  -- the jobs the horizon passed, by the second
        SELECT f.queue, d.due, d.n FROM far f, LATERAL spool.due_between(f.queue, b_old, b_new) d
        WHERE b_new > b_old
    ), stored AS (  -- rows at or past the new horizon: the old 'later' rows, per-second ones
        DELETE FROM spool.queue_counts k
        WHERE (k.bucket = 'pending'::text AND k.due >= b_new) OR (k.bucket = 'later'::text AND k.due <> b_new)
        RETURNING k.queue, k.n
    ), summed AS (
        SELECT c.queue, c.bucket, c.due, sum(c.n) AS n, sum(c.rows) AS rows
        FROM (
            SELECT m.queue, l.later, m.n, 1 AS rows,
                CASE WHEN l.later THEN 'later'::text ELSE m.bucket END AS bucket,
                CASE WHEN l.later THEN b_new ELSE spool.count_key(m.bucket, m.due, at) END AS due
            FROM moved m
            LEFT JOIN far f ON f.queue = m.queue,
            LATERAL (SELECT m.bucket = 'pending'::text
                AND (m.due >= b_new OR (f.queue IS NOT NULL AND m.due >= b_old)) AS later) l
            UNION ALL
            SELECT s.queue, true, s.n, 0, 'later'::text, b_new FROM stored s
            UNION ALL
            SELECT p.queue, true, -p.n, 0, 'later'::text, b_new FROM passed p
            UNION ALL
            SELECT p.queue, false, p.n, 0, 'pending'::text, p.due FROM passed p
        ) c
        GROUP BY c.queue, c.bucket, c.due
    ), merged AS (
        INSERT INTO spool.queue_counts AS k (queue, bucket, due, n)
        SELECT s.queue, s.bucket, s.due, s.n FROM summed s WHERE s.n <> 0
        ON CONFLICT (queue, bucket, due) DO UPDATE SET n = k.n + excluded.n
    )
    SELECT coalesce(sum(s.rows), 0)::bigint INTO folded FROM summed s;
    -- Aged keys: their rows leave, and come back summed under the coarser key.
    WITH aged AS (
        DELETE FROM spool.queue_counts k
        WHERE k.bucket <> 'later'::text AND k.due <> spool.count_key(k.bucket, k.due, at)
        RETURNING k.queue, k.bucket, spool.count_key(k.bucket, k.due, at) AS due, k.n
    )
    INSERT INTO spool.queue_counts AS k (queue, bucket, due, n)
    SELECT a.queue, a.bucket, a.due, sum(a.n) FROM aged a GROUP BY 1, 2, 3
    ON CONFLICT (queue, bucket, due) DO UPDATE SET n = k.n + excluded.n;
    DELETE FROM spool.queue_counts k WHERE k.n = 0;
    RETURN folded;
END
$$;

-- Jobs by queue and derived status at `at`, as before; a queue's 'later' row counts as scheduled
-- until `at` reaches its horizon, and then is split by spool.due_between. Also quicker for the same
-- answer: the counts are summed as float8 (exact below 2^53), not numeric, and only the ready
-- 'pending' rows are grouped under their count key, which matters for the oldest one alone.
CREATE OR REPLACE FUNCTION spool.queue_stats(one_queue text, at timestamptz)
RETURNS TABLE (queue text, ready bigint, scheduled bigint, retrying bigint, running bigint,
    succeeded bigint, dead bigint, cancelled bigint, waiting bigint, finished_last_minute bigint,
    lag interval, total bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    WITH stale AS (  -- a horizon `at` has reached: the counts loop has not run for a minute or more
        SELECT k.queue, k.due AS since FROM spool.queue_counts k
        WHERE k.bucket = 'later'::text AND k.due <= at AND (one_queue IS NULL OR k.queue = one_queue)
    ), early AS (  -- the jobs of a stale 'later' range due by `at`; the rest of the range is scheduled
        SELECT s.queue, d.due, d.n
        FROM stale s,
        LATERAL spool.due_between(s.queue, s.since, date_trunc('second'::text, at, 'UTC'::text) + '1 second'::interval) d
    ), counted AS (
        SELECT c.queue, CASE WHEN c.bucket = 'later'::text THEN 'pending'::text ELSE c.bucket END AS bucket,
            CASE WHEN s.since IS NOT NULL AND c.bucket IN ('pending'::text, 'later'::text) AND c.due >= s.since
                THEN 'infinity'::timestamptz ELSE c.due END AS due,
            c.n::float8 AS n
        FROM (
            SELECT k.queue, k.bucket, k.due, k.n FROM spool.queue_counts k
            WHERE one_queue IS NULL OR k.queue = one_queue
            UNION ALL
            SELECT d.queue, d.bucket, d.due, d.n FROM spool.queue_count_deltas d
            WHERE one_queue IS NULL OR d.queue = one_queue
        ) c
        LEFT JOIN stale s ON s.queue = c.queue
        UNION ALL
        SELECT e.queue, 'pending'::text, 'infinity'::timestamptz, -e.n::float8 FROM early e
        UNION ALL
        SELECT e.queue, 'pending'::text, e.due, e.n::float8 FROM early e
    ), totals AS (
        SELECT c.queue,
            sum(c.n) FILTER (WHERE c.bucket = 'pending'::text AND c.due <= at) AS ready,
            sum(c.n) FILTER (WHERE c.bucket = 'pending'::text AND c.due > at) AS scheduled,
            sum(c.n) FILTER (WHERE c.bucket = 'retrying'::text) AS retrying,
            sum(c.n) FILTER (WHERE c.bucket = 'running'::text) AS running,
            sum(c.n) FILTER (WHERE c.bucket = 'succeeded'::text) AS succeeded,
            sum(c.n) FILTER (WHERE c.bucket = 'dead'::text) AS dead,
            sum(c.n) FILTER (WHERE c.bucket = 'cancelled'::text) AS cancelled,
            sum(c.n) FILTER (WHERE c.bucket = 'waiting'::text) AS waiting,
            sum(c.n) FILTER (WHERE c.bucket IN ('succeeded'::text, 'dead'::text, 'cancelled'::text)
                AND c.due > at - '1 minute'::interval) AS finished_last_minute,
            sum(c.n) AS total
        FROM counted c
        GROUP BY c.queue
        HAVING sum(c.n) <> 0
    ), oldest AS (  -- the oldest ready key with jobs in it, a job's -1 and +1 under one key
        SELECT o.queue, min(o.due) AS due
        FROM (
            SELECT c.queue,
                -- spool.count_key('pending', c.due, at), written out (migration 0021)
                CASE
                    WHEN c.due >= at - '2 minutes'::interval OR c.due = '-infinity'::timestamptz THEN c.due
                    WHEN date_trunc('minute'::text, c.due, 'UTC'::text) >= at - '2 hours'::interval
                    THEN date_trunc('minute'::text, c.due, 'UTC'::text)
                    WHEN date_trunc('hour'::text, c.due, 'UTC'::text) >= at - '2 days'::interval
                    THEN date_trunc('hour'::text, c.due, 'UTC'::text)
                    ELSE date_trunc('day'::text, c.due, 'UTC'::text)
                END AS due
            FROM counted c
            WHERE c.bucket = 'pending'::text AND c.due <= at
            GROUP BY 1, 2
            HAVING sum(c.n) > 0
        ) o
        GROUP BY o.queue
    )
    SELECT t.queue, coalesce(t.ready, 0)::bigint, coalesce(t.scheduled, 0)::bigint,
        coalesce(t.retrying, 0)::bigint, coalesce(t.running, 0)::bigint, coalesce(t.succeeded, 0)::bigint,
        coalesce(t.dead, 0)::bigint, coalesce(t.cancelled, 0)::bigint, coalesce(t.waiting, 0)::bigint,
        coalesce(t.finished_last_minute, 0)::bigint, at - o.due, t.total::bigint
    FROM totals t
    LEFT JOIN oldest o ON o.queue = t.queue
$$;

REVOKE ALL ON FUNCTION spool.due_between(text, timestamptz, timestamptz) FROM PUBLIC;
