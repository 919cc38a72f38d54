-- name: register_tailer
-- This server has a tail open (insert, or extend its row's expiry): the triggers record events.
INSERT INTO spool.tailers (server_id, expires_at) VALUES ($1, now() + $2::interval)
ON CONFLICT (server_id) DO UPDATE SET expires_at = excluded.expires_at

-- name: unregister_tailer
DELETE FROM spool.tailers WHERE server_id = $1

-- name: tail_end
-- Where a new reader starts: after the last event written so far.
SELECT coalesce(max(seq), 0) FROM spool.job_events

-- name: read_events
-- The events after the last one read, and those missing from earlier reads (numbers skipped by a
-- transaction that had not committed yet), in seq order.
SELECT *, NULL::text AS error_details FROM spool.job_events
WHERE seq > $1::bigint OR seq = ANY($2::bigint[])
ORDER BY seq
LIMIT $3::integer

-- name: prune_events
-- Events every tailing server has long read, and tailers that died without cleaning up.
WITH gone AS (DELETE FROM spool.tailers WHERE expires_at < now() - interval '1 minute')
DELETE FROM spool.job_events WHERE at < now() - $1::interval
