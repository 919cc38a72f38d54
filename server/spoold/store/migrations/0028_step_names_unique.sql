-- A step's name is unique in its pipeline (issue 22): EnqueuePipeline and an Ack's follow-up
-- steps check it in code (the follow-ups under the pipeline's row lock), and this index makes it
-- a fact of the table, whatever writes a step. Partial: plain jobs (pipeline_id NULL) carry no
-- entry, so their inserts and deletes do not pay for it. It also serves named_steps, which looks a
-- pipeline's steps up by name. The store answers a violation INVALID_ARGUMENT STEP_EXISTS naming
-- the step (store/followups.py), never INTERNAL.
CREATE UNIQUE INDEX jobs_pipeline_step_name_idx ON spool.jobs (pipeline_id, step_name)
    WHERE pipeline_id IS NOT NULL;
