-- name: insert_jobs
-- Inserts jobs in input order, skipping those whose idempotency key is taken (their ord is absent
-- from the result), and wakes lease waiters for the queues that got a job ready now. What a job
-- leaves NULL takes its queue's default, else the server's ($24..$30); the backoff field by field.
-- Pipeline steps ($31 their pipeline) carry a step name ($32), their parents ($33: positive = the
-- ord of a job of this insert, negative = minus the id of a job that exists) and how many of those
-- have not succeeded ($34): a step with any is WAITING. Plain jobs pass empty arrays for $32..$34.
WITH input AS (
    SELECT i.*, s.step_name, s.parent_refs, s.waits, nextval('spool.jobs_id_seq') AS new_id
    FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::smallint[],
        $7::timestamptz[], $8::integer[], $9::spool.backoff_kind[], $10::interval[],
        $11::interval[], $12::double precision[], $13::boolean[], $14::interval[],
        $15::interval[], $16::text[], $17::text[], $18::integer[], $19::boolean[], $20::text[],
        $21::integer[], $22::interval[], $23::integer[])
        WITH ORDINALITY AS i(queue, payload_json, payload_bytes, content_type, headers, priority,
            run_at, max_attempts, backoff_kind, backoff_initial, backoff_max, backoff_multiplier,
            backoff_jitter, lease_duration, attempt_timeout, idempotency_key, concurrency_key,
            concurrency_limit, concurrency_global, rate_key, rate_limit, rate_interval, rate_burst, ord)
    LEFT JOIN unnest($32::text[], $33::text[], $34::integer[]) WITH ORDINALITY
        AS s(step_name, parent_refs, waits, ord) ON s.ord = i.ord
), inserted AS (
    INSERT INTO spool.jobs (id, queue, payload_json, payload_bytes, content_type, headers,
        priority, run_at, max_attempts, backoff_kind, backoff_initial, backoff_max,
        backoff_multiplier, backoff_jitter, lease_duration, attempt_timeout, idempotency_key,
        concurrency_key, concurrency_limit, concurrency_global, rate_key, rate_limit, rate_interval,
        rate_burst, state, pipeline_id, step_name, parent_ids, waiting_on)
    OVERRIDING SYSTEM VALUE
    SELECT i.new_id, i.queue, i.payload_json::jsonb, i.payload_bytes, i.content_type,
        i.headers::jsonb, i.priority, coalesce(i.run_at, now()),
        coalesce(i.max_attempts, q.max_attempts, $24::integer),
        coalesce(i.backoff_kind, q.backoff_kind, $25::spool.backoff_kind), b.initial,
        -- An inherited cap never undercuts the initial delay it applies to.
        coalesce(i.backoff_max, greatest(coalesce(q.backoff_max, $27::interval), b.initial)),
        coalesce(i.backoff_multiplier, q.backoff_multiplier, $28::double precision),
        coalesce(i.backoff_jitter, q.backoff_jitter, $29::boolean),
        coalesce(i.lease_duration, q.lease_duration, $30::interval),
        coalesce(i.attempt_timeout, q.attempt_timeout),
        i.idempotency_key, i.concurrency_key, i.concurrency_limit, i.concurrency_global,
        i.rate_key, i.rate_limit, i.rate_interval, i.rate_burst,
        CASE WHEN coalesce(i.waits, 0) > 0 THEN 'waiting' ELSE 'pending' END::spool.job_state,
        CASE WHEN i.step_name IS NOT NULL THEN $31::bigint END, i.step_name,
        CASE WHEN i.parent_refs IS NOT NULL THEN ARRAY(
            SELECT CASE WHEN r > 0 THEN (SELECT p.new_id FROM input p WHERE p.ord = r) ELSE -r END
            FROM unnest(i.parent_refs::bigint[]) AS r) END,
        coalesce(i.waits, 0)
    FROM input i
    LEFT JOIN spool.queues q ON q.name = i.queue
    CROSS JOIN LATERAL (
        SELECT coalesce(i.backoff_initial, q.backoff_initial, $26::interval) AS initial
    ) AS b
    ORDER BY i.ord
    ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), woken AS (
    SELECT DISTINCT queue FROM inserted WHERE run_at <= now() AND state = 'pending'
)
SELECT input.ord, inserted.*,
       (SELECT count(pg_notify('spool_ready', woken.queue)::text) FROM woken) AS notified
FROM input JOIN inserted ON inserted.id = input.new_id
ORDER BY input.ord

-- name: get_job_by_idempotency_key
SELECT * FROM spool.jobs WHERE queue = $1 AND idempotency_key = $2

-- name: get_job
SELECT * FROM spool.jobs WHERE id = $1

-- name: lease_states
-- What a refused Ack, Nack or Heartbeat is told: whose lease the job is under now, and its state.
SELECT id, state, lease_token, lease_expires_at FROM spool.jobs WHERE id = ANY($1::bigint[])

-- name: get_attempts
-- The latest $3 attempts older than lease token $2, newest first.
SELECT * FROM spool.attempts WHERE job_id = $1 AND lease_token < $2 ORDER BY lease_token DESC LIMIT $3

-- name: count_attempts
SELECT count(*) FROM spool.attempts WHERE job_id = $1

-- name: claim_slots
SELECT * FROM spool.claim_slots($1::text[], $2::text[], $3::interval[])

-- name: claim_within
-- The claim with each call's byte budget: $4 numbers each slot's call, $5 is each call's budget.
SELECT c.slot_no, (c.claimed).*
FROM spool.claim_within($1::text[], $2::text[], $3::interval[], $4::integer[], $5::bigint[]) AS c

-- name: heartbeat
-- A held lease is found by id and token alone. Its job is RUNNING exactly while lease_expires_at
-- is set (the jobs_lease_iff_running constraint), so these statements test that column and never
-- state = 'running': with that test the planner may pick the partial jobs_running_idx and read
-- every running job's entry for each id (it does so whenever the statistics last saw no job
-- running), where the primary key finds each row directly.
UPDATE spool.jobs SET
    lease_expires_at = least(now() + coalesce($3, lease_granted, lease_duration), attempt_deadline),
    checkpoint = CASE WHEN $4 THEN $5 ELSE checkpoint END,
    updated_at = now()
WHERE id = $1 AND lease_token = $2 AND lease_expires_at > now()
RETURNING id, lease_expires_at, cancel_requested

-- name: heartbeat_many
-- Rows are locked in id order before they are updated (as in ack_many): a worker's HeartbeatBatch
-- and AckBatch racing over the same jobs in different orders then queue up instead of deadlocking.
WITH locked AS (
    SELECT id FROM spool.jobs WHERE id = ANY($1::bigint[]) AND lease_expires_at IS NOT NULL ORDER BY id FOR UPDATE
)
UPDATE spool.jobs j SET
    lease_expires_at = least(now() + coalesce(h.lease, j.lease_granted, j.lease_duration), j.attempt_deadline),
    checkpoint = CASE WHEN h.has_checkpoint THEN h.checkpoint ELSE j.checkpoint END,
    updated_at = now()
FROM unnest($1::bigint[], $2::bigint[], $3::interval[], $4::boolean[], $5::bytea[])
    AS h(id, token, lease, has_checkpoint, checkpoint)
JOIN locked ON locked.id = h.id
WHERE j.id = h.id AND j.lease_token = h.token AND j.lease_expires_at > now()
RETURNING j.id, j.lease_token, j.lease_expires_at, j.cancel_requested

-- name: ack_many
-- Finishes the held leases successfully and records their attempts. Rows are locked in id order
-- first, so batches over the same jobs in different orders cannot deadlock (see heartbeat_many).
WITH locked AS (
    SELECT id FROM spool.jobs WHERE id = ANY($1::bigint[]) AND lease_expires_at IS NOT NULL ORDER BY id FOR UPDATE
), done AS (
    UPDATE spool.jobs j SET
        state = 'succeeded',
        result = a.result,
        result_content_type = a.result_content_type,
        -- A success leaves no last error; the attempts keep the earlier ones.
        error_type = NULL,
        error_message = NULL,
        error_details = NULL,
        lease_expires_at = NULL,
        attempt_deadline = NULL,
        finished_at = now(),
        updated_at = now()
    FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[])
        AS a(id, token, result, result_content_type)
    JOIN locked ON locked.id = a.id
    WHERE j.id = a.id AND j.lease_token = a.token AND j.lease_expires_at > now()
    RETURNING j.*
), recorded AS (
    INSERT INTO spool.attempts (job_id, lease_token, number, worker_id, started_at, finished_at,
        outcome, requeues)
    SELECT id, lease_token, attempt, worker_id, started_at, finished_at, 'succeeded', requeues FROM done
)
SELECT * FROM done

-- name: ack_many_ids
-- ack_many for callers that need only which jobs were finished (AckBatch): the same update and
-- attempts, returning ids, so the finished rows are neither sent back nor decoded.
WITH locked AS (
    SELECT id FROM spool.jobs WHERE id = ANY($1::bigint[]) AND lease_expires_at IS NOT NULL ORDER BY id FOR UPDATE
), done AS (
    UPDATE spool.jobs j SET
        state = 'succeeded',
        result = a.result,
        result_content_type = a.result_content_type,
        -- A success leaves no last error; the attempts keep the earlier ones.
        error_type = NULL,
        error_message = NULL,
        error_details = NULL,
        lease_expires_at = NULL,
        attempt_deadline = NULL,
        finished_at = now(),
        updated_at = now()
    FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[])
        AS a(id, token, result, result_content_type)
    JOIN locked ON locked.id = a.id
    WHERE j.id = a.id AND j.lease_token = a.token AND j.lease_expires_at > now()
    RETURNING j.id, j.lease_token, j.attempt, j.worker_id, j.started_at, j.finished_at, j.requeues, j.queue
), recorded AS (
    INSERT INTO spool.attempts (job_id, lease_token, number, worker_id, started_at, finished_at,
        outcome, requeues)
    SELECT id, lease_token, attempt, worker_id, started_at, finished_at, 'succeeded', requeues FROM done
)
-- queue and took (the attempt's seconds) feed the metrics (spoold/metrics/jobs.py).
SELECT id, lease_token, queue, extract(epoch FROM finished_at - started_at)::float8 AS took FROM done

-- name: nack
-- Ends the held lease with an error: back to PENDING after a backoff, or DEAD, or CANCELLED.
-- With release ($10) the job is handed back unfinished: PENDING at once (or after retry_after),
-- its attempt recorded as released and not counted, the last error kept unless a new one is
-- given. A requested cancel still ends the job CANCELLED. A job released $11 times since it was
-- last (re)queued has had its free releases: the next counts as a failed attempt (error
-- ReleaseLimit unless one is given), so that its history stays bounded.
WITH decided AS (
    SELECT j.id, j.attempt AS number, r.free AS released, $10 AND NOT r.free AND NOT j.cancel_requested AS over,
           CASE WHEN r.free THEN 'pending'::spool.job_state
                ELSE spool.state_after_failure(j.cancel_requested, $3, j.attempt, j.max_attempts)
           END AS next
    FROM spool.jobs j
    CROSS JOIN LATERAL (
        SELECT $10 AND NOT j.cancel_requested AND (
            SELECT count(*) FROM spool.attempts a
            WHERE a.job_id = j.id AND a.requeues = j.requeues AND a.outcome = 'released'::spool.attempt_outcome
        ) < $11::integer AS free
    ) AS r
    WHERE j.id = $1 AND j.lease_token = $2 AND j.lease_expires_at > now()
    FOR UPDATE OF j
), done AS (
    UPDATE spool.jobs j SET
        state = d.next,
        attempt = CASE WHEN d.released THEN j.attempt - 1 ELSE j.attempt END,
        run_at = CASE
            WHEN d.released THEN now() + coalesce($4, interval '0')
            WHEN d.next = 'pending'
            THEN now() + coalesce($4, spool.backoff_delay(j.backoff_kind, j.backoff_initial,
                j.backoff_max, j.backoff_multiplier, j.backoff_jitter, j.attempt))
            ELSE j.run_at END,
        error_type = CASE WHEN d.released AND coalesce($5, $6, $7) IS NULL THEN j.error_type
            WHEN d.over AND coalesce($5, $6, $7) IS NULL THEN 'ReleaseLimit' ELSE $5 END,
        error_message = CASE WHEN d.released AND coalesce($5, $6, $7) IS NULL THEN j.error_message
            WHEN d.over AND coalesce($5, $6, $7) IS NULL
            THEN 'released ' || $11::integer::text || ' times: this release counts as an attempt' ELSE $6 END,
        error_details = CASE WHEN d.released AND coalesce($5, $6, $7) IS NULL
            THEN j.error_details ELSE $7 END,
        checkpoint = CASE WHEN $8 THEN $9 ELSE j.checkpoint END,
        lease_expires_at = NULL,
        attempt_deadline = NULL,
        finished_at = CASE WHEN d.next = 'pending' THEN NULL ELSE now() END,
        updated_at = now()
    FROM decided d
    WHERE j.id = d.id
    RETURNING j.*
), recorded AS (
    -- The attempt as it ran (its number before a release gave it back), with the error given.
    INSERT INTO spool.attempts (job_id, lease_token, number, worker_id, started_at, finished_at,
        outcome, error_type, error_message, error_details, requeues)
    SELECT done.id, done.lease_token, d.number, done.worker_id, done.started_at, now(),
           CASE WHEN done.state = 'cancelled' THEN 'cancelled'
                WHEN d.released THEN 'released'
                ELSE 'failed' END::spool.attempt_outcome,
           CASE WHEN d.over THEN done.error_type ELSE $5 END,
           CASE WHEN d.over THEN done.error_message ELSE $6 END, $7, done.requeues
    FROM done JOIN decided d ON d.id = done.id
)
-- A job ready again now wakes the Lease waiters, as a new one does.
SELECT done.*, CASE WHEN done.state = 'pending' AND done.run_at <= now()
    THEN pg_notify('spool_ready', done.queue)::text END AS notified
FROM done

-- name: reap_expired
-- Ends attempts whose lease ran out or whose attempt timed out; safe in any number of processes.
WITH expired AS (
    SELECT id, lease_expires_at >= attempt_deadline AS timed_out
    FROM spool.jobs
    WHERE state = 'running' AND lease_expires_at <= now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE spool.jobs j SET
        state = spool.state_after_failure(j.cancel_requested, true, j.attempt, j.max_attempts),
        run_at = now() + spool.backoff_delay(j.backoff_kind, j.backoff_initial, j.backoff_max,
            j.backoff_multiplier, j.backoff_jitter, j.attempt),
        error_type = CASE WHEN e.timed_out THEN 'AttemptTimedOut' ELSE 'LeaseExpired' END,
        error_message = CASE WHEN e.timed_out
            THEN 'attempt ran past its timeout of ' || j.attempt_timeout::text
            ELSE 'lease expired without a heartbeat, ack or nack' END,
        error_details = NULL,
        lease_expires_at = NULL,
        attempt_deadline = NULL,
        finished_at = CASE WHEN spool.state_after_failure(j.cancel_requested, true, j.attempt,
            j.max_attempts) = 'pending' THEN NULL ELSE now() END,
        updated_at = now()
    FROM expired e
    WHERE j.id = e.id
    RETURNING j.*, e.timed_out
), recorded AS (
    INSERT INTO spool.attempts (job_id, lease_token, number, worker_id, started_at, finished_at,
        outcome, error_type, error_message, requeues)
    SELECT id, lease_token, attempt, worker_id, started_at, now(),
           CASE WHEN state = 'cancelled' THEN 'cancelled'
                WHEN timed_out THEN 'timed_out'
                ELSE 'lease_expired' END::spool.attempt_outcome,
           error_type, error_message, requeues
    FROM done
)
-- queue, timed_out and took (the attempt's seconds) feed the metrics (spoold/metrics/jobs.py).
SELECT id, state, queue, timed_out, extract(epoch FROM now() - started_at)::float8 AS took FROM done

-- name: cancel_job
-- PENDING ends CANCELLED at once; RUNNING is flagged for its worker's next heartbeat, and its
-- worker's WatchCancels streams are told at once ('spool_cancel': {"job", "queue", "worker"}).
WITH cancelled AS (
    UPDATE spool.jobs SET
        state = CASE WHEN state = 'pending' THEN 'cancelled'::spool.job_state ELSE state END,
        cancel_requested = true,
        finished_at = CASE WHEN state = 'pending' THEN now() ELSE finished_at END,
        updated_at = now()
    WHERE id = $1 AND state IN ('pending', 'running')
    RETURNING *
)
SELECT cancelled.*,
       CASE WHEN state = 'running' AND worker_id IS NOT NULL
            THEN pg_notify('spool_cancel', json_build_object('job', id::text, 'queue', queue, 'worker', worker_id)::text)::text
       END AS notified
FROM cancelled

-- name: requeue_jobs
-- A fresh attempt budget, ready now, for finished jobs in an allowed state.
WITH requeued AS (
    UPDATE spool.jobs SET
        -- A step with parents still unfinished waits for them again, as does one of a paused pipeline.
        state = CASE WHEN waiting_on > 0
            OR EXISTS (SELECT 1 FROM spool.pipelines p WHERE p.id = pipeline_id AND p.paused)
            THEN 'waiting' ELSE 'pending' END::spool.job_state,
        attempt = 0,
        requeues = requeues + 1,
        run_at = now(),
        cancel_requested = false,
        finished_at = NULL,
        updated_at = now()
    WHERE id = ANY($1::bigint[]) AND state = ANY($2::spool.job_state[])
      -- A pipeline step that succeeded never runs again (docs/pipelines.md).
      AND (state <> 'succeeded' OR pipeline_id IS NULL)
    RETURNING *
)
SELECT requeued.*, pg_notify('spool_ready', requeued.queue)::text AS notified FROM requeued

-- name: append_logs
-- Appends log lines to the attempts of held leases only (a stale lease's lines are dropped, as its
-- heartbeat is refused), keeping the last $4 characters of each attempt's log. Each (job, lease)
-- appears once in the arrays.
INSERT INTO spool.attempt_logs AS l (job_id, lease_token, logs, dropped)
SELECT c.id, c.token, right(c.chunk, $4::integer), greatest(length(c.chunk) - $4::integer, 0)
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS c(id, token, chunk)
JOIN spool.jobs j ON j.id = c.id AND j.lease_token = c.token AND j.lease_expires_at > now()
ON CONFLICT (job_id, lease_token) DO UPDATE SET
    logs = right(l.logs || excluded.logs, $4::integer),
    dropped = l.dropped + excluded.dropped
        + greatest(length(l.logs) + length(excluded.logs) - $4::integer, 0)

-- name: get_logs
SELECT lease_token, logs, dropped FROM spool.attempt_logs WHERE job_id = $1 AND lease_token = ANY($2::bigint[])
