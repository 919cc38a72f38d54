-- spool.queue_stats without a call of spool.count_key per count row. A SQL function that sets its
-- search_path is never inlined, so each of the (up to tens of thousands of) count rows paid a
-- function call: at 1,000,000 jobs with scheduled jobs spread over 40,000 due seconds, ListQueues
-- took longer through the counts than the scan they replaced. The key's expression is written out
-- here instead, unchanged (spool.count_key stays, for the fold); queue_stats keeps its fixed
-- search_path, and every result is what it was.
CREATE OR REPLACE FUNCTION spool.queue_stats(one_queue text, at timestamptz)
RETURNS TABLE (queue text, ready bigint, scheduled bigint, retrying bigint, running bigint,
    succeeded bigint, dead bigint, cancelled bigint, waiting bigint, finished_last_minute bigint,
    lag interval, total bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    WITH keyed AS (
        SELECT c.queue, c.bucket,
            -- spool.count_key(c.bucket, c.due, at), written out
            CASE
                WHEN c.due >= at - '2 minutes'::interval OR c.due = '-infinity'::timestamptz THEN c.due
                WHEN c.bucket <> 'pending'::text THEN '-infinity'::timestamptz
                WHEN date_trunc('minute'::text, c.due, 'UTC'::text) >= at - '2 hours'::interval
                THEN date_trunc('minute'::text, c.due, 'UTC'::text)
                WHEN date_trunc('hour'::text, c.due, 'UTC'::text) >= at - '2 days'::interval
                THEN date_trunc('hour'::text, c.due, 'UTC'::text)
                ELSE date_trunc('day'::text, c.due, 'UTC'::text)
            END AS due,
            sum(c.n) AS n
        FROM (
            SELECT k.queue, k.bucket, k.due, k.n FROM spool.queue_counts k
            WHERE one_queue IS NULL OR k.queue = one_queue
            UNION ALL
            SELECT d.queue, d.bucket, d.due, d.n FROM spool.queue_count_deltas d
            WHERE one_queue IS NULL OR d.queue = one_queue
        ) c
        GROUP BY 1, 2, 3
        HAVING sum(c.n) <> 0
    )
    SELECT k.queue,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'pending'::text AND k.due <= at), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'pending'::text AND k.due > at), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'retrying'::text), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'running'::text), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'succeeded'::text), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'dead'::text), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'cancelled'::text), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket = 'waiting'::text), 0)::bigint,
        coalesce(sum(k.n) FILTER (WHERE k.bucket IN ('succeeded'::text, 'dead'::text, 'cancelled'::text)
            AND k.due > at - '1 minute'::interval), 0)::bigint,
        at - min(k.due) FILTER (WHERE k.bucket = 'pending'::text AND k.due <= at AND k.n > 0),
        sum(k.n)::bigint
    FROM keyed k
    GROUP BY k.queue
    HAVING sum(k.n) <> 0
$$;
