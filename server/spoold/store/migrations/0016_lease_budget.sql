-- Lease answers within a byte budget. A claim used to take up to max_jobs jobs whatever their size,
-- and an answer over the gRPC message limit then failed to send: every job in it was left RUNNING
-- under a lease nobody held, and went DEAD without ever being delivered. Now each Lease call (a
-- claim serves several at once) has a budget, and the claim stops giving a call jobs once the
-- next would take its answer past it: the job goes to the next call, or stays PENDING.

-- What a claimed job adds to a Lease answer, at most: its payload, headers, checkpoint, result
-- and last error as they are sent, and 1 KiB for the rest of its fields.
CREATE FUNCTION spool.answer_bytes(j spool.jobs) RETURNS bigint LANGUAGE sql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT 1024::bigint
        + coalesce(octet_length(j.payload_json::text), 0)::bigint
        + coalesce(octet_length(j.payload_bytes), 0)::bigint
        + coalesce(octet_length(j.headers::text), 0)::bigint
        + coalesce(octet_length(j.checkpoint), 0)::bigint
        + coalesce(octet_length(j.result), 0)::bigint
        + coalesce(octet_length(j.error_type), 0)::bigint
        + coalesce(octet_length(j.error_message), 0)::bigint
        + coalesce(octet_length(j.error_details), 0)::bigint
$$;

-- Hands the jobs (in claim order) to the slots from `from_slot` on: a call (its slots share a number
-- in `calls`) takes jobs while they fit its budget (`budgets`, by call number; NULL: no budget),
-- and its first job always. A job that does not fit moves on to the next call's slots; the first
-- that fits no call ends the claim. Returns (job id, slot) pairs in claim order.
CREATE FUNCTION spool.fit_slots(ids bigint[], from_slot integer, calls integer[], budgets bigint[],
                                INOUT used bigint[], OUT picked bigint[], OUT slots integer[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    n integer := from_slot;
    slot_count integer := cardinality(calls);
    k integer;
    jid bigint;
    size bigint;
BEGIN
    picked := '{}'::bigint[];
    slots := '{}'::integer[];
    FOR jid, size IN
        SELECT j.id, spool.answer_bytes(j) FROM unnest(ids) WITH ORDINALITY AS o(id, ord)
        JOIN spool.jobs j ON j.id = o.id ORDER BY o.ord
    LOOP
        LOOP
            EXIT WHEN n > slot_count;
            k := calls[n];
            EXIT WHEN budgets[k] IS NULL OR used[k] = 0 OR used[k] + size <= budgets[k];
            WHILE n <= slot_count AND calls[n] = k LOOP  -- this call is full: on to the next one's slots
                n := n + 1;
            END LOOP;
        END LOOP;
        EXIT WHEN n > slot_count;
        used[k] := used[k] + size;
        picked := picked || jid;
        slots := slots || n;
        n := n + 1;
    END LOOP;
END
$$;

-- spool.claim_slots with budgets: the slot of each job it claims comes with it (slots a budget
-- left unfilled are skipped), and the wake-up row (see 0015) has a NULL slot and job id.
CREATE FUNCTION spool.claim_within(queues text[], workers text[], leases interval[], calls integer[],
                                   budgets bigint[])
RETURNS TABLE (slot_no integer, claimed spool.jobs) LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    max_jobs integer := cardinality(workers);
    wanted integer;
    next_slot integer := 1;
    used bigint[] := array_fill(0::bigint, ARRAY[greatest(cardinality(budgets), 1)]::integer[]);
    free_ids bigint[];
    keyed_ids bigint[];
    buckets integer[];
    b integer;
    any_rated boolean;
    candidates integer;
    fitted integer;
    picked bigint[];
    picked_slots integer[];
    marker spool.jobs;
BEGIN
    IF max_jobs IS NULL OR max_jobs = 0 THEN
        RETURN;
    END IF;
    FOR round IN 1..3 LOOP
        wanted := max_jobs - next_slot + 1;
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

        -- The budgets after the rate limits, so that the slots stay in order: a job admitted and
        -- then left out for its size has spent its rate token (the limit runs short, never over).
        SELECT f.used, f.picked, f.slots INTO used, picked, picked_slots
        FROM spool.fit_slots(coalesce(free_ids, '{}'::bigint[]), next_slot, calls, budgets, used) AS f;
        fitted := cardinality(picked);
        IF fitted > 0 THEN
            next_slot := picked_slots[fitted] + 1;
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
            FROM unnest(picked, picked_slots) AS f(id, slot)
            JOIN unnest(workers, leases) WITH ORDINALITY AS s(worker, lease, n) ON s.n = f.slot
            WHERE j.id = f.id
            RETURNING f.slot, j;
        END IF;
        -- Another round only when a rate limit turned candidates away and slots are left; never
        -- when a budget ended the claim.
        EXIT WHEN NOT coalesce(any_rated, false) OR next_slot > max_jobs
            OR fitted < coalesce(cardinality(free_ids), 0) OR fitted >= candidates;
    END LOOP;

    IF next_slot <= max_jobs THEN
        marker.run_at := spool.rate_reopens(queues);
        IF marker.run_at IS NOT NULL THEN
            marker.started_at := now();
            slot_no := NULL;
            claimed := marker;
            RETURN NEXT;
        END IF;
    END IF;
END
$$;

-- The unbudgeted forms keep their signatures and answers (SQL callers, benchmarks).
CREATE OR REPLACE FUNCTION spool.claim_slots(queues text[], workers text[], leases interval[])
RETURNS SETOF spool.jobs LANGUAGE sql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT (c.claimed).* FROM spool.claim_within(queues, workers, leases,
        array_fill(1, ARRAY[cardinality(workers)]::integer[]), ARRAY[NULL]::bigint[]) AS c
    ORDER BY c.slot_no
$$;

REVOKE ALL ON FUNCTION
    spool.answer_bytes(spool.jobs),
    spool.fit_slots(bigint[], integer, integer[], bigint[], bigint[]),
    spool.claim_within(text[], text[], interval[], integer[], bigint[])
FROM PUBLIC;
