-- Bulk operations: a requeue or cancel over every job matching a filter, run by the server in
-- batches (loops/bulk.py), with a record of who started it, when, on which filter, and how many.
--
-- The batches walk job ids upward from `cursor` and stop at `max_id`, the newest job when the
-- operation started: every matching job is visited once, so a job requeued that dies again is
-- not requeued twice, and jobs enqueued meanwhile are not touched.
CREATE TABLE spool.bulk_operations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action text NOT NULL,
    -- The filter as given (the API's JSON form), shown in the record.
    filter jsonb NOT NULL,
    -- The same filter as the server reads it back for each batch.
    criteria jsonb NOT NULL,
    include_succeeded boolean NOT NULL DEFAULT false,
    state text NOT NULL DEFAULT 'running',
    expected bigint NOT NULL,
    done bigint NOT NULL DEFAULT 0,
    cursor bigint NOT NULL DEFAULT 0,
    max_id bigint NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT bulk_operations_action CHECK (action IN ('requeue', 'cancel')),
    CONSTRAINT bulk_operations_state CHECK (state IN ('running', 'succeeded', 'aborted')),
    CONSTRAINT bulk_operations_counts CHECK (expected >= 0 AND done >= 0 AND cursor >= 0 AND max_id >= 0),
    CONSTRAINT bulk_operations_finished CHECK ((state = 'running') = (finished_at IS NULL))
);

-- The runner's pick: the running operations, oldest first.
CREATE INDEX bulk_operations_running_idx ON spool.bulk_operations (id) WHERE state = 'running';
