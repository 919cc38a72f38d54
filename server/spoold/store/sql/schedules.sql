-- name: insert_schedule
-- Creates a schedule; no row when the name is taken.
INSERT INTO spool.schedules (name, cron, every, time_zone, template, queue, overlap, catch_up,
    catch_up_limit, jitter, next_fire_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: update_schedule
UPDATE spool.schedules SET
    cron = $2, every = $3, time_zone = $4, template = $5, queue = $6, overlap = $7, catch_up = $8,
    catch_up_limit = $9, jitter = $10, next_fire_at = $11, updated_at = now()
WHERE name = $1

-- name: lock_schedule
-- The schedule, locked until the transaction ends: its fires, changes and pause are one at a time.
SELECT * FROM spool.schedules WHERE name = $1 FOR UPDATE

-- name: next_due
-- One unpaused schedule whose next fire time has come, locked; replicas each take another.
SELECT * FROM spool.schedules
WHERE NOT paused AND next_fire_at <= $1
ORDER BY next_fire_at
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: get_schedule
-- The schedule with its latest fire and that fire's job state (NULL once the job is pruned).
SELECT s.*, f.fire_time, f.fired_at, f.outcome, f.job_id, f.error, f.triggered, j.state AS job_state
FROM spool.schedules s
LEFT JOIN LATERAL (
    SELECT * FROM spool.schedule_fires x WHERE x.schedule = s.name
    ORDER BY x.fired_at DESC, x.fire_time DESC LIMIT 1
) f ON true
LEFT JOIN spool.jobs j ON j.id = f.job_id
WHERE s.name = $1

-- name: list_schedules
-- get_schedule for a page of schedules by name, after the name $1 ('' for the first page); with $3,
-- only the schedules whose queue matches one of these LIKE patterns (a key limited to some queues).
SELECT s.*, f.fire_time, f.fired_at, f.outcome, f.job_id, f.error, f.triggered, j.state AS job_state
FROM spool.schedules s
LEFT JOIN LATERAL (
    SELECT * FROM spool.schedule_fires x WHERE x.schedule = s.name
    ORDER BY x.fired_at DESC, x.fire_time DESC LIMIT 1
) f ON true
LEFT JOIN spool.jobs j ON j.id = f.job_id
WHERE s.name > $1 AND ($3::text[] IS NULL OR s.queue LIKE ANY($3::text[]))
ORDER BY s.name
LIMIT $2

-- name: delete_schedule
DELETE FROM spool.schedules WHERE name = $1 RETURNING name

-- name: set_schedule_paused
-- Pauses, or resumes from $3 on (the next fire time after now): a resume does not catch up.
UPDATE spool.schedules SET
    next_fire_at = CASE WHEN paused AND NOT $2 THEN $3 ELSE next_fire_at END,
    paused = $2,
    updated_at = CASE WHEN paused = $2 THEN updated_at ELSE now() END
WHERE name = $1

-- name: advance_schedule
UPDATE spool.schedules SET next_fire_at = $2 WHERE name = $1

-- name: previous_job_active
-- Whether the job of the schedule's latest fire that enqueued one is still PENDING or RUNNING.
SELECT EXISTS (
    SELECT 1 FROM (
        SELECT job_id FROM spool.schedule_fires
        WHERE schedule = $1 AND job_id IS NOT NULL
        ORDER BY fired_at DESC, fire_time DESC
        LIMIT 1
    ) f
    JOIN spool.jobs j ON j.id = f.job_id
    WHERE j.state IN ('pending', 'running')
)

-- name: insert_fire
-- Records a fire; no row when this fire time was fired already.
INSERT INTO spool.schedule_fires (schedule, fire_time, fired_at, outcome, job_id, error, triggered)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (schedule, fire_time) DO NOTHING
RETURNING fire_time

-- name: prune_fires
-- Keeps the schedule's latest $2 fires.
DELETE FROM spool.schedule_fires
WHERE schedule = $1 AND fire_time < (
    SELECT fire_time FROM spool.schedule_fires WHERE schedule = $1
    ORDER BY fire_time DESC OFFSET $2 - 1 LIMIT 1)
