// Spool's Node client: Client for producers and operators, Worker for handlers.
export * from "./client.js";
export * from "./errors.js";
export { Schedules, intervalMs, type ScheduleOptions, type ScheduleSpec } from "./schedules.js";
export type { Schedule, ScheduleFire } from "./gen/spool/v1/schedule_pb.js";
export { decodeBody } from "./convert.js";
export { Pipelines, step, parentResults, type Step, type StepOptions, type PipelineOptions } from "./pipelines.js";
export { Pipeline_State as PipelineState, type Pipeline, type PipelineStep } from "./gen/spool/v1/pipeline_service_pb.js";
export { Worker, PermanentError, RetryError, JobAbortedError, type WorkerOptions, type Handler, type JobContext, type StopCause } from "./worker.js";
export type { Logger } from "./heartbeater.js";
export {
  Job_State as JobState,
  BackoffPolicy_Kind as BackoffKind,
  Attempt_Outcome as AttemptOutcome,
  Job_ConcurrencyScope as ConcurrencyScope,
} from "./gen/spool/v1/job_pb.js";
export type { Job, Attempt, JobError, StepOutcome } from "./gen/spool/v1/job_pb.js";
export type { LeasedJob } from "./gen/spool/v1/queue_service_pb.js";
