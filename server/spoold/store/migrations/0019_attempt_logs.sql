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
