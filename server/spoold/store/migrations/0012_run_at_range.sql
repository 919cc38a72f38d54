-- A job's run_at stays within what every door can represent: the Timestamp of the API and
-- Python's datetime (years 1 to 9999). asyncpg sends the first and last microseconds of that range
-- as -infinity and infinity, and an infinite run_at made every queue's stats fail ("cannot subtract
-- infinite timestamps"); a year past 9999, possible through spool.enqueue(), could not be read back.
-- Jobs already outside the range are due now (run_at as created_at, the earliest it could be).
UPDATE spool.jobs SET run_at = created_at
WHERE NOT run_at BETWEEN '0001-01-01 00:00:00.000001+00' AND '9999-12-31 23:59:59.999998+00';

ALTER TABLE spool.jobs ADD CONSTRAINT jobs_run_at_range
    CHECK (run_at BETWEEN '0001-01-01 00:00:00.000001+00' AND '9999-12-31 23:59:59.999998+00');
