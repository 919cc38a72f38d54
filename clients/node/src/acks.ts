// Acks coalesced into AckBatch, as the Python Worker's Reporter does. No timer: the first Ack goes
// out at once (after the current microtasks, so handlers finishing together share it), and whatever
// piles up while an AckBatch is in flight goes in the next one. Each ack() resolves only when its
// own Ack is answered, so the Worker keeps the job's slot until then (backpressure).
//
// Each AckBatch also asks for the next jobs (Refill.next, given how many acks it carries) and hands
// what it gets to Refill.start before its acks are answered: the slots the acked jobs free pass
// straight to the new jobs, one call per batch in a steady run instead of an AckBatch and a Lease.
import type { AckItem, AckResult, Client, NextOptions } from "./client.js";
import { isTransient } from "./errors.js";
import type { LeasedJob } from "./gen/spool/v1/queue_service_pb.js";
import type { Logger } from "./heartbeater.js";

// The server's default batch limit.
const MAX_BATCH = 1000;
// Ack and Nack are retried this many times while the server is unavailable; then the lease expires.
const REPORT_TRIES = 6;

/** Runs `send`, retrying transient failures (server or database away) with backoff; rethrows the rest. */
export async function withRetries<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (!isTransient(err) || attempt >= REPORT_TRIES) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }
}

interface Pending {
  item: AckItem;
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
  ) {}

  /** Resolves once every Ack given so far is answered (and whatever its batch leased handed over). */
  idle(): Promise<void> {
    if (!this.sending) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Sends the Ack with the next AckBatch. Resolves once it is answered: with undefined when the
   * job was acked, else with why not (a SpoolError such as LeaseLostError, or the error of a call
   * that failed through every retry). Never rejects.
   */
  ack(item: AckItem): Promise<unknown> {
    return new Promise((answered) => {
      this.queue.push({ item, answered });
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
        outcomes = await this.send(batch.map((p) => p.item));
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
  private async send(items: AckItem[]): Promise<unknown[]> {
    try {
      const { results, next } = await withRetries(() => this.sendBatch(items));
      if (next.length > 0) {
        try {
          this.refill?.start(next);
        } catch (err) {
          this.log.error("spool worker: could not start the jobs an ack batch leased", err);
        }
      }
      return items.map((_, i) => results[i]?.error);
    } catch (err) {
      if (isTransient(err) || items.length === 1) {
        // Unavailable through every retry (the leases will expire), or the one Ack's own refusal.
        return items.map(() => err);
      }
      // Refused as a whole (e.g. one result over the size limit): ack one by one so the rest go through.
      this.log.warn("spool worker: ack batch refused, acking one by one", err instanceof Error ? err.message : err);
      return Promise.all(items.map((item) => this.ackOne(item)));
    }
  }

  /** One AckBatch; the lease of the next jobs is asked for afresh on each try (none once stopping). */
  private async sendBatch(items: AckItem[]): Promise<{ results: AckResult[]; next: LeasedJob[] }> {
    const next = this.refill?.next(items.length);
    if (next === undefined) {
      return { results: await this.client.ackBatch(items), next: [] };
    }
    return this.client.ackBatch(items, { next });
  }

  // No `next` here: this is the fallback after a refused batch, and the Worker's lease loop fills the
  // slots these free.
  private async ackOne(item: AckItem): Promise<unknown> {
    try {
      await withRetries(() => this.client.ack(item.jobId, item.leaseToken, item));
      return undefined;
    } catch (err) {
      return err;
    }
  }
}
