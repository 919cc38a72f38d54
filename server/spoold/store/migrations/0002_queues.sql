-- Queues as rows: pause state, per-queue job defaults and retention. A queue needs no row to be
-- used; a missing row or a NULL column means "the server's default".

CREATE TABLE spool.queues (
    name                text PRIMARY KEY,
    paused              boolean NOT NULL DEFAULT false,
    max_attempts        integer CHECK (max_attempts BETWEEN 1 AND 100),
    backoff_kind        spool.backoff_kind,
    backoff_initial     interval CHECK (backoff_initial > interval '0'),
    backoff_max         interval CHECK (backoff_max > interval '0'),
    backoff_multiplier  double precision CHECK (backoff_multiplier >= 1),
    backoff_jitter      boolean,
    lease_duration      interval CHECK (lease_duration > interval '0'),
    attempt_timeout     interval CHECK (attempt_timeout > interval '0'),
    retention_succeeded interval CHECK (retention_succeeded >= interval '0'),
    retention_cancelled interval CHECK (retention_cancelled >= interval '0'),
    retention_dead      interval CHECK (retention_dead >= interval '0'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queues_name_length CHECK (char_length(name) BETWEEN 1 AND 128)
);
