-- A Nack with release hands a job back unfinished (a worker shutting down): its attempt is
-- recorded as released and does not count against max_attempts. The new value is only used by
-- queries run after this migration commits, as PostgreSQL requires for a value added in a
-- transaction.
ALTER TYPE spool.attempt_outcome ADD VALUE 'released';
