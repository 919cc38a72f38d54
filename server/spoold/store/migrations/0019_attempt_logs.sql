-- Per-attempt logs: the lines a worker's handler wrote, sent with its heartbeats, Ack and Nack,
-- kept per lease (one row per attempt that logged anything). Keyed like spool.attempts, so the
-- running attempt's lines are stored before its attempts row exists: a worker that crashes keeps
-- what it sent up to its last heartbeat. Only the last characters are kept (the bound is the
-- server's, passed to each append); `dropped` counts those cut from the start.
CREATE TABLE spool.attempt_logs (
    job_id      bigint NOT NULL REFERENCES spool.jobs (id) ON DELETE CASCADE,
    lease_token bigint NOT NULL,
    logs        text NOT NULL,
    dropped     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, lease_token),
    CONSTRAINT attempt_logs_dropped_range CHECK (dropped >= 0)
);

-- Live tail (TailJobs): while some spoold process has a tail open (a live row in spool.tailers),
-- each change of a job's state is also written to spool.job_events, and NOTIFY 'spool_tail' wakes
-- the tailing servers, each of which reads the events in seq order and filters them for its
-- streams. A transaction that commits after a later one leaves a gap in seq for a moment; readers
-- look for the missing numbers again for a few seconds (spoold/tail.py). With nobody tailing, the triggers cost one look at an empty table per statement.
-- UNLOGGED, as spool.watched: rows are ephemeral (tailers are rewritten by each server's
-- keep-alive; events are read within seconds and deleted after a minute).
CREATE UNLOGGED TABLE spool.tailers (
    server_id  uuid PRIMARY KEY,
    -- A server that dies leaves its row behind: an expired row no longer counts.
    expires_at timestamptz NOT NULL
);

CREATE UNLOGGED TABLE spool.job_events (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    job_id        bigint NOT NULL,
    queue         text NOT NULL,
    -- enqueued, started, succeeded, failed (an attempt failed; the job will retry), dead,
    -- cancelled, pending (requeued or released), or the job's state for any other change.
    kind          text NOT NULL,
    state         spool.job_state NOT NULL,
    attempt       integer NOT NULL,
    max_attempts  integer NOT NULL,
    worker_id     text,
    error_type    text,
    error_message text
);
CREATE INDEX job_events_at_idx ON spool.job_events (at);

CREATE FUNCTION spool.record_job_events() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, spool AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM spool.tailers t WHERE t.expires_at > now()) THEN
        RETURN NULL;
    END IF;
    -- Heartbeats and other updates of a running job are not events: a claim is the update that
    -- sets started_at to the statement's time, as it sets updated_at.
    INSERT INTO spool.job_events (job_id, queue, kind, state, attempt, max_attempts, worker_id,
        error_type, error_message)
    SELECT c.id, c.queue,
           CASE WHEN TG_OP = 'INSERT' THEN 'enqueued'::text
                WHEN c.state = 'running'::spool.job_state THEN 'started'::text
                WHEN c.state = 'pending'::spool.job_state
                     AND (c.error_type IS NOT NULL OR c.error_message IS NOT NULL) THEN 'failed'::text
                ELSE c.state::text END,
           c.state, c.attempt, c.max_attempts, c.worker_id,
           left(c.error_type, 256), left(c.error_message, 1024)
    FROM changed c
    WHERE TG_OP = 'INSERT' OR c.state <> 'running'::spool.job_state OR c.started_at = c.updated_at;
    IF FOUND THEN
        PERFORM pg_notify('spool_tail'::text, ''::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_record_events_update AFTER UPDATE ON spool.jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spool.record_job_events();
CREATE TRIGGER jobs_record_events_insert AFTER INSERT ON spool.jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spool.record_job_events();
