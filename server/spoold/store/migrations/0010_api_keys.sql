-- API keys: `spool_<id>_<secret>`, of which only the SHA-256 of the secret is kept.

CREATE TABLE spool.api_keys (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    -- The secret's SHA-256: the secret has 256 random bits, so a slow hash would add nothing.
    secret_hash  bytea NOT NULL,
    scopes       text[] NOT NULL,
    -- Queue patterns (`emails`, `reports-*`); '{*}' reaches every queue (admin keys only).
    queues       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    -- Written at most once a minute per key and server, never per call.
    last_used_at timestamptz,
    CONSTRAINT api_keys_id_format CHECK (id ~ '^[a-z0-9]{1,32}$'),
    CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT api_keys_secret_hash_length CHECK (octet_length(secret_hash) = 32),
    CONSTRAINT api_keys_scopes_known CHECK (
        cardinality(scopes) > 0 AND scopes <@ ARRAY['enqueue', 'work', 'read', 'admin']::text[]
    ),
    CONSTRAINT api_keys_queues_present CHECK (cardinality(queues) > 0)
);

-- Every change to a key (a revocation above all, however it is made: RevokeApiKey, `spoold keys
-- revoke`, or an operator's UPDATE) tells every server to forget what it cached about that key.
-- Servers also re-read keys after a short time, so a lost notification delays a revocation by
-- seconds, never forever.
CREATE FUNCTION spool.notify_api_key_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, spool AS $$
BEGIN
    PERFORM pg_notify('spool_api_key', OLD.id);
    RETURN NULL;
END
$$;

-- Row triggers: keys are few and rarely change. The last_used_at bookkeeping is not a change.
CREATE TRIGGER api_keys_notify_update AFTER UPDATE ON spool.api_keys
    FOR EACH ROW
    WHEN ((OLD.name, OLD.secret_hash, OLD.scopes, OLD.queues, OLD.expires_at, OLD.revoked_at)
        IS DISTINCT FROM (NEW.name, NEW.secret_hash, NEW.scopes, NEW.queues, NEW.expires_at, NEW.revoked_at))
    EXECUTE FUNCTION spool.notify_api_key_changed();

CREATE TRIGGER api_keys_notify_delete AFTER DELETE ON spool.api_keys
    FOR EACH ROW EXECUTE FUNCTION spool.notify_api_key_changed();
