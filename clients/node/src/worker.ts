// The Worker: leases batches from its handlers' queues with a long poll, runs up to `concurrency`
// handlers at once, heartbeats them, and finishes each with Ack (result, coalesced into AckBatch)
// or Nack (error, one call per job). In a busy queue the Lease calls are seldom needed: each AckBatch
// asks for as many new jobs as it acks (AckBatchRequest.next), so the slots its acks free are filled
// in the same call, and the lease loop long-polls only when slots are actually free.
import { withProcessSpan } from "./tracing.js";
import { hostname } from "node:os";
import { AckBatcher, untilAnswered } from "./acks.js";
import { watchCancels } from "./cancels.js";
import type { AckItem, Client, NextOptions } from "./client.js";
import { encodeBody, millis } from "./convert.js";
import { isResultRefused, LeaseLostError } from "./errors.js";
import type { LeasedJob } from "./gen/spool/v1/queue_service_pb.js";
import { Heartbeater, type Logger } from "./heartbeater.js";
import { nackOf } from "./outcome.js";
import { RunningJob, type JobContext } from "./running.js";
import type { ScheduleOptions, ScheduleSpec } from "./schedules.js";

export type { JobContext } from "./running.js";
export { JobAbortedError, type StopCause } from "./running.js";

/** Returns the job's result (sent as JSON unless a Uint8Array); throwing nacks the job. */
export type Handler = (job: JobContext) => Promise<unknown> | unknown;

export interface WorkerOptions {
  /** Handlers running at once; default 10. */
  concurrency?: number;
  /** Lease asked for each claim; default the job's own lease_duration. Heartbeats come every third of it. */
  leaseDurationMs?: number;
  /** Long poll per Lease call; default 10 s (server maximum 60 s). */
  pollWaitMs?: number;
  /** Recorded on each attempt; default host-pid. */
  workerId?: string;
  /** On stop, how long running handlers may take before they are aborted and released; default 10 s. */
  graceMs?: number;
  /** Stop gracefully on SIGTERM and SIGINT while run() is going; default true. */
  handleSignals?: boolean;
  logger?: Logger;
}

/** Throw (or set `retryable = false` on any error) to send the job straight to DEAD. */
export class PermanentError extends Error {
  override name = "PermanentError";
  readonly retryable = false;
}

/** Throw to fail this attempt and retry after `retryAfterMs` (default: the job's backoff). */
export class RetryError extends Error {
  override name = "RetryError";
  constructor(
    message = "retry requested",
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const DEFAULT_LEASE_MS = 30_000;
const MAX_RETRY_DELAY_MS = 5_000;
const MAX_LEASE_JOBS = 1000;
const LEASE_CUTOFF_MS = 1000;

/** The Nack sent when the server refuses a job's result for good (invalid, or over the size limit). */
class ResultRefused extends Error {
  override name = "ResultRefused";
}

export class Worker {
  readonly workerId: string;
  private readonly handlers = new Map<string, Handler>();
  private readonly tasks = new Map<RunningJob, Promise<void>>();
  private readonly heartbeater: Heartbeater;
  private readonly acks: AckBatcher;
  private readonly log: Logger;
  private readonly opts: Required<Omit<WorkerOptions, "leaseDurationMs" | "logger" | "workerId">>;
  /** Aborts the Lease long poll (shortly after stop: see shutdown). */
  private readonly poll = new AbortController();
  /** Aborted at once by stop: ends waits for a free slot or a retry delay. */
  private readonly halt = new AbortController();
  private slotFreed: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  private leasing: Promise<void> | undefined;
  /** Set when shutdown's grace is over: jobs an AckBatch still hands over are released, not run. */
  private graceOver = false;
  /** Releases of jobs handed over after the grace, until answered. */
  private readonly releasing = new Set<Promise<void>>();
  /** Schedules declared with schedule(), upserted when run() starts. */
  private readonly declared = new Map<string, ScheduleSpec>();
  /** Aborted when shutdown stops waiting for outcomes to be answered (the leases are over by then). */
  private readonly giveUp = new AbortController();
  /** Ends the WatchCancels stream once every job is finished. */
  private readonly unwatch = new AbortController();
  private cancelStream = false;
  /** The longest lease of any job started: how long shutdown waits for outcomes to be answered. */
  private longestLeaseMs = 0;

  constructor(
    private readonly client: Client,
    private readonly options: WorkerOptions = {},
  ) {
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}`;
    this.log = options.logger ?? console;
    this.opts = {
      concurrency: options.concurrency ?? 10,
      pollWaitMs: options.pollWaitMs ?? 10_000,
      graceMs: options.graceMs ?? 10_000,
      handleSignals: options.handleSignals ?? true,
    };
    this.heartbeater = new Heartbeater(client, options.leaseDurationMs, this.log);
    this.acks = new AckBatcher(
      client,
      this.log,
      {
        next: (acked) => this.refill(acked),
        start: (leased) => leased.forEach((l) => this.take(l)),
      },
      this.giveUp.signal,
    );
  }

  /**
   * Declares a schedule, created or updated on the server when run() starts: at each fire time of
   * `when` ("0 3 * * *", "@hourly", "every 30s"), one job in options.queue. With a handler, it also
   * handles that queue. Many workers may declare the same schedule; an operator's pause is kept.
   */
  schedule(when: string, options: ScheduleOptions, handler?: Handler): this {
    const spec: ScheduleSpec = { ...options, when, name: options.name ?? options.queue };
    this.declared.set(spec.name, spec);
    if (handler !== undefined) this.handle(options.queue, handler);
    return this;
  }

  /** Registers the handler for one queue; returns the worker for chaining. */
  handle(queue: string, handler: Handler): this {
    this.handlers.set(queue, handler);
    return this;
  }

  /** Jobs holding a slot: leased, and not yet both finished and answered by the server. */
  get running(): number {
    return this.tasks.size;
  }

  /** Works until stop() (or SIGTERM/SIGINT), then resolves once every job is finished. */
  async run(): Promise<void> {
    if (this.handlers.size === 0) {
      throw new Error("spool worker: no handlers; call handle(queue, fn) first");
    }
    const onSignal = () => void this.stop();
    if (this.opts.handleSignals) {
      process.on("SIGTERM", onSignal).on("SIGINT", onSignal);
    }
    try {
      for (const spec of this.declared.values()) await this.client.schedules.upsert(spec);
      this.log.info?.(
        `spool worker ${this.workerId} started: queues ${[...this.handlers.keys()].join(", ")}, ` +
          `concurrency ${this.opts.concurrency}, server ${this.client.address}`,
      );
      const watching = watchCancels(this.client, this.workerId, (id) => this.cancelled(id), this.log, this.unwatch.signal);
      this.leasing = this.leaseLoop();
      await this.leasing;
      await (this.stopping ?? this.stop());
      this.unwatch.abort();
      await watching;
    } finally {
      this.unwatch.abort();
      process.off("SIGTERM", onSignal).off("SIGINT", onSignal);
    }
  }

  /** Stops leasing, lets running handlers finish within the grace, then aborts and releases the rest. */
  stop(graceMs: number = this.opts.graceMs): Promise<void> {
    this.stopping ??= this.shutdown(graceMs);
    return this.stopping;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.halt.abort();
    this.slotFreed?.();
    // A Lease in flight may already have claimed jobs: give it a moment to hand them over (they
    // run within the grace) rather than cancel it and leave them to lease expiry.
    const cutoff = setTimeout(() => this.poll.abort(), Math.min(LEASE_CUTOFF_MS, graceMs));
    await this.leasing;
    clearTimeout(cutoff);
    this.poll.abort();
    if (!(await this.drain(graceMs))) {
      this.graceOver = true;
      const left = [...this.tasks.keys()];
      const running = left.filter((job) => !job.settled).length;
      if (running > 0) {
        this.log.warn(`spool worker: grace period over: releasing ${running} jobs still running`);
      }
      await Promise.all(left.map((job) => this.abandon(job)));
    }
    // An AckBatch sent before stop() asked for the next jobs: once it is answered nothing more can be
    // handed over (later ones ask for none), and what came after the grace is being released.
    // Outcomes are repeated through outages, but not past the leases: after that the reaper has the jobs.
    const patience = setTimeout(() => {
      this.log.error("spool worker: stopping with outcomes unreported; their jobs will be retried when their leases expire");
      this.giveUp.abort();
    }, this.longestLeaseMs);
    await this.acks.idle();
    await Promise.all(this.releasing);
    clearTimeout(patience);
    await this.heartbeater.close();
  }

  /**
   * Waits up to graceMs for every job to finish, including jobs an AckBatch in flight hands over
   * meanwhile (they run within the grace, as those of a Lease in flight do). False if some are left.
   */
  private async drain(graceMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => (timer = setTimeout(() => r(false), graceMs)));
    try {
      while (this.tasks.size > 0) {
        const drained = Promise.all(this.tasks.values()).then(() => true);
        if (!(await Promise.race([drained, timedOut]))) {
          return false;
        }
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  private async leaseLoop(): Promise<void> {
    let failures = 0;
    while (this.stopping === undefined) {
      const free = this.opts.concurrency - this.tasks.size;
      if (free <= 0) {
        await new Promise<void>((r) => (this.slotFreed = r));
        continue;
      }
      try {
        const leased = await this.client.lease([...this.handlers.keys()], {
          maxJobs: Math.min(free, MAX_LEASE_JOBS),
          leaseDurationMs: this.options.leaseDurationMs,
          waitMs: this.opts.pollWaitMs,
          workerId: this.workerId,
          signal: this.poll.signal,
        });
        failures = 0;
        leased.forEach((l) => this.take(l));
      } catch (err) {
        if (this.stopping !== undefined) {
          break;
        }
        failures += 1;
        this.log.warn(`spool worker: lease failed (${failures} in a row), retrying`, err);
        await this.pause(Math.min(MAX_RETRY_DELAY_MS, 100 * 2 ** failures));
      }
    }
  }

  /**
   * What an AckBatch asks for after its acks: a job for each slot they free, so the slots pass
   * straight to new jobs (the AckBatcher starts them before it answers the acks). None once stopping.
   */
  private refill(acked: number): NextOptions | undefined {
    if (this.stopping !== undefined) {
      return undefined;
    }
    return {
      queues: [...this.handlers.keys()],
      maxJobs: Math.min(acked, MAX_LEASE_JOBS),
      leaseDurationMs: this.options.leaseDurationMs,
      workerId: this.workerId,
    };
  }

  /** True once the server pushes this worker's cancellations (WatchCancels); else heartbeats bring them. */
  get hearsCancels(): boolean {
    return this.cancelStream;
  }

  /** A cancellation pushed by the server (WatchCancels): stops the handler as a heartbeat's answer would. */
  private cancelled(jobId: string): void {
    if (jobId === "") {
      this.cancelStream = true; // the stream is registered
      return;
    }
    for (const job of this.tasks.keys()) {
      if (job.id === jobId && !job.settled) job.abort("cancel-requested", `job ${job.id} was cancelled`);
    }
  }

  /** Starts a leased job, or, once shutdown's grace is over, hands it straight back. */
  private take(leased: LeasedJob): void {
    if (this.graceOver) {
      this.releaseUnstarted(leased);
    } else {
      this.start(leased);
    }
  }

  /** Releases a job that arrived too late to run: another worker can take it at once, no attempt spent. */
  private releaseUnstarted(leased: LeasedJob): void {
    const id = leased.job!.id;
    const error = { type: "WorkerShutdown", message: `worker ${this.workerId} stopped before the job started` };
    const release = this.report(id, () => this.client.nack(id, leased.leaseToken, { error, release: true }));
    this.releasing.add(release);
    void release.finally(() => this.releasing.delete(release));
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.halt.signal;
      const onHalt = () => (clearTimeout(timer), resolve());
      const timer = setTimeout(() => (signal.removeEventListener("abort", onHalt), resolve()), ms);
      signal.addEventListener("abort", onHalt, { once: true });
    });
  }

  /**
   * The lease granted: the length asked for, else the job's own. A duration, never the server's
   * timestamp minus this machine's clock, so a worker whose clock is off still beats in time.
   */
  private leaseMs(leased: LeasedJob): number {
    return this.options.leaseDurationMs ?? millis(leased.job?.leaseDuration) ?? DEFAULT_LEASE_MS;
  }

  // A job holds its slot until execute() resolves, which is after its Ack or Nack is answered: so the
  // worker never holds more than `concurrency` leases however slow the server is (backpressure).
  // Heartbeats stop when the outcome is decided (job.finish() marks it settled): a Nack goes out at
  // once, and an Ack waits at most for the AckBatch in flight and then its own (at most `concurrency`
  // Acks are ever pending), so the rest of the lease covers it.
  // Jobs an AckBatch leases are started before its acks are answered, so a slot passes from the acked
  // job to the new one without ever looking free. Entries are the RunningJob objects, not job ids: an
  // AckBatch whose stale ack is refused may lease that same job again while its old entry is still
  // here, and the old entry's cleanup must not remove (or un-heartbeat) the new one.
  private start(leased: LeasedJob): void {
    const leaseMs = this.leaseMs(leased);
    this.longestLeaseMs = Math.max(this.longestLeaseMs, leaseMs);
    const job = new RunningJob(leased, leaseMs / 3);
    job.saver = (checkpoint) => this.heartbeater.save(job, checkpoint);
    this.heartbeater.add(job);
    const task = this.execute(job).finally(() => {
      this.heartbeater.delete(job);
      this.tasks.delete(job);
      this.slotFreed?.();
      this.slotFreed = undefined;
    });
    this.tasks.set(job, task);
  }

  private async execute(job: RunningJob): Promise<void> {
    const handler = this.handlers.get(job.queue);
    let result: unknown;
    try {
      if (handler === undefined) {
        throw new PermanentError(`no handler for queue ${job.queue}`);
      }
      // In its CONSUMER span when the job carries a trace and OpenTelemetry is installed (tracing.ts).
      result = await withProcessSpan(job, async () => handler(job));
    } catch (err) {
      await this.fail(job, err);
      return;
    }
    await this.succeed(job, result);
  }

  private async succeed(job: RunningJob, result: unknown): Promise<void> {
    if (job.settled) {
      return;
    }
    if (job.stopCause !== undefined) {
      // The handler ignored its signal and returned anyway: report the stop, not a success.
      await this.fail(job, job.signal.reason);
      return;
    }
    let ack: AckItem;
    try {
      ack = ackOf(job, result);
    } catch (err) {
      await this.fail(job, err); // an unencodable result (e.g. a BigInt) fails like a throw
      return;
    }
    job.finish();
    const refusal = await this.acks.ack(ack, job.attempt);
    if (refusal === undefined) {
      return;
    }
    if (refusal instanceof LeaseLostError) {
      this.log.warn(`spool worker: job ${job.id} was no longer ours to finish`, refusal.message);
    } else if (isResultRefused(refusal)) {
      // Only a refused result fails the attempt: any other failure was repeated until answered.
      this.log.warn(`spool worker: job ${job.id}: result refused, failing the attempt`, (refusal as Error).message);
      const err = new ResultRefused((refusal as Error).message, { cause: refusal });
      const nack = { ...nackOf(err, job.takeCheckpoint()), logs: job.logs.take() };
      await this.report(job.id, () => this.client.nack(job.id, job.leaseToken, nack));
    } else {
      this.log.error(`spool worker: could not finish job ${job.id}; its lease will expire`, refusal);
    }
  }

  private async fail(job: RunningJob, err: unknown): Promise<void> {
    if (job.settled || job.stopCause === "lease-lost") {
      job.finish();
      return; // someone else owns the job now: reporting would be refused with LEASE_LOST
    }
    job.finish();
    if (job.stopCause === undefined) {
      const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.log.warn(`spool worker: job ${job.id} (${job.queue}, attempt ${job.attempt} of ${job.maxAttempts}) failed: ${why}`);
    }
    const nack = { ...nackOf(err, job.takeCheckpoint()), logs: job.logs.take() };
    await this.report(job.id, () => this.client.nack(job.id, job.leaseToken, nack));
  }

  /**
   * Releases a job still running when the grace ends: another worker can take it at once, and the
   * interrupted attempt is not counted, so a redeploy costs the job nothing.
   */
  private async abandon(job: RunningJob): Promise<void> {
    job.abort("shutdown", "the worker is shutting down");
    if (job.settled) {
      return;
    }
    job.finish();
    const error = { type: "WorkerShutdown", message: `worker ${this.workerId} stopped before the job finished` };
    const nack = { error, release: true, checkpoint: job.takeCheckpoint(), logs: job.logs.take() };
    await this.report(job.id, () => this.client.nack(job.id, job.leaseToken, nack));
  }

  /** Sends a Nack, repeated until answered (or shutdown gives up). */
  private async report(jobId: string, send: () => Promise<unknown>): Promise<void> {
    try {
      await untilAnswered(send, { giveUp: this.giveUp.signal, log: this.log, what: "Nack" });
    } catch (err) {
      if (err instanceof LeaseLostError) {
        this.log.warn(`spool worker: job ${jobId} was no longer ours to finish`, err.message);
      } else {
        this.log.error(`spool worker: could not finish job ${jobId}; its lease will expire`, err);
      }
    }
  }
}

/** The Ack for a returned value: encoded here, so a value that cannot be sent fails only its own job. */
function ackOf(job: RunningJob, result: unknown): AckItem {
  const logs = job.logs.take();
  const followUps = job.followUps;
  if (result === undefined) {
    return { jobId: job.id, leaseToken: job.leaseToken, logs, followUps };
  }
  const body = encodeBody(result);
  const encoded = { result: body.bytes, resultContentType: body.contentType };
  return { jobId: job.id, leaseToken: job.leaseToken, ...encoded, logs, followUps };
}
