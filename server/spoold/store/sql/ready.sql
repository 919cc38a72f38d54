-- name: ready_queues
-- The shared poll behind idle Lease long polls (loops/ready.py): which of the queues $1 have a
-- job that a claim might take now, without claiming or locking anything. Only jobs_pending_idx
-- (queue, priority DESC, run_at, id) is read: within one priority the first entry has the
-- earliest run_at, so a walk that descends the index once per priority level (a loose index
-- scan) finds a due job, or learns that none is due, in as many steps as the queue has levels
-- ahead of it. The walk stops after $2 levels: a queue still unsure then counts as ready (its
-- waiters claim, as they would have without the probe). A paused queue is never ready. Jobs held
-- back by a concurrency or rate key count as ready: the claim decides, and a waiter that gets
-- nothing waits for the next wake-up.
WITH RECURSIVE walk AS (
    SELECT q.name, f.priority, f.run_at, 1 AS depth
    FROM unnest($1::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT j.priority, j.run_at FROM spool.jobs j
        WHERE j.state = 'pending'::spool.job_state AND j.queue = q.name
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT 1
    ) AS f
    UNION ALL
    SELECT w.name, n.priority, n.run_at, w.depth + 1
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT j.priority, j.run_at FROM spool.jobs j
        WHERE j.state = 'pending'::spool.job_state AND j.queue = w.name AND j.priority < w.priority
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT 1
    ) AS n
    WHERE w.run_at > now() AND w.depth < $2::integer
)
SELECT DISTINCT w.name
FROM walk w
LEFT JOIN spool.queues p ON p.name = w.name
WHERE p.paused IS NOT TRUE AND (w.run_at <= now() OR w.depth >= $2::integer)
