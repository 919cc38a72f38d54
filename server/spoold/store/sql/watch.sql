-- name: register_watches
-- This server watches these jobs (insert, or extend the lease of rows it already has).
INSERT INTO spool.watched (job_id, server_id, expires_at)
SELECT unnest($1::bigint[]), $2, now() + $3::interval
ON CONFLICT (job_id, server_id) DO UPDATE SET expires_at = excluded.expires_at

-- name: unregister_watches
DELETE FROM spool.watched WHERE job_id = ANY($1::bigint[]) AND server_id = $2

-- name: unregister_server
DELETE FROM spool.watched WHERE server_id = $1

-- name: purge_expired_watches
-- Rows of servers that died without cleaning up.
DELETE FROM spool.watched WHERE expires_at < now()

-- name: job_versions
-- The row version of each job that still exists: xmin changes with every UPDATE of the row.
SELECT id, xmin::text AS version FROM spool.jobs WHERE id = ANY($1::bigint[])
