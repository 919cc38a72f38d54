-- Pipelines: a DAG of steps, each step a job. A step waits (state 'waiting') until its parents
-- have succeeded; the Ack of its last parent makes it PENDING in the same transaction (the trigger
-- below), so no worker crash between an ack and the next enqueue can lose the rest of a pipeline.
-- The pipeline's state is not stored: spool.pipeline_state computes it from its steps' states, so
-- it can never disagree with them, and an ack never has to lock a row shared by its siblings.
-- See docs/pipelines.md.
--
-- The migrations run in one transaction, and a new enum value cannot be used in the transaction
-- that adds it: below, 'waiting' appears only as text or inside plpgsql bodies (parsed when run).

ALTER TYPE spool.job_state ADD VALUE 'waiting';

CREATE TYPE spool.pipeline_state AS ENUM ('running', 'succeeded', 'failed', 'cancelled');

CREATE TABLE spool.pipelines (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    idempotency_key text,
    -- While paused no step is made PENDING: ready steps are parked WAITING, running ones finish.
    paused          boolean NOT NULL DEFAULT false,
    -- The step that runs once if the pipeline fails (WAITING until then); not counted in its state.
    on_failure_id   bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipelines_name_length CHECK (char_length(name) BETWEEN 1 AND 128)
);
CREATE UNIQUE INDEX pipelines_idempotency_idx ON spool.pipelines (name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A step is a job with its pipeline, its name in it, its parents (job ids) and how many of them
-- have not succeeded yet. Plain jobs leave the first three NULL and waiting_on 0. No foreign keys:
-- their triggers would cost every plain job's insert and delete; the pruner deletes a pipeline
-- with its steps (sql/pipelines.sql).
ALTER TABLE spool.jobs
    ADD COLUMN pipeline_id bigint,
    ADD COLUMN step_name text,
    ADD COLUMN parent_ids bigint[],
    ADD COLUMN waiting_on integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT jobs_step_fields CHECK (
        (pipeline_id IS NULL) = (step_name IS NULL)
        AND (parent_ids IS NULL OR pipeline_id IS NOT NULL)
        AND char_length(step_name) BETWEEN 1 AND 128),
    -- Only a WAITING step (or one cancelled while it waited) has unfinished parents; a step that
    -- is ready, running or finished has none. (A paused pipeline parks ready steps WAITING with 0.)
    ADD CONSTRAINT jobs_waiting_on_range CHECK (
        waiting_on >= 0 AND waiting_on <= coalesce(cardinality(parent_ids), 1)
        AND (waiting_on = 0 OR state::text IN ('waiting', 'cancelled')));

-- Steps by pipeline (GetPipeline, CancelPipeline, pruning), and the steps still waiting on a
-- parent, which an ack looks through for the children it frees.
CREATE INDEX jobs_pipeline_idx ON spool.jobs (pipeline_id, id) WHERE pipeline_id IS NOT NULL;
CREATE INDEX jobs_waiting_idx ON spool.jobs (pipeline_id) WHERE waiting_on > 0;

-- The pipeline's state as a function of its steps' states (the on_failure step left out): a dead
-- step fails it, else a cancelled one cancels it, else it succeeds when every step has. RUNNING
-- therefore always has a step that can run (or will, when its parents finish): see
-- docs/pipelines.md for the argument and tests/store/test_pipeline_walk.py for the check.
CREATE FUNCTION spool.pipeline_state(states spool.job_state[]) RETURNS spool.pipeline_state
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT CASE
        WHEN 'dead'::spool.job_state = ANY(states) THEN 'failed'::spool.pipeline_state
        WHEN 'cancelled'::spool.job_state = ANY(states) THEN 'cancelled'::spool.pipeline_state
        WHEN states <@ ARRAY['succeeded'::spool.job_state] THEN 'succeeded'::spool.pipeline_state
        ELSE 'running'::spool.pipeline_state
    END
$$;

-- A step that succeeded frees its children: each counts one parent fewer, and a WAITING child
-- with none left becomes PENDING (unless its pipeline is paused), in the transaction of the ack,
-- and wakes the Lease waiters of its queue. A step that went DEAD starts its pipeline's
-- on_failure step. The children are updated by one statement each, under their row locks, so two
-- parents acked at once in two transactions both count: the second waits for the first's lock
-- and then sees its decrement.
CREATE FUNCTION spool.step_finished() RETURNS trigger LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    held boolean;
    woken bigint;
BEGIN
    IF NEW.state = 'succeeded' THEN
        SELECT p.paused INTO held FROM spool.pipelines p WHERE p.id = NEW.pipeline_id;
        WITH freed AS (
            UPDATE spool.jobs c SET
                waiting_on = c.waiting_on - 1,
                state = CASE WHEN c.state = 'waiting' AND c.waiting_on = 1 AND NOT held
                    THEN 'pending'::spool.job_state ELSE c.state END,
                run_at = CASE WHEN c.state = 'waiting' AND c.waiting_on = 1 AND NOT held
                    THEN greatest(c.run_at, now()) ELSE c.run_at END,
                updated_at = now()
            WHERE c.pipeline_id = NEW.pipeline_id AND c.waiting_on > 0
              AND NEW.id = ANY(c.parent_ids)
            RETURNING c.queue, c.state
        )
        SELECT count(pg_notify('spool_ready', q.queue)) INTO woken
        FROM (SELECT DISTINCT queue FROM freed WHERE state = 'pending') AS q;
    ELSE
        -- The on_failure step runs once, whatever else the pipeline is doing (paused or not).
        WITH started AS (
            UPDATE spool.jobs c SET
                state = 'pending'::spool.job_state,
                waiting_on = 0,
                -- The failed step as its one parent: the worker reads its error there.
                parent_ids = ARRAY[NEW.id],
                run_at = now(),
                updated_at = now()
            FROM spool.pipelines p
            WHERE p.id = NEW.pipeline_id AND c.id = p.on_failure_id AND c.state = 'waiting'
            RETURNING c.queue
        )
        SELECT count(pg_notify('spool_ready', started.queue)) INTO woken FROM started;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_step_finished AFTER UPDATE OF state ON spool.jobs
    FOR EACH ROW
    WHEN (NEW.pipeline_id IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state
          AND NEW.state IN ('succeeded', 'dead'))
    EXECUTE FUNCTION spool.step_finished();

REVOKE ALL ON FUNCTION spool.pipeline_state(spool.job_state[]), spool.step_finished() FROM PUBLIC;
