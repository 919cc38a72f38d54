// Keeps the worker's leases alive: one HeartbeatBatch for every job due, each beaten about every
// third of its lease, carrying saved checkpoints; a refused item aborts that job's handler.
import type { Client, HeartbeatItem, HeartbeatResult } from "./client.js";
import { CheckpointRateLimitedError, isUnanswered, JobNotFoundError, LeaseLostError, SpoolError } from "./errors.js";
import type { RunningJob } from "./running.js";

export interface Logger {
  /** Start-up and events that need no action; optional, so a logger of warn and error will do. */
  info?(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

// Beat early any job due within this share of its interval, so neighbours share one call.
const COALESCE = 0.25;
// The server's default batch limit.
const MAX_BATCH = 1000;
const MIN_TIMEOUT_MS = 1000;
// The pause before a checkpoint refused as too soon goes again, when the server named none.
const CHECKPOINT_RETRY_MS = 100;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Heartbeater {
  private readonly jobs = new Set<RunningJob>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly client: Client,
    private readonly leaseDurationMs: number | undefined,
    private readonly log: Logger,
  ) {}

  add(job: RunningJob): void {
    this.jobs.add(job);
    this.schedule();
  }

  delete(job: RunningJob): void {
    this.jobs.delete(job);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.inFlight;
  }

  /**
   * Stores a checkpoint now (a durable step's result) and resolves once the server has it; throws
   * what the server answered. A beat in flight goes first: its older checkpoint must not land
   * after this one and erase the step. A checkpoint the server refuses as too soon after the job's
   * last one (CHECKPOINT_RATE_LIMITED) goes again after the delay the server names.
   */
  async save(job: RunningJob, checkpoint: Uint8Array): Promise<void> {
    for (let tries = 1; ; tries++) {
      while (this.inFlight !== undefined) {
        await this.inFlight;
      }
      try {
        const heartbeat = await this.client.heartbeat(job.id, job.leaseToken, {
          leaseDurationMs: this.leaseDurationMs,
          checkpoint,
        });
        this.apply(job, { jobId: job.id, heartbeat });
        return;
      } catch (err) {
        if (err instanceof CheckpointRateLimitedError) {
          tries--; // not a failure: the server said when
          await pause(err.retryDelayMs ?? CHECKPOINT_RETRY_MS);
          continue;
        }
        if (!(err instanceof SpoolError) || !isUnanswered(err) || tries >= 5) {
          throw err;
        }
        await pause(200 * tries);
      }
    }
  }

  private schedule(): void {
    if (this.closed || this.inFlight !== undefined) {
      return; // the running beat reschedules when it ends
    }
    clearTimeout(this.timer);
    let earliest = Infinity;
    for (const job of this.jobs) {
      earliest = Math.min(earliest, job.nextBeatAt);
    }
    if (earliest === Infinity) {
      return;
    }
    this.timer = setTimeout(() => {
      this.inFlight = this.beat().finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
    }, Math.max(0, earliest - Date.now()));
  }

  private due(): RunningJob[] {
    const now = Date.now();
    return [...this.jobs].filter((j) => !j.settled && j.nextBeatAt - j.beatIntervalMs * COALESCE <= now);
  }

  private async beat(): Promise<void> {
    const due = this.due();
    for (let i = 0; i < due.length; i += MAX_BATCH) {
      await this.beatBatch(due.slice(i, i + MAX_BATCH));
    }
  }

  private async beatBatch(jobs: RunningJob[]): Promise<void> {
    const items: HeartbeatItem[] = jobs.map((j) => ({
      jobId: j.id,
      leaseToken: j.leaseToken,
      leaseDurationMs: this.leaseDurationMs,
      checkpoint: j.takeCheckpoint(),
      logs: j.logs.take(),
    }));
    try {
      // A beat that takes longer than the interval is no use: give up and retry soon.
      // Whole milliseconds: grpc-timeout takes an integer, and a fractional one is answered INTERNAL.
      const timeoutMs = Math.max(MIN_TIMEOUT_MS, Math.floor(Math.min(...jobs.map((j) => j.beatIntervalMs))));
      const results = await this.client.heartbeatBatch(items, { timeoutMs });
      jobs.forEach((job, i) => {
        const error = results[i]!.error;
        if (error instanceof CheckpointRateLimitedError) {
          this.again(job, items[i]!, error); // nothing stored and the lease not extended: again soon
        } else {
          this.apply(job, results[i]!);
        }
      });
    } catch (err) {
      jobs.forEach((j, i) => {
        j.restoreCheckpoint(items[i]!.checkpoint);
        j.logs.putBack(items[i]!.logs); // sent again with the next beat
      });
      if (err instanceof SpoolError && !isUnanswered(err)) {
        // The batch as a whole was refused (e.g. one checkpoint too large): beat one by one.
        this.log.warn("spool worker: heartbeat batch refused, beating one by one", err.message);
        await Promise.all(jobs.map((j) => this.beatOne(j)));
        return;
      }
      // No answer (server restarting, database away, a server fault): retry soon, well before the leases run out.
      this.log.warn("spool worker: heartbeat failed, retrying", err);
      jobs.forEach((j) => (j.nextBeatAt = Date.now() + Math.min(1000, j.beatIntervalMs / 3)));
    }
  }

  private async beatOne(job: RunningJob): Promise<void> {
    const checkpoint = job.takeCheckpoint();
    const logs = job.logs.take();
    try {
      const heartbeat = await this.client.heartbeat(job.id, job.leaseToken, {
        leaseDurationMs: this.leaseDurationMs,
        checkpoint,
        logs,
      });
      this.apply(job, { jobId: job.id, heartbeat });
    } catch (err) {
      if (err instanceof CheckpointRateLimitedError) {
        this.again(job, { jobId: job.id, leaseToken: job.leaseToken, checkpoint, logs }, err);
      } else if (err instanceof SpoolError && !isUnanswered(err)) {
        if (checkpoint !== undefined && !(err instanceof LeaseLostError)) {
          this.log.error(`spool worker: job ${job.id}: checkpoint refused, dropped`, err.message);
        }
        this.apply(job, { jobId: job.id, error: err });
      } else {
        job.restoreCheckpoint(checkpoint); // sent again with the next beat
        job.logs.putBack(logs);
      }
    }
  }

  /** A beat whose checkpoint came too soon: kept, and beaten again after the server's delay. */
  private again(job: RunningJob, item: HeartbeatItem, err: CheckpointRateLimitedError): void {
    job.restoreCheckpoint(item.checkpoint);
    job.logs.putBack(item.logs);
    job.nextBeatAt = Date.now() + (err.retryDelayMs ?? CHECKPOINT_RETRY_MS);
  }

  private apply(job: RunningJob, result: HeartbeatResult): void {
    job.nextBeatAt = Date.now() + job.beatIntervalMs;
    if (result.error instanceof LeaseLostError || result.error instanceof JobNotFoundError) {
      // Another worker owns the job now, or it is gone: stop the handler, report nothing.
      job.abort("lease-lost", `lease on job ${job.id} lost: ${result.error.message}`, result.error);
      this.jobs.delete(job);
    } else if (result.error !== undefined) {
      this.log.error(`spool worker: job ${job.id}: heartbeat refused`, result.error.message);
    } else if (result.heartbeat?.cancelRequested) {
      job.abort("cancel-requested", `job ${job.id} was cancelled`);
    }
  }
}
