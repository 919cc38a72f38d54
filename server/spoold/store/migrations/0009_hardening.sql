-- Hardening against hostile input and hostile roles (docs/security.md, "Database roles"):
--
-- 1. Every spool function runs with a fixed search_path (pg_catalog first, pg_temp last), and calls
--    built-ins with arguments of their exact types, so no object another role creates, in public
--    or anywhere else, can stand in for a built-in that spool calls.
-- 2. Concurrency keys are scoped to their queue unless a job asks for a global key, and a claim
--    takes at most 64 advisory locks however many keys its jobs carry.
-- 3. spool.enqueue() validates what it is given with spoold's rules and runs as its owner
--    (SECURITY DEFINER): an application role needs EXECUTE on it, through the spool_producer role,
--    and no privilege on spool.jobs.
-- 4. A CHECK constraint for what the conversion to the API relies on: headers, a map of strings.
-- 5. Indexes for listing the rare states newest first.

-- ---- 1. Fixed search_path and exact argument types

CREATE OR REPLACE FUNCTION spool.backoff_delay(
    kind spool.backoff_kind, initial interval, max_delay interval, multiplier double precision,
    jitter boolean, attempt integer
) RETURNS interval LANGUAGE sql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT CASE WHEN jitter THEN d * (0.5::double precision + random() / 2::double precision) ELSE d END
    FROM (SELECT make_interval(secs => least(extract(epoch FROM max_delay)::double precision, CASE kind
        WHEN 'fixed'::spool.backoff_kind THEN extract(epoch FROM initial)::double precision
        WHEN 'linear'::spool.backoff_kind
        THEN extract(epoch FROM initial)::double precision * greatest(attempt, 1)::double precision
        -- 100^100 still fits a double; the exponent cap keeps any multiplier finite.
        ELSE extract(epoch FROM initial)::double precision
            * power(multiplier, least(greatest(attempt - 1, 0), 100)::double precision)
    END)) AS d) AS capped
$$;

ALTER FUNCTION spool.state_after_failure(boolean, boolean, integer, integer)
    SET search_path = pg_catalog, spool, pg_temp;
ALTER FUNCTION spool.notify_watchers() SET search_path = pg_catalog, spool, pg_temp;
ALTER FUNCTION spool.remember_granted_lease() SET search_path = pg_catalog, spool, pg_temp;

-- ---- 2. Concurrency keys scoped to their queue; advisory locks on 64 buckets

-- false: the key counts the running jobs of its own queue only (the default). true: the running
-- jobs of every queue whose jobs name the key as global. Existing jobs become queue-scoped.
ALTER TABLE spool.jobs ADD COLUMN concurrency_global boolean NOT NULL DEFAULT false;

-- As in 0008, with two changes. A key is counted within its scope (its queue, or every queue for a
-- global key). And the admission of keyed jobs is serialised by advisory locks on hash buckets of
-- the scoped keys, 64 of them, instead of one lock per key: a claim over 1,000 distinct keys used to
-- take 1,000 locks, and a few such claims at once ran PostgreSQL's shared lock table out of memory
-- for every client of the server. Two keys in one bucket only make their claimers wait for each
-- other; the count taken under the lock is exact, so the limits hold as before.
-- The advisory lock that admits a concurrency key's jobs: pg_advisory_xact_lock(1397772107, bucket)
-- (1397772107 is 'SPOK' as an integer; the two-integer form keeps it apart from bigint locks). NULL
-- for a job without a key (STRICT: the function is not even called). Queue names hold no spaces, so
-- 'q <queue> <key>' names a queue-scoped key unambiguously.
CREATE FUNCTION spool.concurrency_bucket(queue text, concurrency_key text, global boolean)
RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT (hashtextextended(CASE WHEN global THEN 'g '::text || concurrency_key
                                  ELSE 'q '::text || queue || ' '::text || concurrency_key END,
                             0::bigint) & 63::bigint)::integer
$$;

CREATE OR REPLACE FUNCTION spool.claim_slots(queues text[], workers text[], leases interval[])
RETURNS SETOF spool.jobs LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    max_jobs integer := cardinality(workers);
    free_ids bigint[];
    keyed_ids bigint[];
    buckets integer[];
    b integer;
BEGIN
    IF max_jobs IS NULL OR max_jobs = 0 THEN
        RETURN;
    END IF;
    WITH candidates AS (
        SELECT c.id, c.concurrency_key, c.bucket, c.priority, c.run_at
        FROM (
            SELECT u.name FROM unnest(queues) AS u(name)
            WHERE NOT EXISTS (SELECT 1 FROM spool.queues p WHERE p.name = u.name AND p.paused)
        ) AS q
        CROSS JOIN LATERAL (
            SELECT j.id, j.concurrency_key, j.priority, j.run_at,
                   spool.concurrency_bucket(j.queue, j.concurrency_key, j.concurrency_global) AS bucket
            FROM spool.jobs j
            WHERE j.state = 'pending'::spool.job_state AND j.queue = q.name AND j.run_at <= now()
              -- Skip keys already at their limit, so they cannot crowd out claimable jobs.
              AND (j.concurrency_key IS NULL OR j.concurrency_limit > (
                  SELECT count(*) FROM spool.jobs r
                  WHERE r.state = 'running'::spool.job_state AND r.concurrency_key = j.concurrency_key
                    AND r.concurrency_global = j.concurrency_global
                    AND (j.concurrency_global OR r.queue = j.queue)))
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED
        ) AS c
        ORDER BY c.priority DESC, c.run_at, c.id
        LIMIT max_jobs
    )
    SELECT array_agg(id ORDER BY priority DESC, run_at, id) FILTER (WHERE concurrency_key IS NULL),
           array_agg(id) FILTER (WHERE concurrency_key IS NOT NULL),
           array_agg(DISTINCT bucket) FILTER (WHERE concurrency_key IS NOT NULL)
    INTO free_ids, keyed_ids, buckets
    FROM candidates;

    IF buckets IS NOT NULL THEN
        -- Sorted (array_agg DISTINCT sorts), so two claimers never wait on each other in a cycle.
        FOREACH b IN ARRAY buckets LOOP
            PERFORM pg_advisory_xact_lock(1397772107, b);
        END LOOP;
        SELECT array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id) INTO free_ids
        FROM spool.jobs c
        WHERE c.id = ANY(coalesce(free_ids, '{}'::bigint[]) || ARRAY(
            SELECT ranked.id FROM (
                SELECT r.id,
                       row_number() OVER (
                           PARTITION BY r.concurrency_global,
                                        CASE WHEN r.concurrency_global THEN NULL ELSE r.queue END,
                                        r.concurrency_key
                           ORDER BY r.priority DESC, r.run_at, r.id) AS rank,
                       r.concurrency_limit - (
                           SELECT count(*) FROM spool.jobs x
                           WHERE x.state = 'running'::spool.job_state AND x.concurrency_key = r.concurrency_key
                             AND x.concurrency_global = r.concurrency_global
                             AND (r.concurrency_global OR x.queue = r.queue)) AS room
                FROM spool.jobs r
                WHERE r.id = ANY(keyed_ids)
            ) AS ranked
            WHERE ranked.rank <= ranked.room));
    END IF;

    IF free_ids IS NULL OR cardinality(free_ids) = 0 THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE spool.jobs j SET
        state = 'running'::spool.job_state,
        attempt = j.attempt + 1,
        lease_token = nextval('spool.lease_token_seq'::regclass),
        worker_id = s.worker,
        started_at = now(),
        lease_expires_at = least(now() + coalesce(s.lease, j.lease_duration), now() + j.attempt_timeout),
        attempt_deadline = now() + j.attempt_timeout,
        updated_at = now()
    FROM unnest(free_ids) WITH ORDINALITY AS f(id, slot)
    JOIN unnest(workers, leases) WITH ORDINALITY AS s(worker, lease, slot) USING (slot)
    WHERE j.id = f.id
    RETURNING j.*;
END
$$;

CREATE OR REPLACE FUNCTION spool.claim(queues text[], max_jobs integer, lease interval, worker text)
RETURNS SETOF spool.jobs LANGUAGE sql VOLATILE
SET search_path = pg_catalog, spool, pg_temp AS $$
    SELECT * FROM spool.claim_slots(queues, array_fill(worker, ARRAY[max_jobs]::integer[]),
                                    array_fill(lease, ARRAY[max_jobs]::integer[]))
$$;

-- ---- 3. spool.enqueue() validates, and runs as its owner

-- Why a JSON document cannot be stored, or NULL. jsonb keeps numbers exactly and prints them in
-- full, so '1e131000' (8 bytes) prints as 131,001: each number may have at most max_number_chars
-- characters written out in full, and the whole document, printed as jsonb prints it, at most
-- max_bytes. Each number is sized before it is printed, so the check itself never prints a giant.
CREATE FUNCTION spool.json_problem(doc jsonb, max_bytes integer, max_number_chars integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    bound numeric := 10::numeric ^ max_number_chars::numeric;
    longest bigint;
    number_chars bigint;
    printed bigint;
BEGIN
    SELECT max(n.chars), sum(n.chars) INTO longest, number_chars
    FROM jsonb_path_query(doc, 'strict $.** ? (@.type() == "number")'::jsonpath) AS p(v)
    CROSS JOIN LATERAL (SELECT p.v::numeric AS value) AS x
    CROSS JOIN LATERAL (SELECT CASE
        WHEN abs(x.value) >= bound OR scale(x.value) > max_number_chars THEN max_number_chars::bigint + 1
        ELSE length(x.value::text)::bigint END AS chars) AS n;
    IF longest > max_number_chars THEN
        RETURN format('a number is longer than %s characters written out in full', max_number_chars);
    END IF;
    IF number_chars > max_bytes THEN
        RETURN format('its numbers written out in full are over the limit of %s bytes', max_bytes);
    END IF;
    printed := octet_length(doc::text);
    IF printed > max_bytes THEN
        RETURN format('%s bytes as stored is over the limit of %s', printed, max_bytes);
    END IF;
    RETURN NULL;
END
$$;

-- Why headers cannot be stored, or NULL: they must be a JSON object of strings, as the API's map.
CREATE FUNCTION spool.headers_problem(headers jsonb, max_count integer, max_name integer, max_chars integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, spool, pg_temp AS $$
DECLARE
    h record;
    total bigint := 0;
BEGIN
    IF jsonb_typeof(headers) <> 'object' THEN
        RETURN 'headers: must be a JSON object of strings';
    END IF;
    IF (SELECT count(*) FROM jsonb_object_keys(headers)) > max_count THEN
        RETURN format('headers: more than %s headers', max_count);
    END IF;
    FOR h IN SELECT key, value FROM jsonb_each(headers) LOOP
        IF jsonb_typeof(h.value) <> 'string' THEN
            RETURN format('headers[%L]: must be a string, not %s', left(h.key, 40), jsonb_typeof(h.value));
        ELSIF h.key = '' THEN
            RETURN 'headers['''']: required';
        ELSIF char_length(h.key) > max_name THEN
            RETURN format('headers[%L]: longer than %s characters', left(h.key, 40), max_name);
        END IF;
        total := total + char_length(h.key) + char_length(h.value #>> '{}'::text[]);
    END LOOP;
    IF total > max_chars THEN
        RETURN format('headers: over %s characters in all', max_chars);
    END IF;
    RETURN NULL;
END
$$;

-- Transactional enqueue, as in 0004, now validated with spoold's default limits (server/spoold/
-- config.py, Limits: they are spelled out here, whatever SPOOL_MAX_* a server runs with) and run
-- as the function's owner, so a caller needs EXECUTE on it and nothing on spool.jobs.
CREATE OR REPLACE FUNCTION spool.enqueue(
    queue text,
    payload jsonb,
    run_at timestamptz DEFAULT now(),
    priority smallint DEFAULT 0,
    max_attempts integer DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    headers jsonb DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, spool, pg_temp AS $$
#variable_conflict use_column
DECLARE
    max_name constant integer := 128;          -- Limits.max_name_length
    max_key constant integer := 256;           -- Limits.max_key_length
    max_headers constant integer := 64;        -- Limits.max_headers
    max_header_chars constant integer := 8192; -- Limits.max_header_bytes
    max_payload constant integer := 1048576;   -- Limits.max_payload_bytes
    max_number constant integer := 400;        -- Limits.max_json_number_chars
    max_delay constant interval := interval '30 days';  -- Limits.max_delay
    problem text;
    new_key text := nullif(enqueue.idempotency_key, '');
    new_headers jsonb := CASE WHEN enqueue.headers IN ('{}'::jsonb, 'null'::jsonb) THEN NULL
                              ELSE enqueue.headers END;
    new_id bigint;
BEGIN
    IF enqueue.queue IS NULL OR enqueue.queue = '' THEN
        RAISE EXCEPTION 'queue: required' USING ERRCODE = 'invalid_parameter_value';
    ELSIF char_length(enqueue.queue) > max_name THEN
        RAISE EXCEPTION 'queue: longer than % characters', max_name USING ERRCODE = 'invalid_parameter_value';
    ELSIF enqueue.queue ~ '[\x01-\x20\x7f]' THEN
        RAISE EXCEPTION 'queue: must be printable characters without spaces'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.payload IS NULL THEN
        RAISE EXCEPTION 'payload: required (a JSON document)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    problem := spool.json_problem(enqueue.payload, max_payload, max_number);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'payload: %', problem USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF enqueue.run_at > now() + max_delay THEN
        RAISE EXCEPTION 'run_at: more than % ahead', max_delay USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'max_attempts: must be between 1 and 100' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF char_length(new_key) > max_key THEN
        RAISE EXCEPTION 'idempotency_key: longer than % characters', max_key
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF new_headers IS NOT NULL THEN
        problem := spool.headers_problem(new_headers, max_headers, max_name, max_header_chars);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION '%', problem USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    INSERT INTO spool.jobs AS j (queue, payload_json, content_type, headers, priority, run_at,
        max_attempts, backoff_kind, backoff_initial, backoff_max, backoff_multiplier,
        backoff_jitter, lease_duration, attempt_timeout, idempotency_key)
    SELECT enqueue.queue, enqueue.payload, 'application/json', new_headers, enqueue.priority,
        -- A time already past is due now, as in Enqueue (NULL too: greatest ignores it).
        greatest(enqueue.run_at, now()), coalesce(enqueue.max_attempts, q.max_attempts, 1),
        coalesce(q.backoff_kind, 'exponential'::spool.backoff_kind), b.initial,
        greatest(coalesce(q.backoff_max, interval '5 minutes'), b.initial),
        coalesce(q.backoff_multiplier, 2::double precision), coalesce(q.backoff_jitter, true),
        coalesce(q.lease_duration, interval '30 seconds'), q.attempt_timeout, new_key
    FROM (SELECT 1) AS one
    LEFT JOIN spool.queues q ON q.name = enqueue.queue
    CROSS JOIN LATERAL (SELECT coalesce(q.backoff_initial, interval '1 second') AS initial) AS b
    ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING j.id INTO new_id;
    IF new_id IS NULL THEN
        SELECT j.id INTO new_id FROM spool.jobs j WHERE j.queue = enqueue.queue AND j.idempotency_key = new_key;
    ELSE
        PERFORM pg_notify('spool_ready'::text, enqueue.queue);
    END IF;
    RETURN new_id;
END
$$;

-- Nobody but the owner runs a spool function unless granted: enqueue goes to spool_producer below,
-- the rest stay spoold's. (Per-schema default privileges cannot take back PUBLIC's EXECUTE, so each
-- later migration revokes it for the functions it creates; tests/store/test_privileges.py checks.)
REVOKE ALL ON FUNCTION
    spool.backoff_delay(spool.backoff_kind, interval, interval, double precision, boolean, integer),
    spool.state_after_failure(boolean, boolean, integer, integer),
    spool.notify_watchers(),
    spool.remember_granted_lease(),
    spool.claim_slots(text[], text[], interval[]),
    spool.claim(text[], integer, interval, text),
    spool.concurrency_bucket(text, text, boolean),
    spool.json_problem(jsonb, integer, integer),
    spool.headers_problem(jsonb, integer, integer, integer),
    spool.enqueue(text, jsonb, timestamptz, smallint, integer, text, jsonb)
FROM PUBLIC;

-- The application role: members may call spool.enqueue() and nothing else in the schema. Roles
-- belong to the whole PostgreSQL server, so it is created once (when the migrating role may create
-- roles) and shared by every Spool database there; each database grants it its own EXECUTE.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spool_producer')
       AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
        BEGIN
            CREATE ROLE spool_producer NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by the migration of another database on this server
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spool_producer') THEN
        GRANT USAGE ON SCHEMA spool TO spool_producer;
        GRANT EXECUTE ON FUNCTION spool.enqueue(text, jsonb, timestamptz, smallint, integer, text, jsonb)
            TO spool_producer;
    ELSE
        RAISE NOTICE 'role spool_producer does not exist and % may not create it: see docs/security.md', current_user;
    END IF;
END
$$;

-- ---- 4. A CHECK constraint for what the API's conversion relies on

-- Rows the unvalidated spool.enqueue() of earlier versions let in are repaired first, so that the
-- check holds for every row (a CHECK also applies to each UPDATE, so one bad row would otherwise
-- fail every claim that picked it): a header value that is not a string becomes its JSON text, and
-- headers that are not an object are dropped. (run_at has its own range check, migration 0012.)
UPDATE spool.jobs j SET headers = CASE WHEN jsonb_typeof(j.headers) = 'object' THEN (
        SELECT jsonb_object_agg(h.key, CASE WHEN jsonb_typeof(h.value) = 'string' THEN h.value
                                            ELSE to_jsonb(h.value::text) END)
        FROM jsonb_each(j.headers) AS h) END
WHERE j.headers IS NOT NULL AND (jsonb_typeof(j.headers) <> 'object'
    OR jsonb_path_exists(j.headers, 'strict $.* ? (@.type() != "string")'::jsonpath));

ALTER TABLE spool.jobs ADD CONSTRAINT jobs_headers_strings CHECK (headers IS NULL OR CASE
    WHEN jsonb_typeof(headers) = 'object'
    THEN NOT jsonb_path_exists(headers, 'strict $.* ? (@.type() != "string")'::jsonpath)
    ELSE false END);

-- ---- 5. Listing the rare states newest first

-- ListJobs returns newest first (id DESC). A state that is a sliver of the history (DEAD,
-- CANCELLED) was found by walking the primary key backwards past every other row: the whole table
-- when there are none. Each of these holds only the rows in its state, in id order, so a row enters
-- one when it dies or is cancelled and leaves it when requeued or pruned; Enqueue, claim, heartbeat
-- and Ack never touch them. The queue is a second key column: a search in one queue tests it in the
-- index, never fetching the rows of other queues, and still reads them in id order. The search
-- writes states as literals (store/filters.py) so that a state's index qualifies in any plan.
-- PENDING and RUNNING need none: the backlog is the newest rows, and every running row is in
-- jobs_running_idx (docs/storage.md has the measurements).
CREATE INDEX jobs_dead_idx ON spool.jobs (id, queue) WHERE state = 'dead'::spool.job_state;
CREATE INDEX jobs_cancelled_idx ON spool.jobs (id, queue) WHERE state = 'cancelled'::spool.job_state;
