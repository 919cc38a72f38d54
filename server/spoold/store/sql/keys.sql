-- name: insert_key
-- A new API key; the caller made its id and secret, only the secret's hash is stored.
INSERT INTO spool.api_keys (id, name, secret_hash, scopes, queues, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, secret_hash, scopes, queues, created_at, expires_at, revoked_at, last_used_at

-- name: get_key
-- One key by id, as the key check needs it.
SELECT id, name, secret_hash, scopes, queues, created_at, expires_at, revoked_at, last_used_at
FROM spool.api_keys
WHERE id = $1

-- name: list_keys
-- Every key, oldest first; revoked ones only when $1.
SELECT id, name, secret_hash, scopes, queues, created_at, expires_at, revoked_at, last_used_at
FROM spool.api_keys
WHERE $1 OR revoked_at IS NULL
ORDER BY created_at, id

-- name: revoke_key
-- Revokes a key; revoking a revoked key keeps its first revocation time.
UPDATE spool.api_keys
SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1
RETURNING id, name, secret_hash, scopes, queues, created_at, expires_at, revoked_at, last_used_at

-- name: touch_keys
-- Records when keys were last used ($1 ids, $2 times); never moves last_used_at back.
UPDATE spool.api_keys k
SET last_used_at = greatest(k.last_used_at, u.used_at)
FROM unnest($1::text[], $2::timestamptz[]) AS u (id, used_at)
WHERE k.id = u.id

-- name: job_queues
-- The queues of the given jobs, for checking a key's queue patterns before touching them.
SELECT id, queue FROM spool.jobs WHERE id = ANY($1::bigint[])
