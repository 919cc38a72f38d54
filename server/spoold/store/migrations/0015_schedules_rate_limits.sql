-- Schedules: timetables that enqueue a job at each fire time, exactly once across replicas.
-- A schedule row is fired under its row lock (FOR UPDATE SKIP LOCKED: replicas take different
-- schedules), and each fire is a row with a unique (schedule, fire_time), made in the same
-- transaction as its job: a fire time that was fired cannot be fired again.

CREATE TYPE spool.schedule_overlap AS ENUM ('allow', 'skip');
CREATE TYPE spool.schedule_catch_up AS ENUM ('latest', 'all', 'none');
CREATE TYPE spool.fire_outcome AS ENUM ('enqueued', 'skipped', 'failed');

CREATE TABLE spool.schedules (
    name            text PRIMARY KEY,
    -- Exactly one of cron and every: a cron expression as given, or an interval.
    cron            text,
    every           interval,
    time_zone       text NOT NULL DEFAULT 'UTC',
    -- The job template: a spool.v1.EnqueueRequest, checked by Enqueue's own validation.
    template        bytea NOT NULL,
    -- The template's queue, for people reading the table.
    queue           text NOT NULL,
    overlap         spool.schedule_overlap NOT NULL DEFAULT 'allow',
    catch_up        spool.schedule_catch_up NOT NULL DEFAULT 'latest',
    catch_up_limit  integer NOT NULL DEFAULT 100,
    jitter          interval NOT NULL DEFAULT interval '0',
    paused          boolean NOT NULL DEFAULT false,
    -- The earliest fire time not handled yet.
    next_fire_at    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_name_length CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT schedules_one_timing CHECK ((cron IS NULL) <> (every IS NULL)),
    CONSTRAINT schedules_every_range CHECK (every >= interval '1 second' AND every <= interval '366 days'),
    CONSTRAINT schedules_catch_up_limit_range CHECK (catch_up_limit BETWEEN 1 AND 1000),
    CONSTRAINT schedules_jitter_range CHECK (jitter >= interval '0' AND jitter <= interval '1 day')
);

-- What the scheduler looks for: unpaused schedules whose next fire time has come.
CREATE INDEX schedules_due_idx ON spool.schedules (next_fire_at) WHERE NOT paused;

-- The latest fires of each schedule (the scheduler keeps a bounded history).
CREATE TABLE spool.schedule_fires (
    schedule    text NOT NULL REFERENCES spool.schedules (name) ON DELETE CASCADE,
    fire_time   timestamptz NOT NULL,
    fired_at    timestamptz NOT NULL,
    outcome     spool.fire_outcome NOT NULL,
    -- The job enqueued; it may be pruned later, so no foreign key.
    job_id      bigint,
    error       text,
    triggered   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (schedule, fire_time),
    CONSTRAINT schedule_fires_job_iff_enqueued CHECK ((outcome = 'enqueued') = (job_id IS NOT NULL))
);
