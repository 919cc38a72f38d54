-- The step trigger (migrations 0030, 0033) counts each waiting child's finished parents in a
-- subquery of its own. In 0033 the count was a join of the children's unnested parents with the
-- statement's finished steps, and with no statistics on those the planner guessed one finished
-- step and put it outside: each waiting child's parents were unnested again for every finished
-- step (PostgreSQL 18, an AckBatch of 50 chained steps: 7,500 unnest calls, 7.5 ms per ack
-- statement; PostgreSQL 15 happened to plan it the other way). Now each child's parents are
-- unnested once. Same rules, same results (see migration 0030).

CREATE OR REPLACE FUNCTION spool.steps_finished() RETURNS trigger LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    children bigint[];
    counts integer[];
    woken bigint;
BEGIN
    -- A statement that finishes no step (every plain job's) ends here.
    IF NOT EXISTS (SELECT 1 FROM after_rows a
                   WHERE a.pipeline_id IS NOT NULL AND a.state IN ('succeeded', 'dead')) THEN
        RETURN NULL;
    END IF;
    -- The waiting children of the steps that succeeded, each with how many of its parents did:
    -- the waiting steps of their pipelines (by index), then each one's parents unnested once and
    -- looked up among the finished steps, so a join with 1,000 parents is read once per statement.
    -- Both sets are materialized first, and each waiting step's count is its own subquery: the
    -- planner has no statistics on the statement's rows, guesses that one step finished, and
    -- given a join would unnest every waiting step's parents again for each finished step.
    WITH succeeded AS MATERIALIZED (
        SELECT a.id, a.pipeline_id FROM after_rows a JOIN before_rows b ON b.id = a.id
        WHERE a.pipeline_id IS NOT NULL AND a.state = 'succeeded' AND b.state <> 'succeeded'
    ), waiting AS MATERIALIZED (
        SELECT c.id, c.parent_ids
        FROM (SELECT DISTINCT pipeline_id FROM succeeded) AS p
        JOIN spool.jobs c ON c.pipeline_id = p.pipeline_id AND c.waiting_on > 0
    )
    SELECT array_agg(k.id ORDER BY k.id), array_agg(k.n ORDER BY k.id) INTO children, counts
    FROM (
        SELECT w.id, (SELECT count(*)::integer FROM unnest(w.parent_ids) AS r(parent_id)
                      WHERE r.parent_id IN (SELECT s.id FROM succeeded s)) AS n
        FROM waiting w
    ) AS k
    WHERE k.n > 0;
    IF children IS NOT NULL THEN
        -- Each counts those parents fewer; one with none left becomes PENDING (unless its pipeline
        -- is paused) and wakes its queue's waiters. Locked in id order first, as ack_many does.
        WITH locked AS (
            SELECT id FROM spool.jobs WHERE id = ANY(children) ORDER BY id FOR UPDATE
        ), freed AS (
            UPDATE spool.jobs c SET
                waiting_on = c.waiting_on - k.n,
                state = CASE WHEN c.state = 'waiting' AND c.waiting_on = k.n AND NOT p.paused
                    THEN 'pending'::spool.job_state ELSE c.state END,
                run_at = CASE WHEN c.state = 'waiting' AND c.waiting_on = k.n AND NOT p.paused
                    THEN greatest(c.run_at, now()) ELSE c.run_at END,
                updated_at = now()
            FROM unnest(children, counts) AS k(id, n)
            JOIN locked ON locked.id = k.id, spool.pipelines p
            WHERE c.id = k.id AND p.id = c.pipeline_id
            RETURNING c.queue, c.state
        )
        SELECT count(pg_notify('spool_ready', q.queue)) INTO woken
        FROM (SELECT DISTINCT queue FROM freed WHERE state = 'pending') AS q;
    END IF;
    IF EXISTS (SELECT 1 FROM after_rows a JOIN before_rows b ON b.id = a.id
               WHERE a.pipeline_id IS NOT NULL AND a.state = 'dead' AND b.state <> 'dead') THEN
        -- The on_failure step runs once, whatever else the pipeline is doing (paused or not), with
        -- the failed step (the first, if the statement failed several) as its one parent.
        WITH failed AS (
            SELECT DISTINCT ON (a.pipeline_id) a.pipeline_id, a.id
            FROM after_rows a JOIN before_rows b ON b.id = a.id
            WHERE a.pipeline_id IS NOT NULL AND a.state = 'dead' AND b.state <> 'dead'
            ORDER BY a.pipeline_id, a.id
        ), started AS (
            UPDATE spool.jobs c SET
                state = 'pending'::spool.job_state,
                waiting_on = 0,
                parent_ids = ARRAY[f.id],
                run_at = now(),
                updated_at = now()
            FROM failed f, spool.pipelines p
            WHERE p.id = f.pipeline_id AND c.id = p.on_failure_id AND c.state = 'waiting'
            RETURNING c.queue
        )
        SELECT count(pg_notify('spool_ready', q.queue)) INTO woken
        FROM (SELECT DISTINCT queue FROM started) AS q;
    END IF;
    RETURN NULL;
END
$$;
