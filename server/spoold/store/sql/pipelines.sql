-- name: insert_pipeline
-- A new pipeline, or nothing when its idempotency key is taken for a pipeline of this name.
INSERT INTO spool.pipelines (name, idempotency_key) VALUES ($1, $2)
ON CONFLICT (name, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id

-- name: pipeline_by_idempotency_key
SELECT id FROM spool.pipelines WHERE name = $1 AND idempotency_key = $2

-- name: set_on_failure
UPDATE spool.pipelines SET on_failure_id = $2 WHERE id = $1

-- name: get_pipeline
-- The pipeline and its state: spool.pipeline_state of its steps' states, the on_failure step left out.
SELECT p.*, spool.pipeline_state(ARRAY(
    SELECT j.state FROM spool.jobs j
    WHERE j.pipeline_id = p.id AND j.id IS DISTINCT FROM p.on_failure_id)) AS state
FROM spool.pipelines p WHERE p.id = $1

-- name: pipeline_steps
SELECT * FROM spool.jobs WHERE pipeline_id = $1 ORDER BY id

-- name: steps_attempts
SELECT * FROM spool.attempts WHERE job_id = ANY($1::bigint[]) ORDER BY job_id, lease_token

-- name: cancel_pipeline
-- Every unfinished step: waiting and pending ones end CANCELLED, running ones are flagged for
-- their worker's next heartbeat (as CancelJob does).
UPDATE spool.jobs SET
    state = CASE WHEN state = 'running' THEN state ELSE 'cancelled'::spool.job_state END,
    cancel_requested = true,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END,
    updated_at = now()
WHERE pipeline_id = $1 AND state IN ('pending', 'waiting', 'running')
RETURNING id

-- name: step_parents
-- The parents of claimed steps, for their LeasedJob.parents: the result of each (or, for the
-- on_failure step, the failed step and its error).
SELECT c.id AS child_id, p.id, p.step_name, p.state, p.result, p.result_content_type,
       p.error_type, p.error_message, p.error_details
FROM spool.jobs c
CROSS JOIN LATERAL unnest(c.parent_ids) AS r(parent_id)
JOIN spool.jobs p ON p.id = r.parent_id
WHERE c.id = ANY($1::bigint[])

-- name: lock_pipeline_of_job
-- Serialises the follow-up steps added to one pipeline, so their names stay unique. An ack that
-- adds steps takes it before it locks its own row: two such acks in one pipeline then queue here,
-- instead of each holding its row while waiting for the other's (named_steps locks them FOR SHARE).
SELECT p.id FROM spool.pipelines p JOIN spool.jobs j ON j.pipeline_id = p.id WHERE j.id = $1 FOR UPDATE OF p

-- name: named_steps
-- The pipeline's steps of these names, locked against a concurrent ack until this transaction ends:
-- a parent acked meanwhile then sees the new children this transaction makes, and frees them.
SELECT id, step_name, state FROM spool.jobs
WHERE pipeline_id = $1 AND step_name = ANY($2::text[])
ORDER BY id
FOR SHARE

-- name: lock_unfinished_steps
-- Pause and resume lock the pipeline's unfinished steps first: an ack of one of them then either
-- commits before (and its freed children are seen here) or runs its trigger after this commits
-- (and sees the new paused flag). Without it a child freed meanwhile could escape a pause, or
-- stay parked after a resume.
SELECT id FROM spool.jobs
WHERE pipeline_id = $1 AND state IN ('pending', 'waiting', 'running')
ORDER BY id
FOR UPDATE

-- name: set_paused
UPDATE spool.pipelines SET paused = $2 WHERE id = $1 RETURNING id

-- name: park_ready_steps
UPDATE spool.jobs SET state = 'waiting', updated_at = now()
WHERE pipeline_id = $1 AND state = 'pending'

-- name: unpark_steps
-- The steps with no unfinished parent (the on_failure step waits on the failure: it has one).
WITH freed AS (
    UPDATE spool.jobs SET state = 'pending', run_at = greatest(run_at, now()), updated_at = now()
    WHERE pipeline_id = $1 AND state = 'waiting' AND waiting_on = 0
    RETURNING queue
)
SELECT count(pg_notify('spool_ready', q.queue)) FROM (SELECT DISTINCT queue FROM freed) AS q

-- name: retry_steps
-- Fix and resume: step $1 of pipeline $2 (and with $3 every step downstream of it) runs again with
-- a fresh attempt budget. Each waits for its parents again: those outside the set that have not
-- succeeded, and those inside it. With $6 (a content type) the step takes the new payload ($4 as
-- JSON text, or $5 as bytes). Freed steps wake the Lease waiters of their queues.
WITH RECURSIVE down AS (
    SELECT $1::bigint AS id
    UNION
    SELECT c.id FROM spool.jobs c JOIN down ON down.id = ANY(c.parent_ids)
    WHERE $3::boolean AND c.pipeline_id = $2::bigint
), counted AS (
    SELECT j.id, (SELECT count(*) FROM spool.jobs q WHERE q.id = ANY(j.parent_ids)
                  AND (q.state <> 'succeeded' OR q.id IN (SELECT id FROM down)))::integer AS waits
    FROM spool.jobs j WHERE j.id IN (SELECT id FROM down)
), retried AS (
    UPDATE spool.jobs j SET
        state = CASE WHEN c.waits > 0 OR pl.paused THEN 'waiting' ELSE 'pending' END::spool.job_state,
        waiting_on = c.waits,
        attempt = 0,
        requeues = j.requeues + 1,
        run_at = now(),
        cancel_requested = false,
        finished_at = NULL,
        updated_at = now(),
        payload_json = CASE WHEN j.id = $1 AND $6::text IS NOT NULL THEN $4::jsonb ELSE j.payload_json END,
        payload_bytes = CASE WHEN j.id = $1 AND $6::text IS NOT NULL THEN $5::bytea ELSE j.payload_bytes END,
        content_type = CASE WHEN j.id = $1 AND $6::text IS NOT NULL THEN $6::text ELSE j.content_type END
    FROM counted c, spool.pipelines pl
    WHERE j.id = c.id AND pl.id = $2::bigint
    RETURNING j.queue, j.state
)
SELECT count(pg_notify('spool_ready', q.queue)) FROM (SELECT DISTINCT queue FROM retried WHERE state = 'pending') AS q

-- name: retry_targets
-- The step and (with $3) its descendants, locked, with their states, before retry_steps.
WITH RECURSIVE down AS (
    SELECT $1::bigint AS id
    UNION
    SELECT c.id FROM spool.jobs c JOIN down ON down.id = ANY(c.parent_ids)
    WHERE $3::boolean AND c.pipeline_id = $2::bigint
)
SELECT j.id, j.state FROM spool.jobs j WHERE j.id IN (SELECT id FROM down) ORDER BY j.id FOR UPDATE

-- name: step_of
SELECT j.pipeline_id, j.id = p.on_failure_id AS on_failure
FROM spool.jobs j LEFT JOIN spool.pipelines p ON p.id = j.pipeline_id
WHERE j.id = $1

-- name: taken_step_names
-- Which of these names the pipeline of step $1 has: names the step a unique violation was about.
SELECT s.step_name FROM spool.jobs j JOIN spool.jobs s ON s.pipeline_id = j.pipeline_id
WHERE j.id = $1 AND s.step_name = ANY($2::text[])

-- name: list_pipelines
-- ListPipelines: newest first after pipeline $1 (0: from the newest), $2 rows; each with its state
-- (as get_pipeline computes it) and step counts. Filters: $3 states (NULL: any), $4 name prefix
-- ('' : any), $5 paused (NULL: either), $6 queue LIKE patterns a restricted key may read (NULL:
-- every queue; a pipeline shows only if every step's queue matches, as GetPipeline decides).
SELECT p.id, p.name, p.idempotency_key, p.paused, p.created_at, s.state, s.steps, s.succeeded
FROM spool.pipelines p
CROSS JOIN LATERAL (
    SELECT spool.pipeline_state(coalesce(
               array_agg(j.state) FILTER (WHERE j.id IS DISTINCT FROM p.on_failure_id),
               '{}'::spool.job_state[])) AS state,
           count(*) FILTER (WHERE j.id IS DISTINCT FROM p.on_failure_id)::integer AS steps,
           count(*) FILTER (WHERE j.id IS DISTINCT FROM p.on_failure_id
                            AND j.state = 'succeeded')::integer AS succeeded,
           coalesce(bool_and(j.queue LIKE ANY($6::text[])), true) AS visible
    FROM spool.jobs j WHERE j.pipeline_id = p.id
) s
WHERE ($1::bigint = 0 OR p.id < $1::bigint)
  AND ($3::text[] IS NULL OR s.state::text = ANY($3::text[]))
  AND starts_with(p.name, $4::text)
  AND ($5::boolean IS NULL OR p.paused = $5::boolean)
  AND ($6::text[] IS NULL OR s.visible)
ORDER BY p.id DESC
LIMIT $2
