-- spool.claim_slots claims for several Lease calls in one statement: one slot per job wanted, each
-- slot naming the worker and lease it is for. spoold gathers the Lease calls that arrive while a
-- claim on the same queues is running into the next claim, so a busy server runs one claim (and
-- one commit) for many callers. Jobs go to slots in claim order (priority, run_at, id): slot 1 gets
-- the first job. spool.claim is now the one-worker case of it.
CREATE OR REPLACE FUNCTION spool.claim_slots(queues text[], workers text[], leases interval[])
RETURNS SETOF spool.jobs LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    max_jobs integer := cardinality(workers);
    free_ids bigint[];
    keyed_ids bigint[];
    keys text[];
    k text;
BEGIN
    IF max_jobs IS NULL OR max_jobs = 0 THEN
        RETURN;
    END IF;
    WITH candidates AS (
        SELECT c.id, c.concurrency_key, c.priority, c.run_at
        FROM (
            SELECT u.name FROM unnest(queues) AS u(name)
            WHERE NOT EXISTS (SELECT 1 FROM spool.queues p WHERE p.name = u.name AND p.paused)
        ) AS q
        CROSS JOIN LATERAL (
            SELECT j.id, j.concurrency_key, j.priority, j.run_at
            FROM spool.jobs j
            WHERE j.state = 'pending' AND j.queue = q.name AND j.run_at <= now()
              -- Skip keys already at their limit, so they cannot crowd out claimable jobs.
              AND (j.concurrency_key IS NULL OR j.concurrency_limit > (
                  SELECT count(*) FROM spool.jobs r
                  WHERE r.state = 'running' AND r.concurrency_key = j.concurrency_key))
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED
        ) AS c
        ORDER BY c.priority DESC, c.run_at, c.id
        LIMIT max_jobs
    )
    SELECT array_agg(id ORDER BY priority DESC, run_at, id) FILTER (WHERE concurrency_key IS NULL),
           array_agg(id) FILTER (WHERE concurrency_key IS NOT NULL),
           array_agg(DISTINCT concurrency_key) FILTER (WHERE concurrency_key IS NOT NULL)
    INTO free_ids, keyed_ids, keys
    FROM candidates;

    IF keys IS NOT NULL THEN
        -- Sorted (array_agg DISTINCT sorts), so two claimers never wait on each other in a cycle.
        FOREACH k IN ARRAY keys LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended('spool.concurrency:' || k, 0));
        END LOOP;
        SELECT array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id) INTO free_ids
        FROM spool.jobs c
        WHERE c.id = ANY(coalesce(free_ids, '{}') || ARRAY(
            SELECT ranked.id FROM (
                SELECT r.id,
                       row_number() OVER (PARTITION BY r.concurrency_key
                                          ORDER BY r.priority DESC, r.run_at, r.id) AS rank,
                       r.concurrency_limit - (
                           SELECT count(*) FROM spool.jobs x
                           WHERE x.state = 'running' AND x.concurrency_key = r.concurrency_key) AS room
                FROM spool.jobs r
                WHERE r.id = ANY(keyed_ids)
            ) AS ranked
            WHERE ranked.rank <= ranked.room));
    END IF;

    IF free_ids IS NULL OR cardinality(free_ids) = 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE spool.jobs j SET
        state = 'running',
        attempt = j.attempt + 1,
        lease_token = nextval('spool.lease_token_seq'),
        worker_id = s.worker,
        started_at = now(),
        lease_expires_at = least(now() + coalesce(s.lease, j.lease_duration), now() + j.attempt_timeout),
        attempt_deadline = now() + j.attempt_timeout,
        updated_at = now()
    FROM unnest(free_ids) WITH ORDINALITY AS f(id, slot)
    JOIN unnest(workers, leases) WITH ORDINALITY AS s(worker, lease, slot) USING (slot)
    WHERE j.id = f.id
    RETURNING j.*;
END
$$;

CREATE OR REPLACE FUNCTION spool.claim(queues text[], max_jobs integer, lease interval, worker text)
RETURNS SETOF spool.jobs LANGUAGE sql VOLATILE AS $$
    SELECT * FROM spool.claim_slots(queues, array_fill(worker, ARRAY[max_jobs]),
                                    array_fill(lease, ARRAY[max_jobs]))
$$;
