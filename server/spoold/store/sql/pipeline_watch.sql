-- name: pipelines_step_ids
-- The steps of the watched pipelines: WatchPipeline registers them in spool.watched, so that the
-- trigger that wakes WatchJob streams (notify_watchers) wakes it too, with no trigger of its own.
SELECT id, pipeline_id FROM spool.jobs WHERE pipeline_id = ANY($1::bigint[])

-- name: pipeline_versions
-- A version of each pipeline that still exists, changed by any update of it or of a step, and by a
-- step added: the poll that backs up NOTIFY re-reads a pipeline whose version moved.
SELECT p.id, p.xmin::text || '/' || s.n || '/' || s.sum AS version
FROM spool.pipelines p
CROSS JOIN LATERAL (
    SELECT count(*) AS n, coalesce(sum(j.xmin::text::bigint), 0) AS sum
    FROM spool.jobs j WHERE j.pipeline_id = p.id
) s
WHERE p.id = ANY($1::bigint[])
