-- Spool schema: jobs, their attempts, and the functions shared by the server and by SQL callers.

CREATE SCHEMA IF NOT EXISTS spool;

CREATE TYPE spool.job_state AS ENUM ('pending', 'running', 'succeeded', 'dead', 'cancelled');
CREATE TYPE spool.attempt_outcome AS ENUM ('succeeded', 'failed', 'lease_expired', 'timed_out', 'cancelled');
CREATE TYPE spool.backoff_kind AS ENUM ('exponential', 'linear', 'fixed');

-- Every claim draws the next value: a lease token is never reused, whatever Requeue does to attempts.
CREATE SEQUENCE spool.lease_token_seq AS bigint;

CREATE TABLE spool.jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue               text NOT NULL,
    state               spool.job_state NOT NULL DEFAULT 'pending',
    -- JSON payloads live in payload_json (searchable), anything else in payload_bytes.
    payload_json        jsonb,
    payload_bytes       bytea,
    content_type        text NOT NULL,
    headers             jsonb,
    priority            smallint NOT NULL DEFAULT 0,
    run_at              timestamptz NOT NULL DEFAULT now(),
    attempt             integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    backoff_kind        spool.backoff_kind NOT NULL,
    backoff_initial     interval NOT NULL,
    backoff_max         interval NOT NULL,
    backoff_multiplier  double precision NOT NULL,
    backoff_jitter      boolean NOT NULL,
    lease_duration      interval NOT NULL,
    attempt_timeout     interval,
    idempotency_key     text,
    concurrency_key     text,
    concurrency_limit   integer,
    result              bytea,
    result_content_type text,
    error_type          text,
    error_message       text,
    error_details       text,
    checkpoint          bytea,
    cancel_requested    boolean NOT NULL DEFAULT false,
    -- The latest claim: its token and worker stay after it ends; the deadlines only while RUNNING.
    lease_token         bigint,
    worker_id           text,
    started_at          timestamptz,
    lease_expires_at    timestamptz,
    attempt_deadline    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,

    CONSTRAINT jobs_queue_length CHECK (char_length(queue) BETWEEN 1 AND 128),
    CONSTRAINT jobs_one_payload CHECK (payload_json IS NULL OR payload_bytes IS NULL),
    CONSTRAINT jobs_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    CONSTRAINT jobs_attempt_range CHECK (attempt >= 0),
    CONSTRAINT jobs_backoff_positive CHECK (
        backoff_initial > interval '0' AND backoff_max >= backoff_initial AND backoff_multiplier >= 1),
    CONSTRAINT jobs_lease_positive CHECK (lease_duration > interval '0'),
    CONSTRAINT jobs_timeout_positive CHECK (attempt_timeout IS NULL OR attempt_timeout > interval '0'),
    CONSTRAINT jobs_concurrency_pair CHECK (
        (concurrency_key IS NULL AND concurrency_limit IS NULL)
        OR (concurrency_key IS NOT NULL AND concurrency_limit >= 1)),
    CONSTRAINT jobs_lease_iff_running CHECK (
        (state = 'running') = (lease_expires_at IS NOT NULL)
        AND (state <> 'running' OR (lease_token IS NOT NULL AND started_at IS NOT NULL))
        AND (attempt_deadline IS NULL OR state = 'running')),
    CONSTRAINT jobs_lease_within_deadline CHECK (lease_expires_at <= attempt_deadline),
    CONSTRAINT jobs_finished_iff_terminal CHECK (
        (state IN ('succeeded', 'dead', 'cancelled')) = (finished_at IS NOT NULL))
) WITH (
    -- Jobs are updated several times in a short life; room on the page keeps heartbeats HOT.
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- The claim path: only ready-to-run rows, in claim order, so its size follows the backlog, not history.
CREATE INDEX jobs_pending_idx ON spool.jobs (queue, priority DESC, run_at, id) WHERE state = 'pending';
-- The reaper and per-key concurrency counts look only at running rows.
CREATE INDEX jobs_running_idx ON spool.jobs (concurrency_key) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_idempotency_idx ON spool.jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One row per finished attempt; the running attempt lives on the job row until it ends.
CREATE TABLE spool.attempts (
    job_id        bigint NOT NULL REFERENCES spool.jobs (id) ON DELETE CASCADE,
    lease_token   bigint NOT NULL,
    number        integer NOT NULL,
    worker_id     text,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    outcome       spool.attempt_outcome NOT NULL,
    error_type    text,
    error_message text,
    error_details text,
    PRIMARY KEY (job_id, lease_token)
);

-- Delay before the next attempt: the job's policy applied to the attempt that just failed.
CREATE FUNCTION spool.backoff_delay(
    kind spool.backoff_kind, initial interval, max_delay interval, multiplier double precision,
    jitter boolean, attempt integer
) RETURNS interval LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN jitter THEN d * (0.5 + random() / 2) ELSE d END
    FROM (SELECT least(max_delay, CASE kind
        WHEN 'fixed' THEN initial
        WHEN 'linear' THEN initial * greatest(attempt, 1)
        -- Cap the exponent: 2^100 seconds overflows an interval long before the cap applies.
        ELSE initial * power(multiplier, least(greatest(attempt - 1, 0), 60))
    END) AS d) AS capped
$$;

-- The state a RUNNING job takes when its attempt fails, whoever noticed the failure.
CREATE FUNCTION spool.state_after_failure(
    cancel_requested boolean, retryable boolean, attempt integer, max_attempts integer
) RETURNS spool.job_state LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN cancel_requested THEN 'cancelled'
        WHEN NOT retryable OR attempt >= max_attempts THEN 'dead'
        ELSE 'pending'
    END::spool.job_state
$$;

-- Enqueue inside the caller's own transaction: the job exists if and only if that transaction commits.
CREATE FUNCTION spool.enqueue(
    queue text,
    payload jsonb,
    run_at timestamptz DEFAULT now(),
    priority smallint DEFAULT 0,
    max_attempts integer DEFAULT 1,
    idempotency_key text DEFAULT NULL,
    headers jsonb DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO spool.jobs AS j (queue, payload_json, content_type, headers, priority, run_at,
        max_attempts, backoff_kind, backoff_initial, backoff_max, backoff_multiplier,
        backoff_jitter, lease_duration, idempotency_key)
    VALUES (enqueue.queue, enqueue.payload, 'application/json', enqueue.headers, enqueue.priority,
        coalesce(enqueue.run_at, now()), enqueue.max_attempts, 'exponential', interval '1 second',
        interval '5 minutes', 2, true, interval '30 seconds', enqueue.idempotency_key)
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

-- Claim up to max_jobs ready jobs from the given queues, honouring per-key concurrency limits.
-- Jobs without a concurrency key are claimed with SKIP LOCKED alone. Jobs with one are admitted
-- under a per-key advisory lock, counting running jobs in a fresh snapshot taken after the lock,
-- so concurrent claims can never push a key over its limit.
CREATE FUNCTION spool.claim(queues text[], max_jobs integer, lease interval, worker text)
RETURNS SETOF spool.jobs LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    free_ids bigint[];
    keyed_ids bigint[];
    keys text[];
    k text;
BEGIN
    WITH candidates AS (
        SELECT c.id, c.concurrency_key
        FROM unnest(queues) AS q(name)
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
