-- Fewer count rows still, and the oldest ready job's age exact to the second at any age.
--
-- Migration 0018 kept the past 'pending' keys by the minute for two hours, the hour for two days,
-- then the day, for one reason: the age of the oldest ready job. A queue with a ready backlog two
-- hours deep kept 118 minute rows, and 100 such queues 11,800. Now that age is read from
-- jobs_pending_idx instead (spool.oldest_ready: one descent per distinct priority in the queue, then
-- the first ready first attempt under each; the walk is shared with spool.due_between), for each queue with a ready job, in the reader's
-- snapshot; and the past 'pending' keys fold into one row per queue after two minutes. Finished
-- keys, kept by the second for "finished in the last minute", now fold after 70 seconds instead of
-- two minutes (ten seconds to spare for a reader whose clock started before the fold's).
--
-- A queue now keeps at most: 120 per-second 'pending' rows behind now and 120 ahead (the horizon of
-- migration 0029), one row for older ready jobs and one for far-future ones, 70 per-second rows for
-- each of succeeded, dead and cancelled and one for older ones, and one each for running, retrying
-- and waiting.

CREATE OR REPLACE FUNCTION spool.count_key(bucket text, due timestamptz, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT CASE
        WHEN bucket = 'pending'::text AND due >= at - '2 minutes'::interval THEN due
        WHEN bucket <> 'pending'::text AND due >= at - '70 seconds'::interval THEN due
        ELSE '-infinity'::timestamptz END
$$;

-- The distinct priorities of a queue's pending jobs, highest first, walked down jobs_pending_idx
-- (queue, priority DESC, run_at, id): one descent each, whatever the number of jobs. PL/pgSQL, as
-- spool.oldest_ready, so that a session plans its statements once, not at every call (it is called
-- for every queue with a ready job on each scrape).
CREATE FUNCTION spool.pending_priorities(one_queue text) RETURNS SETOF smallint
LANGUAGE plpgsql STABLE ROWS 3
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    p smallint;
BEGIN
    SELECT max(j.priority) INTO p FROM spool.jobs j
    WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue;
    WHILE p IS NOT NULL LOOP
        RETURN NEXT p;
        SELECT max(j.priority) INTO p FROM spool.jobs j
        WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue AND j.priority < p;
    END LOOP;
END
$$;

-- Migration 0029's, through spool.pending_priorities.
CREATE OR REPLACE FUNCTION spool.due_between(one_queue text, lo timestamptz, hi timestamptz)
RETURNS TABLE (due timestamptz, n bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT date_trunc('second'::text, j.run_at, 'UTC'::text), count(*)
    FROM spool.pending_priorities(one_queue) p
    JOIN spool.jobs j ON j.priority = p
    WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue AND j.run_at >= lo
        AND j.run_at < hi AND j.attempt = 0
    GROUP BY 1
$$;

-- When the oldest ready first attempt of a queue became due (its run_at), at `at`; NULL if none is:
-- the first one under each of its priorities. Readers call it only for a queue with a ready job;
-- under each priority it passes over the retries due before that job (PENDING after a failed
-- attempt: claimable as well, so normally few), and stops at the job. About 0.1 ms a queue.
CREATE FUNCTION spool.oldest_ready(one_queue text, at timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    oldest timestamptz;
BEGIN
    SELECT min(o.run_at) INTO oldest
    FROM spool.pending_priorities(one_queue) p,
    LATERAL (
        SELECT j.run_at FROM spool.jobs j
        WHERE j.state = 'pending'::spool.job_state AND j.queue = one_queue AND j.priority = p
            AND j.attempt = 0 AND j.run_at < date_trunc('second'::text, at, 'UTC'::text) + '1 second'::interval
        ORDER BY j.run_at
        LIMIT 1
    ) o;
    RETURN oldest;
END
$$;

-- The counts as migration 0029 reads them, with no count key grouping left: ready and scheduled
-- compare each key with `at` as it is, and the oldest ready age comes from spool.oldest_ready.
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
        SELECT s.queue, sum(d.n)::float8 AS n
        FROM stale s,
        LATERAL spool.due_between(s.queue, s.since, date_trunc('second'::text, at, 'UTC'::text) + '1 second'::interval) d
        GROUP BY s.queue
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
        SELECT e.queue, 'pending'::text, 'infinity'::timestamptz, -e.n FROM early e
        UNION ALL
        SELECT e.queue, 'pending'::text, '-infinity'::timestamptz, e.n FROM early e
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
    )
    SELECT t.queue, coalesce(t.ready, 0)::bigint, coalesce(t.scheduled, 0)::bigint,
        coalesce(t.retrying, 0)::bigint, coalesce(t.running, 0)::bigint, coalesce(t.succeeded, 0)::bigint,
        coalesce(t.dead, 0)::bigint, coalesce(t.cancelled, 0)::bigint, coalesce(t.waiting, 0)::bigint,
        coalesce(t.finished_last_minute, 0)::bigint,
        CASE WHEN t.ready > 0
            THEN at - date_trunc('second'::text, spool.oldest_ready(t.queue, at), 'UTC'::text) END,
        t.total::bigint
    FROM totals t
$$;

REVOKE ALL ON FUNCTION spool.pending_priorities(text), spool.oldest_ready(text, timestamptz) FROM PUBLIC;
