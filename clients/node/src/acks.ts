// Acks coalesced into AckBatch, as the Python Worker's Reporter does. No timer: the first Ack goes
// out at once (after the current microtasks, so handlers finishing together share it), and whatever
// piles up while an AckBatch is in flight goes in the next one. Each ack() resolves only when its
// own Ack is answered, so the Worker keeps the job's slot until then (backpressure).
//
// Each AckBatch also asks for the next jobs (Refill.next, given how many acks it carries) and hands
// what it gets to Refill.start before its acks are answered: the slots the acked jobs free pass
// straight to the new jobs, one call per batch in a steady run instead of an AckBatch and a Lease.
import type { AckItem, AckResult, Client, NextOptions } from "./client.js";
import { isUnanswered, LeaseLostError } from "./errors.js";
import { Job_State as JobState } from "./gen/spool/v1/job_pb.js";
import type { LeasedJob } from "./gen/spool/v1/queue_service_pb.js";
import type { Logger } from "./heartbeater.js";

// The server's default batch limit.
const MAX_BATCH = 1000;
// Outcomes are repeated until answered: full jitter over 200 ms doubling up to 10 s.
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 10_000;

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => (clearTimeout(timer), resolve());
    const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `send` (given the try's number, 1 first) until the server answers: failures that carry no
 * answer (isUnanswered: unreachable, timed out, cut, INTERNAL, UNKNOWN) are retried with capped,
 * jittered backoff, and anything else is thrown. Once `giveUp` aborts, the next failure is thrown.
 */
export async function untilAnswered<T>(
  send: (attempt: number) => Promise<T>,
  options: { giveUp?: AbortSignal; log?: Logger; what?: string } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send(attempt);
    } catch (err) {
      if (!isUnanswered(err) || options.giveUp?.aborted) {
        throw err;
      }
      const delay = Math.random() * Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(attempt - 1, 16));
      const why = err instanceof Error ? err.message : String(err);
      options.log?.warn(`spool worker: ${options.what ?? "call"} failed, retrying in ${Math.round(delay)} ms: ${why}`);
      await pause(delay, options.giveUp);
    }
  }
}

interface Pending {
  item: AckItem;
  /** The attempt this Ack ends: a repeat refused LEASE_LOST landed if the job SUCCEEDED by it. */
  attempt: number;
  answered: (error: unknown) => void;
}

/** How an AckBatch refills the slots its acks free. */
export interface Refill {
  /** The lease to ask for after `acked` acks, or undefined for none (e.g. once the worker is stopping). */
  next(acked: number): NextOptions | undefined;
  /** Takes the jobs an AckBatch leased; called before that batch's acks are answered. */
  start(leased: LeasedJob[]): void;
}

export class AckBatcher {
  private readonly queue: Pending[] = [];
  private sending = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly client: Client,
    private readonly log: Logger,
    private readonly refill?: Refill,
    /** Aborted when the Worker stops waiting for answers (its leases are over by then). */
    private readonly giveUp?: AbortSignal,
  ) {}

  /** Resolves once every Ack given so far is answered (and whatever its batch leased handed over). */
  idle(): Promise<void> {
    if (!this.sending) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Sends the Ack with the next AckBatch, repeated until answered. Resolves once it is: with
   * undefined when the job was acked (or an earlier try had landed), else with the refusal (a
   * SpoolError such as LeaseLostError; or the last failure, if giveUp aborted first). Never rejects.
   */
  ack(item: AckItem, attempt: number): Promise<unknown> {
    return new Promise((answered) => {
      this.queue.push({ item, attempt, answered });
      if (!this.sending) {
        this.sending = true;
        queueMicrotask(() => void this.pump());
      }
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      let outcomes: unknown[];
      try {
        outcomes = await this.send(batch);
      } catch (err) {
        outcomes = batch.map(() => err); // not expected: send() catches what the calls throw
      }
      batch.forEach((p, i) => p.answered(outcomes[i]));
    }
    this.sending = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((resolve) => resolve());
  }

  /** One outcome per item, in order: undefined when acked. Jobs leased with them are started first. */
  private async send(batch: Pending[]): Promise<unknown[]> {
    const items = batch.map((p) => p.item);
    let answer: { results: AckResult[]; next: LeasedJob[] };
    let tries = 0;
    try {
      answer = await untilAnswered((attempt) => this.sendBatch(items, (tries = attempt)), this.retrying("AckBatch"));
    } catch (err) {
      if (isUnanswered(err)) {
        return batch.map(() => err); // given up: the leases are over
      }
      // Refused as a whole (e.g. one result over the size limit): ack one by one so the rest go through.
      this.log.warn("spool worker: ack batch refused, acking one by one", err instanceof Error ? err.message : err);
      return Promise.all(batch.map((p) => this.ackOne(p)));
    }
    if (answer.next.length > 0) {
      try {
        this.refill?.start(answer.next);
      } catch (err) {
        this.log.error("spool worker: could not start the jobs an ack batch leased", err);
      }
    }
    return Promise.all(
      batch.map((p, i) => {
        const error = answer.results[i]?.error;
        if (error === undefined) return undefined;
        // This item's fate is unknown: ask again, on its own.
        return isUnanswered(error) ? this.ackOne(p) : this.settle(p, error, tries > 1);
      }),
    );
  }

  private retrying(what: string) {
    return { giveUp: this.giveUp, log: this.log, what };
  }

  /**
   * One AckBatch. The first try asks for the next jobs (none once stopping); a repeat does not: the
   * first may have leased them already, its answer lost.
   */
  private async sendBatch(items: AckItem[], attempt: number): Promise<{ results: AckResult[]; next: LeasedJob[] }> {
    const next = attempt === 1 ? this.refill?.next(items.length) : undefined;
    if (next === undefined) {
      return { results: await this.client.ackBatch(items), next: [] };
    }
    return this.client.ackBatch(items, { next });
  }

  // No `next` here: this is the fallback after a refused batch, and the Worker's lease loop fills the
  // slots these free.
  private async ackOne(p: Pending): Promise<unknown> {
    let tries = 0;
    const send = (attempt: number) => ((tries = attempt), this.client.ack(p.item.jobId, p.item.leaseToken, p.item));
    try {
      await untilAnswered(send, this.retrying("Ack"));
      return undefined;
    } catch (err) {
      return this.settle(p, err, tries > 1);
    }
  }

  /**
   * The refusal, unless it is a repeated Ack's LEASE_LOST with the job SUCCEEDED by this very
   * attempt: the first try had landed and only its answer was lost, so the Ack is done.
   */
  private async settle(p: Pending, err: unknown, repeated: boolean): Promise<unknown> {
    if (!repeated || !(err instanceof LeaseLostError)) {
      return err;
    }
    try {
      const job = await this.client.get(p.item.jobId);
      if (job.state === JobState.SUCCEEDED && job.attempt === p.attempt) {
        this.log.info?.(`spool worker: job ${p.item.jobId}: ack already recorded (its first answer was lost)`);
        return undefined;
      }
    } catch {
      // Cannot tell: report the refusal as it came.
    }
    return err;
  }
}
