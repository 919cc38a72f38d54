-- A step's Ack frees its children with one statement per ack statement, not one per acked step.
--
-- Migration 0020's row trigger ran an UPDATE of the children for each step an ack statement
-- finished, and each of those UPDATEs fired the jobs table's statement triggers again (the queue
-- counts' deltas, the watchers, the job events): an AckBatch of 50 steps cost 51 statements' worth
-- of triggers where 50 plain jobs cost one. Measured (pg_stat_statements, 20,000 steps): the
-- children's UPDATEs and their count deltas were two thirds of the database time of a step's drain.
--
-- The statement trigger below does the same work once for all the steps the statement finished:
-- each child counts as many parents fewer as it had finish in the statement (a join step whose
-- parents are acked in one batch is updated once), and the same rules hold as before. The
-- children are updated in the ack's transaction, each under its row lock, so two parents acked
-- at once in two transactions both count: the second waits for the first's lock and recomputes
-- from the count it left. Its statements see what committed before they start (plpgsql takes a
-- snapshot per statement), so a Pause that locked the acked step first is seen, as before.
--
-- The transition tables are the ones the jobs table's other statement triggers already capture
-- (migrations 0004, 0018, 0019); a statement that finishes no step costs this trigger one look
-- at its rows.

DROP TRIGGER jobs_step_finished ON spool.jobs;
DROP FUNCTION spool.step_finished();

CREATE FUNCTION spool.steps_finished() RETURNS trigger LANGUAGE plpgsql VOLATILE
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
    -- The waiting children of the steps that succeeded, each with how many of its parents did.
    -- Each child's parents are unnested once and matched against the finished steps: a join with
    -- 1,000 parents is read once per statement, not once per parent the statement finished.
    WITH succeeded AS (
        SELECT a.id, a.pipeline_id FROM after_rows a JOIN before_rows b ON b.id = a.id
        WHERE a.pipeline_id IS NOT NULL AND a.state = 'succeeded' AND b.state <> 'succeeded'
    )
    SELECT array_agg(k.id ORDER BY k.id), array_agg(k.n ORDER BY k.id) INTO children, counts
    FROM (
        SELECT c.id, count(*)::integer AS n
        FROM spool.jobs c
        CROSS JOIN LATERAL unnest(c.parent_ids) AS r(parent_id)
        JOIN succeeded s ON s.id = r.parent_id
        WHERE c.pipeline_id IN (SELECT pipeline_id FROM succeeded) AND c.waiting_on > 0
        GROUP BY c.id
    ) AS k;
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

CREATE TRIGGER jobs_steps_finished AFTER UPDATE ON spool.jobs
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spool.steps_finished();

REVOKE ALL ON FUNCTION spool.steps_finished() FROM PUBLIC;
