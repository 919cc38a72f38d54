-- Jobs by queue and status, kept as they change, so that queue stats and the metrics' gauges read
-- a few hundred rows instead of scanning spool.jobs.
--
-- Statement-level triggers on spool.jobs append one delta row per (queue, bucket, key) that a
-- statement changed (a batch of 1,000 acks: two rows). Deltas are only ever inserted, so writers
-- never wait on each other for a counter row; the `counts` loop (spoold/loops/counts.py) folds
-- them into spool.queue_counts about once a second. Readers sum both tables: the answer is exact
-- at their snapshot, whenever the loop last ran.
--
-- bucket: the job's state, with PENDING split into 'pending' (attempt 0) and 'retrying'.
-- due: 'pending' rows by run_at and finished ones by finished_at, to the second, so that readers
-- can tell ready from scheduled, the oldest ready job's age, and the jobs finished in the last
-- minute; '-infinity' for the rest. spool.count_key coarsens past keys as they age (the loop
-- rewrites them), which bounds the rows a queue keeps.

CREATE TABLE spool.queue_counts (
    queue text NOT NULL,
    bucket text NOT NULL,
    due timestamptz NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT queue_counts_pkey PRIMARY KEY (queue, bucket, due)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 1);

CREATE TABLE spool.queue_count_deltas (
    queue text NOT NULL,
    bucket text NOT NULL,
    due timestamptz NOT NULL,
    n bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1);

-- A row's bucket and key, as the triggers count it; a function of the row alone, so that the
-- row's -1 when it changes lands where its +1 did.
CREATE FUNCTION spool.count_bucket(state spool.job_state, attempt integer) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT CASE WHEN state = 'pending'::spool.job_state AND attempt > 0 THEN 'retrying'::text
        ELSE state::text END
$$;

CREATE FUNCTION spool.count_due(state spool.job_state, attempt integer, run_at timestamptz,
    finished_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT CASE
        WHEN state = 'pending'::spool.job_state AND attempt = 0 THEN date_trunc('second'::text, run_at, 'UTC'::text)
        WHEN finished_at IS NOT NULL THEN date_trunc('second'::text, finished_at, 'UTC'::text)
        ELSE '-infinity'::timestamptz END
$$;

-- The key a count is kept under at time `at`: finished jobs by the second for two minutes (enough
-- for "finished in the last minute"), then all in one; 'pending' ones by the second for two
-- minutes, then by the minute for two hours, the hour for two days, then the day. Keys only get
-- coarser as `at` moves on, and a coarsened key maps to itself.
CREATE FUNCTION spool.count_key(bucket text, due timestamptz, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT CASE
        WHEN due >= at - '2 minutes'::interval OR due = '-infinity'::timestamptz THEN due
        WHEN bucket <> 'pending'::text THEN '-infinity'::timestamptz
        WHEN date_trunc('minute'::text, due, 'UTC'::text) >= at - '2 hours'::interval
        THEN date_trunc('minute'::text, due, 'UTC'::text)
        WHEN date_trunc('hour'::text, due, 'UTC'::text) >= at - '2 days'::interval
        THEN date_trunc('hour'::text, due, 'UTC'::text)
        ELSE date_trunc('day'::text, due, 'UTC'::text) END
$$;

-- Inserted rows count +1, deleted ones -1: both triggers name their transition table `changed`.
CREATE FUNCTION spool.count_rows() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, spool, pg_temp AS $$
BEGIN
    INSERT INTO spool.queue_count_deltas (queue, bucket, due, n)
    SELECT c.queue, spool.count_bucket(c.state, c.attempt),
        spool.count_due(c.state, c.attempt, c.run_at, c.finished_at),
        CASE WHEN TG_OP = 'DELETE' THEN -count(*) ELSE count(*) END
    FROM changed c
    GROUP BY 1, 2, 3;
    RETURN NULL;
END
$$;

CREATE FUNCTION spool.count_updated() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, spool, pg_temp AS $$
BEGIN
    -- A heartbeat's rows net to nothing: no delta is written for them.
    INSERT INTO spool.queue_count_deltas (queue, bucket, due, n)
    SELECT c.queue, c.bucket, c.due, sum(c.n)
    FROM (
        SELECT a.queue, spool.count_bucket(a.state, a.attempt) AS bucket,
            spool.count_due(a.state, a.attempt, a.run_at, a.finished_at) AS due, 1::bigint AS n
        FROM after_rows a
        UNION ALL
        SELECT b.queue, spool.count_bucket(b.state, b.attempt),
            spool.count_due(b.state, b.attempt, b.run_at, b.finished_at), -1::bigint
        FROM before_rows b
    ) c
    GROUP BY 1, 2, 3
    HAVING sum(c.n) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION spool.count_truncated() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, spool, pg_temp AS $$
BEGIN
    DELETE FROM spool.queue_count_deltas;
    DELETE FROM spool.queue_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_inserted AFTER INSERT ON spool.jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spool.count_rows();
CREATE TRIGGER jobs_count_updated AFTER UPDATE ON spool.jobs
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spool.count_updated();
CREATE TRIGGER jobs_count_deleted AFTER DELETE ON spool.jobs
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spool.count_rows();
CREATE TRIGGER jobs_count_truncated AFTER TRUNCATE ON spool.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION spool.count_truncated();

-- The counts of the jobs already there. CREATE TRIGGER has locked spool.jobs against writes
-- until this migration commits, so nothing is counted twice or missed.
INSERT INTO spool.queue_counts (queue, bucket, due, n)
SELECT c.queue, c.bucket, spool.count_key(c.bucket, c.due, now()), sum(c.n)
FROM (
    SELECT j.queue, spool.count_bucket(j.state, j.attempt) AS bucket,
        spool.count_due(j.state, j.attempt, j.run_at, j.finished_at) AS due, count(*) AS n
    FROM spool.jobs j
    GROUP BY 1, 2, 3
) c
GROUP BY 1, 2, 3;

-- Jobs by queue and derived status at `at`, from the counts alone. ready and scheduled are the
-- 'pending' counts due by `at` or after (to the second); lag: `at` less the oldest due key with
-- jobs in it (to its key's grain). One row per queue that has any job; `one_queue` limits it to one.
CREATE FUNCTION spool.queue_stats(one_queue text, at timestamptz)
RETURNS TABLE (queue text, ready bigint, scheduled bigint, retrying bigint, running bigint,
    succeeded bigint, dead bigint, cancelled bigint, waiting bigint, finished_last_minute bigint,
    lag interval, total bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    WITH keyed AS (
        SELECT c.queue, c.bucket, spool.count_key(c.bucket, c.due, at) AS due, sum(c.n) AS n
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

-- Folds the deltas into spool.queue_counts, and rewrites the keys that have aged into a coarser
-- one; returns how many delta rows it folded. One replica at a time (the others skip the round).
CREATE FUNCTION spool.roll_up_counts(at timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('spool.roll_up_counts')::bigint) THEN
        RETURN 0;
    END IF;
    WITH moved AS (
        DELETE FROM spool.queue_count_deltas RETURNING queue, bucket, due, n
    ), summed AS (
        SELECT m.queue, m.bucket, spool.count_key(m.bucket, m.due, at) AS due, sum(m.n) AS n, count(*) AS rows
        FROM moved m GROUP BY 1, 2, 3
    ), merged AS (
        INSERT INTO spool.queue_counts AS k (queue, bucket, due, n)
        SELECT s.queue, s.bucket, s.due, s.n FROM summed s WHERE s.n <> 0
        ON CONFLICT (queue, bucket, due) DO UPDATE SET n = k.n + excluded.n
    )
    SELECT coalesce(sum(s.rows), 0)::bigint INTO folded FROM summed s;
    -- Aged keys: their rows leave, and come back summed under the coarser key.
    WITH aged AS (
        DELETE FROM spool.queue_counts k
        WHERE k.due <> spool.count_key(k.bucket, k.due, at)
        RETURNING k.queue, k.bucket, spool.count_key(k.bucket, k.due, at) AS due, k.n
    )
    INSERT INTO spool.queue_counts AS k (queue, bucket, due, n)
    SELECT a.queue, a.bucket, a.due, sum(a.n) FROM aged a GROUP BY 1, 2, 3
    ON CONFLICT (queue, bucket, due) DO UPDATE SET n = k.n + excluded.n;
    DELETE FROM spool.queue_counts k WHERE k.n = 0;
    RETURN folded;
END
$$;

REVOKE ALL ON FUNCTION
    spool.count_bucket(spool.job_state, integer),
    spool.count_due(spool.job_state, integer, timestamptz, timestamptz),
    spool.count_key(text, timestamptz, timestamptz),
    spool.count_rows(),
    spool.count_updated(),
    spool.count_truncated(),
    spool.queue_stats(text, timestamptz),
    spool.roll_up_counts(timestamptz)
FROM PUBLIC;
