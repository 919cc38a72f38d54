-- Schedules: timetables that enqueue a job at each fire time, exactly once across replicas.
-- A schedule row is fired under its row lock (FOR UPDATE SKIP LOCKED: replicas take different
-- schedules), and each fire is a row with a unique (schedule, fire_time), made in the same
-- transaction as its job: a fire time that was fired cannot be fired again.

CREATE TYPE spool.schedule_overlap AS ENUM ('allow', 'skip');
CREATE TYPE spool.schedule_catch_up AS ENUM ('latest', 'all', 'none');
CREATE TYPE spool.fire_outcome AS ENUM ('enqueued', 'skipped', 'failed');

CREATE TABLE spool.schedules (
    name            text PRIMARY KEY,
    -- Exactly one of cron and every: a cron expression as given, or an interval.
    cron            text,
    every           interval,
    time_zone       text NOT NULL DEFAULT 'UTC',
    -- The job template: a spool.v1.EnqueueRequest, checked by Enqueue's own validation.
    template        bytea NOT NULL,
    -- The template's queue, for people reading the table.
    queue           text NOT NULL,
    overlap         spool.schedule_overlap NOT NULL DEFAULT 'allow',
    catch_up        spool.schedule_catch_up NOT NULL DEFAULT 'latest',
    catch_up_limit  integer NOT NULL DEFAULT 100,
    jitter          interval NOT NULL DEFAULT interval '0',
    paused          boolean NOT NULL DEFAULT false,
    -- The earliest fire time not handled yet.
    next_fire_at    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_name_length CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT schedules_one_timing CHECK ((cron IS NULL) <> (every IS NULL)),
    CONSTRAINT schedules_every_range CHECK (every >= interval '1 second' AND every <= interval '366 days'),
    CONSTRAINT schedules_catch_up_limit_range CHECK (catch_up_limit BETWEEN 1 AND 1000),
    CONSTRAINT schedules_jitter_range CHECK (jitter >= interval '0' AND jitter <= interval '1 day')
);

-- What the scheduler looks for: unpaused schedules whose next fire time has come.
CREATE INDEX schedules_due_idx ON spool.schedules (next_fire_at) WHERE NOT paused;

-- The latest fires of each schedule (the scheduler keeps a bounded history).
CREATE TABLE spool.schedule_fires (
    schedule    text NOT NULL REFERENCES spool.schedules (name) ON DELETE CASCADE,
    fire_time   timestamptz NOT NULL,
    fired_at    timestamptz NOT NULL,
    outcome     spool.fire_outcome NOT NULL,
    -- The job enqueued; it may be pruned later, so no foreign key.
    job_id      bigint,
    error       text,
    triggered   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (schedule, fire_time),
    CONSTRAINT schedule_fires_job_iff_enqueued CHECK ((outcome = 'enqueued') = (job_id IS NOT NULL))
);

-- Rate limits: at most `limit` jobs started per `interval`, with bursts of up to `burst`, per queue
-- (its settings row) and per rate-limit key (given at enqueue with its limit, like a concurrency
-- key). Each is a GCRA bucket (the token bucket as one timestamp): `tat` is when the bucket is
-- full again, each start moves it on by interval/limit, and a start is allowed while tat is at
-- most (burst - 1) * interval/limit ahead of now. The claim admits jobs under the buckets' row
-- locks, so the limit holds across every worker and replica. See docs/rate-limits.md.

ALTER TABLE spool.queues
    ADD COLUMN rate_limit integer,
    ADD COLUMN rate_interval interval,
    ADD COLUMN rate_burst integer,
    ADD COLUMN rate_tat timestamptz,
    ADD CONSTRAINT queues_rate_limit_range CHECK (
        (rate_limit IS NULL AND rate_interval IS NULL AND rate_burst IS NULL)
        OR (rate_limit BETWEEN 1 AND 1000000 AND rate_burst BETWEEN 1 AND 1000000
            AND rate_interval >= interval '1 second' AND rate_interval <= interval '1 day'));

ALTER TABLE spool.jobs
    ADD COLUMN rate_key text,
    ADD COLUMN rate_limit integer,
    ADD COLUMN rate_interval interval,
    ADD COLUMN rate_burst integer,
    ADD CONSTRAINT jobs_rate_limit_range CHECK (
        (rate_key IS NULL AND rate_limit IS NULL AND rate_interval IS NULL AND rate_burst IS NULL)
        OR (rate_key IS NOT NULL AND rate_limit BETWEEN 1 AND 1000000 AND rate_burst BETWEEN 1 AND 1000000
            AND rate_interval >= interval '1 second' AND rate_interval <= interval '1 day'));

-- The buckets of rate-limit keys. A key without a row, or whose tat has passed, has a full bucket.
CREATE TABLE spool.rate_keys (
    key      text PRIMARY KEY,
    tat      timestamptz,
    -- When the next job may start (tat less the burst's tolerance); NULL: now.
    opens_at timestamptz
);
CREATE INDEX rate_keys_opens_idx ON spool.rate_keys (opens_at);
-- Which keys' jobs wait: the claim's wake-up time and the throttled count look them up.
CREATE INDEX jobs_rate_key_idx ON spool.jobs (rate_key) WHERE state = 'pending'::spool.job_state AND rate_key IS NOT NULL;

-- How many jobs a bucket lets start at `at`: floor((at - max(tat, at)) * limit / interval) + burst,
-- between 0 and burst.
CREATE FUNCTION spool.rate_room(tat timestamptz, lim integer, per interval, burst integer, at timestamptz)
RETURNS integer LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT greatest(0, least(burst, floor(
        extract(epoch FROM at - greatest(coalesce(tat, at), at)) * lim / extract(epoch FROM per) + burst
    )::integer))
$$;

-- Whether a PENDING job that is due is held back by its queue's or its key's rate limit now: the
-- derived status "throttled".
CREATE FUNCTION spool.throttled(queue text, rate_key text) RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM spool.queues q
        WHERE q.name = throttled.queue AND q.rate_limit IS NOT NULL
          AND spool.rate_room(q.rate_tat, q.rate_limit, q.rate_interval, q.rate_burst, now()) = 0
    ) OR (throttled.rate_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM spool.rate_keys k WHERE k.key = throttled.rate_key AND k.opens_at > now()))
$$;

-- The claim's rate limits: of the candidate ids (in claim order), those their queues' and keys'
-- buckets let start now, taken in claim order; the buckets are moved on by what is admitted.
-- The buckets are locked in a fixed order (queues by name, then keys by key), so claimers never
-- wait on each other in a cycle.
CREATE FUNCTION spool.rate_admit(ids bigint[]) RETURNS bigint[] LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    admitted bigint[];
    limited text[];
    keys text[];
BEGIN
    SELECT array_agg(DISTINCT j.queue) FILTER (WHERE q.rate_limit IS NOT NULL),
           array_agg(DISTINCT j.rate_key) FILTER (WHERE j.rate_key IS NOT NULL)
    INTO limited, keys
    FROM spool.jobs j LEFT JOIN spool.queues q ON q.name = j.queue
    WHERE j.id = ANY(ids);
    IF limited IS NOT NULL THEN
        PERFORM 1 FROM spool.queues q WHERE q.name = ANY(limited) ORDER BY q.name FOR UPDATE;
    END IF;
    IF keys IS NOT NULL THEN
        INSERT INTO spool.rate_keys (key) SELECT unnest(keys) ORDER BY 1 ON CONFLICT DO NOTHING;
        PERFORM 1 FROM spool.rate_keys k WHERE k.key = ANY(keys) ORDER BY k.key FOR UPDATE;
    END IF;

    WITH c AS (
        SELECT j.id, j.queue, j.rate_key, o.ord,
               row_number() OVER (PARTITION BY j.rate_key ORDER BY o.ord) AS key_rank,
               spool.rate_room(k.tat, j.rate_limit, j.rate_interval, j.rate_burst, now()) AS key_room
        FROM unnest(ids) WITH ORDINALITY AS o(id, ord)
        JOIN spool.jobs j ON j.id = o.id
        LEFT JOIN spool.rate_keys k ON k.key = j.rate_key
    ), q AS (
        SELECT c.id, c.ord,
               row_number() OVER (PARTITION BY c.queue ORDER BY c.ord) AS queue_rank,
               CASE WHEN s.rate_limit IS NOT NULL
                    THEN spool.rate_room(s.rate_tat, s.rate_limit, s.rate_interval, s.rate_burst, now())
               END AS queue_room
        FROM c LEFT JOIN spool.queues s ON s.name = c.queue
        WHERE c.rate_key IS NULL OR c.key_rank <= c.key_room
    )
    SELECT array_agg(q.id ORDER BY q.ord) INTO admitted
    FROM q WHERE q.queue_room IS NULL OR q.queue_rank <= q.queue_room;

    IF limited IS NOT NULL THEN
        UPDATE spool.queues s
        SET rate_tat = greatest(coalesce(s.rate_tat, now()), now()) + s.rate_interval * a.n / s.rate_limit
        FROM (SELECT j.queue, count(*) AS n FROM spool.jobs j WHERE j.id = ANY(admitted) GROUP BY j.queue) AS a
        WHERE s.name = a.queue AND s.rate_limit IS NOT NULL;
    END IF;
    IF keys IS NOT NULL THEN
        UPDATE spool.rate_keys k
        SET tat = greatest(coalesce(k.tat, now()), now()) + a.spent,
            opens_at = greatest(coalesce(k.tat, now()), now()) + a.spent - a.tolerance
        FROM (
            SELECT j.rate_key, sum(j.rate_interval / j.rate_limit) AS spent,
                   (array_agg(j.rate_interval * (j.rate_burst - 1) / j.rate_limit ORDER BY j.id DESC))[1]
                       AS tolerance
            FROM spool.jobs j WHERE j.id = ANY(admitted) AND j.rate_key IS NOT NULL GROUP BY j.rate_key
        ) AS a
        WHERE k.key = a.rate_key;
    END IF;
    RETURN coalesce(admitted, '{}');
END
$$;

-- When a rate window that holds back jobs of these queues opens next: their queues' own, or that
-- of a key with due jobs in them. NULL when no rate limit holds any back.
CREATE FUNCTION spool.rate_reopens(queues text[]) RETURNS timestamptz LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT least(
        (SELECT min(q.rate_tat - q.rate_interval * (q.rate_burst - 1) / q.rate_limit)
         FROM spool.queues q
         WHERE q.name = ANY(queues) AND q.rate_limit IS NOT NULL AND NOT q.paused
           AND q.rate_tat - q.rate_interval * (q.rate_burst - 1) / q.rate_limit > now()),
        (SELECT min(k.opens_at) FROM spool.rate_keys k
         WHERE k.opens_at > now() AND EXISTS (
             SELECT 1 FROM spool.jobs j
             WHERE j.rate_key = k.key AND j.state = 'pending'::spool.job_state AND j.queue = ANY(queues) AND j.run_at <= now())))
$$;

-- The claim, now with rate limits. A queue's candidates are at most what its bucket lets start,
-- and keys whose window is shut are skipped (they cannot crowd out claimable jobs); when a
-- candidate is rate-limited, spool.rate_admit decides under the buckets' locks. Candidates it
-- turns away (more of one key than its window lets start) leave slots unfilled: the claim then
-- looks again, up to 3 rounds, and the keys it just shut are skipped. A claim that leaves slots
-- unfilled while a rate limit holds jobs back returns, after its jobs, one row that is not a job
-- (its id is NULL): its run_at says when the window opens, and started_at is now, so that Lease
-- waiters wake then rather than at their next poll. Without rate limits the claim does what it
-- did, in one round, plus one look at spool.rate_keys when it comes back short.
CREATE OR REPLACE FUNCTION spool.claim_slots(queues text[], workers text[], leases interval[])
RETURNS SETOF spool.jobs LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    max_jobs integer := cardinality(workers);
    wanted integer;
    claimed integer := 0;
    free_ids bigint[];
    keyed_ids bigint[];
    buckets integer[];
    b integer;
    any_rated boolean;
    candidates integer;
    marker spool.jobs;
BEGIN
    IF max_jobs IS NULL OR max_jobs = 0 THEN
        RETURN;
    END IF;
    FOR round IN 1..3 LOOP
        wanted := max_jobs - claimed;
        WITH candidates AS (
            SELECT c.id, c.concurrency_key, c.bucket, c.priority, c.run_at, c.rated
            FROM (
                SELECT u.name, p.rate_limit IS NOT NULL AS limited,
                       CASE WHEN p.rate_limit IS NULL THEN wanted
                            ELSE least(wanted, spool.rate_room(p.rate_tat, p.rate_limit, p.rate_interval,
                                                               p.rate_burst, now()))
                       END AS room
                FROM unnest(queues) AS u(name)
                LEFT JOIN spool.queues p ON p.name = u.name
                WHERE p.paused IS NOT TRUE
            ) AS q
            CROSS JOIN LATERAL (
                SELECT j.id, j.concurrency_key, j.priority, j.run_at,
                       spool.concurrency_bucket(j.queue, j.concurrency_key, j.concurrency_global) AS bucket,
                       q.limited OR j.rate_key IS NOT NULL AS rated
                FROM spool.jobs j
                WHERE j.state = 'pending'::spool.job_state AND j.queue = q.name AND j.run_at <= now()
                  -- Skip keys already at their limit, so they cannot crowd out claimable jobs.
                  AND (j.concurrency_key IS NULL OR j.concurrency_limit > (
                      SELECT count(*) FROM spool.jobs r
                      WHERE r.state = 'running'::spool.job_state AND r.concurrency_key = j.concurrency_key
                        AND r.concurrency_global = j.concurrency_global
                        AND (j.concurrency_global OR r.queue = j.queue)))
                  -- And rate-limit keys whose window is shut, for the same reason.
                  AND (j.rate_key IS NULL OR NOT EXISTS (
                      SELECT 1 FROM spool.rate_keys w WHERE w.key = j.rate_key AND w.opens_at > now()))
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT q.room
                FOR UPDATE SKIP LOCKED
            ) AS c
            ORDER BY c.priority DESC, c.run_at, c.id
            LIMIT wanted
        )
        SELECT array_agg(id ORDER BY priority DESC, run_at, id) FILTER (WHERE concurrency_key IS NULL),
               array_agg(id) FILTER (WHERE concurrency_key IS NOT NULL),
               array_agg(DISTINCT bucket) FILTER (WHERE concurrency_key IS NOT NULL),
               bool_or(rated), count(*)
        INTO free_ids, keyed_ids, buckets, any_rated, candidates
        FROM candidates;

        IF buckets IS NOT NULL THEN
            -- Sorted (array_agg DISTINCT sorts), so two claimers never wait on each other in a cycle.
            FOREACH b IN ARRAY buckets LOOP
                PERFORM pg_advisory_xact_lock(1397772107, b);
            END LOOP;
            SELECT array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id) INTO free_ids
            FROM spool.jobs c
            WHERE c.id = ANY(coalesce(free_ids, '{}'::bigint[]) || ARRAY(
                SELECT ranked.id FROM (
                    SELECT r.id,
                           row_number() OVER (
                               PARTITION BY r.concurrency_global,
                                            CASE WHEN r.concurrency_global THEN NULL ELSE r.queue END,
                                            r.concurrency_key
                               ORDER BY r.priority DESC, r.run_at, r.id) AS rank,
                           r.concurrency_limit - (
                               SELECT count(*) FROM spool.jobs x
                               WHERE x.state = 'running'::spool.job_state
                                 AND x.concurrency_key = r.concurrency_key
                                 AND x.concurrency_global = r.concurrency_global
                                 AND (r.concurrency_global OR x.queue = r.queue)) AS room
                    FROM spool.jobs r
                    WHERE r.id = ANY(keyed_ids)
                ) AS ranked
                WHERE ranked.rank <= ranked.room));
        END IF;

        IF any_rated AND free_ids IS NOT NULL THEN
            free_ids := spool.rate_admit(free_ids);
        END IF;

        IF free_ids IS NOT NULL AND cardinality(free_ids) > 0 THEN
            RETURN QUERY
            UPDATE spool.jobs j SET
                state = 'running'::spool.job_state,
                attempt = j.attempt + 1,
                lease_token = nextval('spool.lease_token_seq'::regclass),
                worker_id = s.worker,
                started_at = now(),
                lease_expires_at = least(now() + coalesce(s.lease, j.lease_duration), now() + j.attempt_timeout),
                attempt_deadline = now() + j.attempt_timeout,
                updated_at = now()
            FROM unnest(free_ids) WITH ORDINALITY AS f(id, n)
            JOIN unnest(workers, leases) WITH ORDINALITY AS s(worker, lease, slot) ON s.slot = f.n + claimed
            WHERE j.id = f.id
            RETURNING j.*;
            claimed := claimed + cardinality(free_ids);
        END IF;
        -- Another round only when a rate limit turned candidates away and slots are left.
        EXIT WHEN NOT coalesce(any_rated, false) OR claimed >= max_jobs
            OR coalesce(cardinality(free_ids), 0) >= candidates;
    END LOOP;

    IF claimed < max_jobs THEN
        marker.run_at := spool.rate_reopens(queues);
        IF marker.run_at IS NOT NULL THEN
            marker.started_at := now();
            RETURN NEXT marker;
        END IF;
    END IF;
END
$$;

-- A claim for SQL callers: jobs only (no wake-up row).
CREATE OR REPLACE FUNCTION spool.claim(queues text[], max_jobs integer, lease interval, worker text)
RETURNS SETOF spool.jobs LANGUAGE sql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT * FROM spool.claim_slots(queues, array_fill(worker, ARRAY[max_jobs]::integer[]),
                                    array_fill(lease, ARRAY[max_jobs]::integer[]))
    WHERE id IS NOT NULL
$$;

-- Nobody but the owner runs these (see 0009).
REVOKE ALL ON FUNCTION
    spool.rate_room(timestamptz, integer, interval, integer, timestamptz),
    spool.throttled(text, text),
    spool.rate_admit(bigint[]),
    spool.rate_reopens(text[])
FROM PUBLIC;
