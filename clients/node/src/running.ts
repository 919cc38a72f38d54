// One leased job while its handler runs: what the handler sees (JobContext), its abort signal,
// and the checkpoint waiting for the next heartbeat.
import { date, decodeBody, encodeBody, JSON_TYPE, millis } from "./convert.js";
import type { Job, StepOutcome } from "./gen/spool/v1/job_pb.js";
import type { LeasedJob } from "./gen/spool/v1/queue_service_pb.js";
import type { EnqueueOptions } from "./client.js";
import type { FollowUp } from "./gen/spool/v1/queue_service_pb.js";
import { jobFollowUp, parentResults, stepFollowUp, type Step } from "./pipelines.js";
import { AttemptLog } from "./logs.js";

/** Why a handler's signal aborted. */
export type StopCause = "lease-lost" | "cancel-requested" | "timed-out" | "shutdown";

/** The reason a handler's AbortSignal carries; `cause` says which of the four it was. */
export class JobAbortedError extends Error {
  override name = "JobAbortedError";
  constructor(
    readonly stopCause: StopCause,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What a handler gets: the job, its decoded payload, the previous checkpoint and an AbortSignal. */
export interface JobContext {
  readonly job: Job;
  readonly id: string;
  readonly queue: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The payload parsed as JSON (for JSON content types), else the raw bytes. */
  readonly payload: unknown;
  /** What an earlier attempt saved with checkpoint() (parsed as JSON when it is), or undefined. */
  readonly previousCheckpoint: unknown;
  /** Aborted when the lease is lost, cancellation is requested, the attempt times out or shutdown's grace ends. */
  readonly signal: AbortSignal;
  readonly leaseToken: string;
  readonly leaseExpiresAt: Date | undefined;
  /** A pipeline step's parents' results by step name (parsed JSON, else bytes); empty for a plain job. */
  readonly parents: Readonly<Record<string, unknown>>;
  /** A pipeline step's parents' outcomes (job id, state, result, error) by step name. */
  readonly parentOutcomes: Readonly<Record<string, StepOutcome>>;
  /** Saves progress with the next heartbeat; a later attempt sees it as previousCheckpoint. */
  checkpoint(value: unknown): void;
  /**
   * Adds a line to this attempt's log, kept with the attempt on the server (`spool logs JOB_ID`);
   * sent with the next heartbeat and the outcome, so a crash keeps what was sent.
   */
  log(message: string, level?: string): void;
  /**
   * Runs fn once across the job's attempts: its result (JSON-encodable) is saved in the job's
   * checkpoint and acknowledged by the server before this resolves, and a later attempt gets it
   * back without running fn again. A step that throws is not saved (docs/pipelines.md).
   */
  step<T>(name: string, fn: () => T | Promise<T>): Promise<T>;
  /** The results of the durable steps completed so far, in this attempt or earlier ones. */
  readonly steps: Readonly<Record<string, unknown>>;
  /**
   * A job to create with this job's Ack, in its transaction: it exists if and only if the Ack is
   * accepted (a stale ack's follow-ups are refused with it). Sent when the handler returns.
   */
  followUp(queue: string, payload?: unknown, options?: EnqueueOptions): void;
  /** A step to add to this step's pipeline with its Ack: `after` names steps of the pipeline or added before it. */
  addStep(step: Step): void;
}

// A checkpoint with durable steps is {"spool.steps": {name: result}, "spool.checkpoint": value}.
const STEPS = "spool.steps";
const USER = "spool.checkpoint";

function envelope(value: unknown): { [STEPS]: Record<string, unknown>; [USER]?: unknown } | undefined {
  if (typeof value === "object" && value !== null && !(value instanceof Uint8Array)) {
    const steps = (value as Record<string, unknown>)[STEPS];
    if (typeof steps === "object" && steps !== null) {
      return value as { [STEPS]: Record<string, unknown>; [USER]?: unknown };
    }
  }
  return undefined;
}

function decodeCheckpoint(bytes: Uint8Array): unknown {
  if (bytes.length === 0) {
    return undefined;
  }
  try {
    return decodeBody(bytes, JSON_TYPE);
  } catch {
    return bytes; // saved as raw bytes, not JSON
  }
}

export class RunningJob implements JobContext {
  readonly job: Job;
  readonly leaseToken: string;
  readonly leaseExpiresAt: Date | undefined;
  readonly payload: unknown;
  readonly previousCheckpoint: unknown;
  readonly parentOutcomes: Readonly<Record<string, StepOutcome>>;
  readonly steps: Record<string, unknown>;
  /** Sent with the Ack (followUp, addStep). */
  readonly followUps: FollowUp[] = [];
  /** Set by the Worker: stores a checkpoint now, resolving once the server has it. */
  saver: ((checkpoint: Uint8Array) => Promise<void>) | undefined;
  private userCheckpoint: unknown;
  private parentValues: Record<string, unknown> | undefined;
  /** Set once the outcome is decided (acked, nacked, or the lease is gone): later events change nothing. */
  settled = false;
  nextBeatAt: number;
  /** The attempt's log lines not yet sent. */
  readonly logs = new AttemptLog();
  private readonly controller = new AbortController();
  private pending: Uint8Array | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(
    leased: LeasedJob,
    readonly beatIntervalMs: number,
  ) {
    this.job = leased.job!;
    this.leaseToken = leased.leaseToken;
    this.leaseExpiresAt = date(leased.leaseExpiresAt);
    this.payload = decodeBody(this.job.payload, this.job.contentType);
    const previous = decodeCheckpoint(this.job.checkpoint);
    const wrapped = envelope(previous);
    this.previousCheckpoint = wrapped === undefined ? previous : wrapped[USER];
    this.steps = wrapped === undefined ? {} : { ...wrapped[STEPS] };
    this.userCheckpoint = this.previousCheckpoint instanceof Uint8Array ? undefined : this.previousCheckpoint;
    this.parentOutcomes = leased.parents;
    this.nextBeatAt = Date.now() + beatIntervalMs;
    // The attempt's timeout runs from its lease: counted from now, not from the server's deadline
    // against this machine's clock, which may be off.
    const timeoutMs = leased.attemptDeadline !== undefined ? millis(this.job.attemptTimeout) : undefined;
    if (timeoutMs !== undefined) {
      this.deadlineTimer = setTimeout(() => this.abort("timed-out", "the attempt ran past its timeout"), timeoutMs);
      this.deadlineTimer.unref();
    }
  }

  get id(): string {
    return this.job.id;
  }
  get parents(): Readonly<Record<string, unknown>> {
    this.parentValues ??= parentResults(this.parentOutcomes);
    return this.parentValues;
  }
  get queue(): string {
    return this.job.queue;
  }
  get attempt(): number {
    return this.job.attempt;
  }
  get maxAttempts(): number {
    return this.job.maxAttempts;
  }
  get headers(): Readonly<Record<string, string>> {
    return this.job.headers;
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  followUp(queue: string, payload?: unknown, options: EnqueueOptions = {}): void {
    this.followUps.push(jobFollowUp(queue, payload, options));
  }

  addStep(step: Step): void {
    this.followUps.push(stepFollowUp(step));
  }

  checkpoint(value: unknown): void {
    this.userCheckpoint = value;
    this.pending = this.checkpointBytes();
  }

  async step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    if (Object.hasOwn(this.steps, name)) {
      return this.steps[name] as T;
    }
    if (this.saver === undefined) {
      throw new Error("job.step needs a job leased by a Worker");
    }
    const value = await fn();
    this.steps[name] = decodeBody(encodeBody(value ?? null).bytes, JSON_TYPE); // as a later attempt sees it
    const saved = this.checkpointBytes();
    this.pending = undefined; // `saved` holds the handler's latest checkpoint too
    await this.saver(saved);
    return this.steps[name] as T;
  }

  private checkpointBytes(): Uint8Array {
    if (Object.keys(this.steps).length === 0) {
      return encodeBody(this.userCheckpoint).bytes;
    }
    if (this.userCheckpoint instanceof Uint8Array) {
      throw new TypeError("a job with durable steps checkpoints JSON values, not bytes");
    }
    const wrapped: Record<string, unknown> = { [STEPS]: this.steps };
    if (this.userCheckpoint !== undefined) {
      wrapped[USER] = this.userCheckpoint;
    }
    return encodeBody(wrapped).bytes;
  }

  log(message: string, level = "INFO"): void {
    this.logs.write(level, String(message));
  }

  /** The checkpoint not yet sent, handed over once. */
  takeCheckpoint(): Uint8Array | undefined {
    const value = this.pending;
    this.pending = undefined;
    return value;
  }

  /** Puts back a checkpoint whose heartbeat failed in transit, unless a newer one was saved since. */
  restoreCheckpoint(value: Uint8Array | undefined): void {
    this.pending ??= value;
  }

  abort(cause: StopCause, message: string, error?: unknown): void {
    if (!this.controller.signal.aborted) {
      this.controller.abort(new JobAbortedError(cause, message, { cause: error }));
    }
  }

  get stopCause(): StopCause | undefined {
    const reason: unknown = this.controller.signal.reason;
    return reason instanceof JobAbortedError ? reason.stopCause : undefined;
  }

  finish(): void {
    this.settled = true;
    clearTimeout(this.deadlineTimer);
  }
}
