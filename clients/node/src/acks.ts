// Acks coalesced into AckBatch, as the Python Worker's Reporter does. No timer: the first Ack goes
// out at once (after the current microtasks, so handlers finishing together share it), and whatever
// piles up while an AckBatch is in flight goes in the next one. Each ack() resolves only when its
// own Ack is answered, so the Worker keeps the job's slot until then (backpressure).
import type { AckItem, Client } from "./client.js";
import { isTransient } from "./errors.js";
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

export class AckBatcher {
  private readonly queue: Pending[] = [];
  private sending = false;

  constructor(
    private readonly client: Client,
    private readonly log: Logger,
  ) {}

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
  }

  /** One outcome per item, in order: undefined when acked. */
  private async send(items: AckItem[]): Promise<unknown[]> {
    try {
      const results = await withRetries(() => this.client.ackBatch(items));
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

  private async ackOne(item: AckItem): Promise<unknown> {
    try {
      await withRetries(() => this.client.ack(item.jobId, item.leaseToken, item));
      return undefined;
    } catch (err) {
      return err;
    }
  }
}
