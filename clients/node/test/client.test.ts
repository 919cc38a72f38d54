// The typed client against a live spoold: every RPC, and every error reason mapped to its class.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  BatchTooLargeError,
  ConcurrencyScope,
  InvalidArgumentError,
  JobNotFoundError,
  JobState,
  LeaseLostError,
  PayloadTooLargeError,
  SpoolError,
  WrongStateError,
  decodeBody,
  type Client,
} from "../src/index.js";
import { Code } from "@connectrpc/connect";
import { queueName, startSpoold, type Spoold } from "./harness.js";

let spoold: Spoold;
let client: Client;

before(async () => {
  spoold = await startSpoold({ SPOOL_MAX_PAYLOAD_BYTES: "4096", SPOOL_MAX_BATCH: "10" });
  client = spoold.client;
});
after(async () => spoold?.close());

/** Awaits the call, which must fail with this class, code and reason (and field, when given). */
async function expectError(
  call: Promise<unknown>,
  cls: new (...args: never[]) => SpoolError,
  code: Code,
  reason: string,
  field?: string,
): Promise<SpoolError> {
  const err = await call.then(
    () => assert.fail(`expected ${cls.name}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
  assert.equal(err.code, code);
  assert.equal(err.reason, reason);
  if (field !== undefined) {
    assert.ok(err instanceof InvalidArgumentError);
    assert.equal(err.field, field);
  }
  return err;
}

describe("producing and reading", () => {
  test("enqueue returns the job at once, get and list find it", async () => {
    const queue = queueName("produce");
    const { job, deduplicated } = await client.enqueue(queue, { order: 5512 }, { priority: 3, headers: { trace: "t1" } });
    assert.equal(deduplicated, false);
    assert.equal(job.state, JobState.PENDING);
    assert.deepEqual(decodeBody(job.payload, job.contentType), { order: 5512 });
    const got = await client.get(job.id);
    assert.equal(got.priority, 3);
    assert.equal(got.headers["trace"], "t1");
    const page = await client.list({ filter: { queues: [queue], payloadContains: { order: 5512 } } });
    assert.deepEqual(
      page.jobs.map((j) => j.id),
      [job.id],
    );
  });

  test("a concurrency key is its queue's unless concurrencyGlobal says otherwise", async () => {
    const queue = queueName("scope");
    const scoped = await client.enqueue(queue, {}, { concurrencyKey: "k" });
    const shared = await client.enqueue(queue, {}, { concurrencyKey: "k", concurrencyGlobal: true });
    assert.equal(scoped.job.concurrencyScope, ConcurrencyScope.QUEUE);
    assert.equal(shared.job.concurrencyScope, ConcurrencyScope.GLOBAL);
  });

  test("the same idempotency key returns the first job, deduplicated", async () => {
    const queue = queueName("dedupe");
    const first = await client.enqueue(queue, { n: 1 }, { idempotencyKey: "k" });
    const second = await client.enqueue(queue, { n: 2 }, { idempotencyKey: "k" });
    assert.equal(second.deduplicated, true);
    assert.equal(second.job.id, first.job.id);
  });

  test("enqueueBatch creates all in order and list pages through them", async () => {
    const queue = queueName("batch");
    const results = await client.enqueueBatch([1, 2, 3].map((n) => ({ queue, payload: { n } })));
    assert.equal(results.length, 3);
    const first = await client.list({ filter: { queues: [queue] }, order: "oldest", pageSize: 2 });
    assert.notEqual(first.nextPageToken, "");
    const second = await client.list({ filter: { queues: [queue] }, order: "oldest", pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(
      [...first.jobs, ...second.jobs].map((j) => j.id),
      results.map((r) => r.job.id),
    );
    assert.equal(second.nextPageToken, "");
  });

  test("bytes payloads keep their content type", async () => {
    const { job } = await client.enqueue(queueName("bytes"), new Uint8Array([0, 1, 2]), { contentType: "application/x-raw" });
    const got = await client.get(job.id);
    assert.equal(got.contentType, "application/x-raw");
    assert.deepEqual(got.payload, new Uint8Array([0, 1, 2]));
  });
});

describe("the lease lifecycle", () => {
  test("lease, heartbeat with a checkpoint, ack with a result", async () => {
    const queue = queueName("life");
    const { job } = await client.enqueue(queue, { n: 1 });
    const [leased] = await client.lease([queue], { workerId: "node-test", leaseDurationMs: 5000 });
    assert.ok(leased);
    assert.equal(leased.job?.id, job.id);
    const beat = await client.heartbeat(job.id, leased.leaseToken, { checkpoint: new TextEncoder().encode("3") });
    assert.equal(beat.cancelRequested, false);
    assert.ok(beat.leaseExpiresAt instanceof Date);
    const done = await client.ack(job.id, leased.leaseToken, { result: { ok: true } });
    assert.equal(done.state, JobState.SUCCEEDED);
    assert.deepEqual(decodeBody(done.result, done.resultContentType), { ok: true });
    const got = await client.get(job.id);
    assert.equal(got.attempts.length, 1);
    assert.equal(got.attempts[0]?.workerId, "node-test");
  });

  test("lease long-polls until a job arrives", async () => {
    const queue = queueName("poll");
    const leasing = client.lease([queue], { waitMs: 10_000 });
    const { job } = await client.enqueue(queue, {});
    const [leased] = await leasing;
    assert.equal(leased?.job?.id, job.id);
  });

  test("nack retries while attempts remain, then the job is DEAD with the error kept", async () => {
    const queue = queueName("nack");
    const { job } = await client.enqueue(queue, {}, { maxAttempts: 2, backoff: { initialIntervalMs: 1, jitter: false } });
    const [first] = await client.lease([queue]);
    const retried = await client.nack(job.id, first!.leaseToken, { error: { type: "Boom", message: "first" }, retryAfterMs: 0 });
    assert.equal(retried.state, JobState.PENDING);
    const [second] = await client.lease([queue], { waitMs: 5000 });
    const dead = await client.nack(job.id, second!.leaseToken, { error: { type: "Boom", message: "second" } });
    assert.equal(dead.state, JobState.DEAD);
    assert.equal(dead.lastError?.message, "second");
    const [requeued] = await client.requeue({ jobIds: [job.id] });
    assert.equal(requeued?.state, JobState.PENDING);
  });

  test("heartbeatBatch and ackBatch report each item alone", async () => {
    const queue = queueName("batches");
    await client.enqueueBatch([{ queue }, { queue }]);
    const leased = await client.lease([queue], { maxJobs: 2 });
    assert.equal(leased.length, 2);
    const [a, b] = leased as [(typeof leased)[0], (typeof leased)[0]];
    await client.ack(b.job!.id, b.leaseToken);
    const beats = await client.heartbeatBatch([
      { jobId: a.job!.id, leaseToken: a.leaseToken },
      { jobId: b.job!.id, leaseToken: b.leaseToken },
    ]);
    assert.equal(beats[0]?.error, undefined);
    assert.equal(beats[0]?.heartbeat?.cancelRequested, false);
    assert.ok(beats[1]?.error instanceof LeaseLostError);
    assert.equal(beats[1]?.error?.reason, "LEASE_LOST");
    const acks = await client.ackBatch([
      { jobId: a.job!.id, leaseToken: a.leaseToken, result: "fine" },
      { jobId: b.job!.id, leaseToken: b.leaseToken },
    ]);
    assert.equal(acks[0]?.error, undefined);
    assert.ok(acks[1]?.error instanceof LeaseLostError);
  });

  test("ack and ackBatch with next lease the next jobs in the same call", async () => {
    const queue = queueName("next");
    const ids = (await client.enqueueBatch([0, 1, 2, 3, 4].map((n) => ({ queue, payload: { n } })))).map((r) => r.job.id);
    const [first] = await client.lease([queue]);
    assert.equal(first?.job?.id, ids[0]);

    // ack: the job, then what was leased after it ({ job, next } instead of the job).
    const acked = await client.ack(first!.job!.id, first!.leaseToken, {
      result: { n: 0 },
      next: { queues: [queue], workerId: "node-next", leaseDurationMs: 5000 },
    });
    assert.equal(acked.job.id, ids[0]);
    assert.equal(acked.job.state, JobState.SUCCEEDED);
    assert.deepEqual(decodeBody(acked.job.result, acked.job.resultContentType), { n: 0 });
    assert.deepEqual(
      acked.next.map((l) => l.job?.id),
      [ids[1]],
      "maxJobs defaults to 1",
    );
    const second = acked.next[0]!;
    assert.equal(second.job?.state, JobState.RUNNING);
    assert.equal(second.job?.workerId, "node-next");
    assert.ok(second.leaseToken !== "" && second.leaseExpiresAt !== undefined);

    // ackBatch: per-item results, and the next jobs even though one of its acks is refused.
    const batch = await client.ackBatch(
      [
        { jobId: second.job!.id, leaseToken: second.leaseToken },
        { jobId: first!.job!.id, leaseToken: first!.leaseToken },
      ],
      { next: { queues: [queue], maxJobs: 2 } },
    );
    assert.deepEqual(
      batch.results.map((r) => r.jobId),
      [ids[1], ids[0]],
    );
    assert.equal(batch.results[0]?.error, undefined);
    assert.ok(batch.results[1]?.error instanceof LeaseLostError);
    assert.deepEqual(
      batch.next.map((l) => l.job?.id),
      [ids[2], ids[3]],
    );
    assert.ok(batch.next.every((l) => l.job?.state === JobState.RUNNING));

    // A refused Ack leases nothing; a next that cannot be served is refused as a whole, acking nothing.
    await expectError(
      client.ack(first!.job!.id, first!.leaseToken, { next: { queues: [queue] } }),
      LeaseLostError,
      Code.FailedPrecondition,
      "LEASE_LOST",
    );
    const third = batch.next[0]!;
    await expectError(
      client.ack(third.job!.id, third.leaseToken, { next: { queues: [queue], maxJobs: 100_000 } }),
      InvalidArgumentError,
      Code.InvalidArgument,
      "INVALID_ARGUMENT",
      "next.max_jobs",
    );
    assert.equal((await client.get(third.job!.id)).state, JobState.RUNNING);
    assert.equal((await client.get(ids[4]!)).state, JobState.PENDING);

    // Without next, the shapes are the ones they always were.
    const plain = await client.ackBatch(batch.next.map((l) => ({ jobId: l.job!.id, leaseToken: l.leaseToken })));
    assert.ok(Array.isArray(plain));
    assert.ok(plain.every((r) => r.error === undefined));

    // Nothing ready: next comes back empty (the call never waits).
    const [last] = await client.lease([queue]);
    assert.equal(last?.job?.id, ids[4]);
    const end = await client.ack(last!.job!.id, last!.leaseToken, { next: { queues: [queue], maxJobs: 5 } });
    assert.equal(end.job.state, JobState.SUCCEEDED);
    assert.deepEqual(end.next, []);
    const none = await client.ackBatch([], { next: { queues: [queue] } });
    assert.deepEqual(none, { results: [], next: [] });
  });

  test("cancel: a PENDING job ends CANCELLED, a RUNNING one is asked to stop", async () => {
    const queue = queueName("cancel");
    const pending = await client.enqueue(queue, {}, { delayMs: 60_000 });
    assert.equal((await client.cancel(pending.job.id)).state, JobState.CANCELLED);
    const { job } = await client.enqueue(queue, {});
    const [leased] = await client.lease([queue]);
    await client.cancel(job.id);
    const beat = await client.heartbeat(job.id, leased!.leaseToken);
    assert.equal(beat.cancelRequested, true);
  });
});

describe("errors carry their reason", () => {
  test("INVALID_ARGUMENT names the field", async () => {
    await expectError(client.enqueue("", {}), InvalidArgumentError, Code.InvalidArgument, "INVALID_ARGUMENT", "queue");
  });

  test("JOB_NOT_FOUND", async () => {
    await expectError(client.get("999999999"), JobNotFoundError, Code.NotFound, "JOB_NOT_FOUND");
  });

  test("LEASE_LOST for a finished lease", async () => {
    const queue = queueName("lost");
    const { job } = await client.enqueue(queue, {});
    const [leased] = await client.lease([queue]);
    await client.ack(job.id, leased!.leaseToken);
    await expectError(client.ack(job.id, leased!.leaseToken), LeaseLostError, Code.FailedPrecondition, "LEASE_LOST");
    await expectError(client.heartbeat(job.id, leased!.leaseToken), LeaseLostError, Code.FailedPrecondition, "LEASE_LOST");
  });

  test("WRONG_STATE for requeueing a PENDING job", async () => {
    const { job } = await client.enqueue(queueName("wrong"), {});
    await expectError(client.requeue({ jobIds: [job.id] }), WrongStateError, Code.FailedPrecondition, "WRONG_STATE");
  });

  test("PAYLOAD_TOO_LARGE", async () => {
    const big = new Uint8Array(8192);
    await expectError(client.enqueue(queueName("big"), big), PayloadTooLargeError, Code.ResourceExhausted, "PAYLOAD_TOO_LARGE");
  });

  test("BATCH_TOO_LARGE", async () => {
    const queue = queueName("many");
    const items = Array.from({ length: 11 }, () => ({ queue }));
    await expectError(client.enqueueBatch(items), BatchTooLargeError, Code.ResourceExhausted, "BATCH_TOO_LARGE");
  });
});

describe("watch", () => {
  test("follows a job from PENDING to its terminal state", async (t) => {
    const queue = queueName("watch");
    const { job } = await client.enqueue(queue, {});
    const states: JobState[] = [];
    const iterator = client.watch(job.id)[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await iterator.next();
    } catch (err) {
      if (err instanceof SpoolError && err.code === Code.Unimplemented) {
        t.skip("this server does not implement WatchJob");
        return;
      }
      throw err;
    }
    states.push((first.value as { state: JobState }).state);
    const [leased] = await client.lease([queue]);
    await client.ack(job.id, leased!.leaseToken);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      states.push(next.value.state);
    }
    assert.equal(states[0], JobState.PENDING);
    assert.equal(states.at(-1), JobState.SUCCEEDED);
    assert.ok(states.includes(JobState.RUNNING) || states.length >= 2);
  });

  test("an unknown job fails with JOB_NOT_FOUND", async (t) => {
    try {
      for await (const _ of client.watch("999999999")) assert.fail("no snapshot expected");
      assert.fail("expected an error");
    } catch (err) {
      assert.ok(err instanceof SpoolError);
      if (err.code === Code.Unimplemented) {
        t.skip("this server does not implement WatchJob");
        return;
      }
      assert.ok(err instanceof JobNotFoundError);
      assert.equal(err.reason, "JOB_NOT_FOUND");
    }
  });
});
