-- A Heartbeat without a lease_duration extends the lease by the length the Lease call granted, as
-- the API promises, not by the job's default: a worker that leased for 10 minutes and heartbeats
-- every 5 must not see its lease shrink to 30 seconds and its job run twice.
ALTER TABLE spool.jobs ADD COLUMN lease_granted interval;

-- Set on every claim, whichever statement claims (a new lease token is a new claim), so the claim
-- path itself needs no change.
CREATE FUNCTION spool.remember_granted_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lease_granted := NEW.lease_expires_at - NEW.started_at;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_remember_granted_lease BEFORE UPDATE OF lease_token ON spool.jobs
    FOR EACH ROW WHEN (NEW.lease_token IS DISTINCT FROM OLD.lease_token AND NEW.state = 'running')
    EXECUTE FUNCTION spool.remember_granted_lease();
