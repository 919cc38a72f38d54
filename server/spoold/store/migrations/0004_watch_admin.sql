-- Watchers across replicas, paused queues, and per-queue defaults in the transactional enqueue.

-- The jobs some spoold process is watching. Updates of a watched job NOTIFY 'spool_job' with its id;
-- unwatched jobs (nearly all) skip NOTIFY, whose commit-time queue lock serialises notifying
-- transactions. UNLOGGED: rows are ephemeral, rewritten by each server's keep-alive (so a crash
-- that empties the table costs watchers one poll interval), and cheap to write on every watch.
CREATE UNLOGGED TABLE spool.watched (
    job_id     bigint NOT NULL,
    server_id  uuid NOT NULL,
    -- A server that dies leaves rows behind; any live server deletes them once expired.
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, server_id)
);

CREATE FUNCTION spool.notify_watchers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One join per statement, not a probe per row: a batch of 1,000 acks costs one hash join,
    -- and with nobody watching, one look at an empty table. Duplicates in a transaction are sent once.
    PERFORM pg_notify('spool_job', c.id::text)
    FROM changed c
    WHERE EXISTS (SELECT 1 FROM spool.watched w WHERE w.job_id = c.id);
    RETURN NULL;
END
$$;

-- A trigger, not pg_notify in each query: every path that changes a job (the server's queries,
-- spool.claim, an operator's UPDATE) reaches watchers. Inserts need none: a job is watched by id,
-- so it exists before anyone watches it.
CREATE TRIGGER jobs_notify_watchers AFTER UPDATE ON spool.jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spool.notify_watchers();

-- Transactional enqueue, now taking the queue's defaults (then the server's) for what it leaves unset.
CREATE OR REPLACE FUNCTION spool.enqueue(
    queue text,
    payload jsonb,
    run_at timestamptz DEFAULT now(),
    priority smallint DEFAULT 0,
    max_attempts integer DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    headers jsonb DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO spool.jobs AS j (queue, payload_json, content_type, headers, priority, run_at,
        max_attempts, backoff_kind, backoff_initial, backoff_max, backoff_multiplier,
        backoff_jitter, lease_duration, attempt_timeout, idempotency_key)
    SELECT enqueue.queue, enqueue.payload, 'application/json', enqueue.headers, enqueue.priority,
        coalesce(enqueue.run_at, now()), coalesce(enqueue.max_attempts, q.max_attempts, 1),
        coalesce(q.backoff_kind, 'exponential'), b.initial,
        greatest(coalesce(q.backoff_max, interval '5 minutes'), b.initial),
        coalesce(q.backoff_multiplier, 2), coalesce(q.backoff_jitter, true),
        coalesce(q.lease_duration, interval '30 seconds'), q.attempt_timeout,
        enqueue.idempotency_key
    FROM (SELECT 1) AS one
    LEFT JOIN spool.queues q ON q.name = enqueue.queue
    CROSS JOIN LATERAL (SELECT coalesce(q.backoff_initial, interval '1 second') AS initial) AS b
    ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING j.id INTO new_id;
    IF new_id IS NULL THEN
        SELECT j.id INTO new_id FROM spool.jobs j
        WHERE j.queue = enqueue.queue AND j.idempotency_key = enqueue.idempotency_key;
    ELSE
        PERFORM pg_notify('spool_ready', enqueue.queue);
    END IF;
    RETURN new_id;
END
$$;

-- As in 0001, except that paused queues are skipped: one primary-key probe per requested queue,
-- so the claim stays a single statement and unpaused queues pay next to nothing.
CREATE OR REPLACE FUNCTION spool.claim(queues text[], max_jobs integer, lease interval, worker text)
RETURNS SETOF spool.jobs LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    free_ids bigint[];
    keyed_ids bigint[];
    keys text[];
    k text;
BEGIN
    WITH candidates AS (
        SELECT c.id, c.concurrency_key
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
    SELECT array_agg(id) FILTER (WHERE concurrency_key IS NULL),
           array_agg(id) FILTER (WHERE concurrency_key IS NOT NULL),
           array_agg(DISTINCT concurrency_key) FILTER (WHERE concurrency_key IS NOT NULL)
    INTO free_ids, keyed_ids, keys
    FROM candidates;

    IF keys IS NOT NULL THEN
        -- Sorted (array_agg DISTINCT sorts), so two claimers never wait on each other in a cycle.
        FOREACH k IN ARRAY keys LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended('spool.concurrency:' || k, 0));
        END LOOP;
        SELECT coalesce(free_ids, '{}') || coalesce(array_agg(ranked.id), '{}') INTO free_ids
        FROM (
            SELECT j.id,
                   row_number() OVER (PARTITION BY j.concurrency_key
                                      ORDER BY j.priority DESC, j.run_at, j.id) AS rank,
                   j.concurrency_limit - (
                       SELECT count(*) FROM spool.jobs r
                       WHERE r.state = 'running' AND r.concurrency_key = j.concurrency_key) AS room
            FROM spool.jobs j
            WHERE j.id = ANY(keyed_ids)
        ) AS ranked
        WHERE ranked.rank <= ranked.room;
    END IF;

    IF free_ids IS NULL OR cardinality(free_ids) = 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE spool.jobs j SET
        state = 'running',
        attempt = j.attempt + 1,
        lease_token = nextval('spool.lease_token_seq'),
        worker_id = worker,
        started_at = now(),
        lease_expires_at = least(now() + coalesce(lease, j.lease_duration), now() + j.attempt_timeout),
        attempt_deadline = now() + j.attempt_timeout,
        updated_at = now()
    WHERE j.id = ANY(free_ids)
    RETURNING j.*;
END
$$;
