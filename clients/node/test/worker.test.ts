// The Worker end to end against a live spoold (reaper every 0.2 s).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  AttemptOutcome,
  JobAbortedError,
  JobState,
  LeaseLostError,
  PermanentError,
  RetryError,
  Worker,
  decodeBody,
  Client,
  type JobContext,
  type WorkerOptions,
} from "../src/index.js";
import type { AckBatchRequest, AckBatchResponse, HeartbeatBatchRequest } from "../src/gen/spool/v1/queue_service_pb.js";
import { ROOT, queueName, startSpoold, waitForLine, waitUntil, type Spoold } from "./harness.js";

let spoold: Spoold;
let client: Client;
const quiet = { warn: () => {}, error: () => {} };

before(async () => {
  spoold = await startSpoold({ SPOOL_REAPER_INTERVAL: "0.2" });
  client = spoold.client;
});
after(async () => spoold?.close());

/** Runs a worker with these handlers while `body` runs, then stops it. */
async function withWorker(
  handlers: Record<string, (job: JobContext) => unknown>,
  body: (worker: Worker) => Promise<void>,
  options: WorkerOptions = {},
  through: Client = client,
): Promise<void> {
  const worker = new Worker(through, { pollWaitMs: 500, handleSignals: false, logger: quiet, ...options });
  for (const [queue, fn] of Object.entries(handlers)) worker.handle(queue, fn);
  const running = worker.run();
  try {
    await body(worker);
  } finally {
    await worker.stop(options.graceMs ?? 5000);
    await running;
  }
}

function state(jobId: string, wanted: JobState) {
  return async () => {
    const job = await client.get(jobId);
    return job.state === wanted ? job : undefined;
  };
}

/** A transport that delays every Ack and AckBatch, as a busy server would: finished jobs' outcomes pile up. */
function slowAckTransport(address: string) {
  const slowAcks: Interceptor = (next) => async (req) => {
    if (req.method.name === "Ack" || req.method.name === "AckBatch") {
      await new Promise((r) => setTimeout(r, 50)); // the simulated server time, not a wait for anything
    }
    return next(req);
  };
  return createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [slowAcks] });
}

/**
 * A client whose transport records every call's method name; for each AckBatch, the job ids it
 * carried, the next.maxJobs it asked for (undefined: no next) and how many jobs it was handed.
 * `before` runs before each unary call goes out (to hold it, or to fail it by throwing).
 */
function recordingClient(address: string, before?: (method: string, message: unknown) => Promise<void> | void) {
  const calls: string[] = [];
  const ackBatches: string[][] = [];
  const asked: (number | undefined)[] = [];
  const handedOver: number[] = [];
  const record: Interceptor = (next) => async (req) => {
    calls.push(req.method.name);
    if (req.stream) {
      return next(req);
    }
    await before?.(req.method.name, req.message);
    if (req.method.name !== "AckBatch") {
      return next(req);
    }
    const message = req.message as unknown as AckBatchRequest;
    ackBatches.push(message.acks.map((a) => a.jobId));
    asked.push(message.next?.maxJobs);
    const res = await next(req);
    if (!res.stream) handedOver.push((res.message as unknown as AckBatchResponse).next.length);
    return res;
  };
  const transport = createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [record] });
  const recorded = new Client({ transport });
  const count = (method: string) => calls.filter((m) => m === method).length;
  return { client: recorded, calls, ackBatches, asked, handedOver, count };
}

/** Each job but `except` SUCCEEDED with the result `{ i }`, i its place in `ids`. */
async function assertSucceededWithIndex(ids: string[], except: string): Promise<void> {
  for (const [i, id] of ids.entries()) {
    if (id === except) continue;
    const job = await client.get(id);
    assert.equal(job.state, JobState.SUCCEEDED);
    assert.deepEqual(decodeBody(job.result, job.resultContentType), { i });
  }
}

/** Resolves once no job of the queue is PENDING or RUNNING. */
async function drained(queue: string): Promise<void> {
  await waitUntil(async () => {
    const filter = { queues: [queue], states: [JobState.PENDING, JobState.RUNNING] };
    const open = await client.list({ filter, pageSize: 1 });
    return open.jobs.length === 0;
  }, 30_000);
}

/** A promise with its resolve function, for gates in handlers. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

/**
 * A recording client that holds the first AckBatch asking for next jobs: `held` opens when it is
 * caught, and it goes out once `release` is opened.
 */
function holdingFirstRefill() {
  const held = gate();
  const release = gate();
  let holding = true;
  const rec = recordingClient(spoold.address, async (method, message) => {
    if (method === "AckBatch" && holding && (message as AckBatchRequest).next !== undefined) {
      holding = false;
      held.open();
      await release.opened;
    }
  });
  return { rec, held, release };
}

describe("Worker", () => {
  test("runs handlers per queue and acks their results", async () => {
    const [a, b] = [queueName("wa"), queueName("wb")];
    await withWorker(
      { [a]: (job) => ({ from: "a", n: (job.payload as { n: number }).n }), [b]: () => new Uint8Array([7]) },
      async (worker) => {
        const ja = (await client.enqueue(a, { n: 1 })).job;
        const jb = (await client.enqueue(b, {})).job;
        const doneA = await waitUntil(state(ja.id, JobState.SUCCEEDED));
        assert.deepEqual(decodeBody(doneA.result, doneA.resultContentType), { from: "a", n: 1 });
        assert.equal(doneA.attempts[0]?.workerId, worker.workerId);
        const doneB = await waitUntil(state(jb.id, JobState.SUCCEEDED));
        assert.deepEqual(doneB.result, new Uint8Array([7]));
      },
    );
  });

  test("never runs more than `concurrency` handlers at once", async () => {
    const queue = queueName("conc");
    const release = gate();
    let active = 0;
    let most = 0;
    const handler = async () => {
      active += 1;
      most = Math.max(most, active);
      await release.opened;
      active -= 1;
    };
    await withWorker(
      { [queue]: handler },
      async (worker) => {
        const jobs = await client.enqueueBatch(Array.from({ length: 6 }, () => ({ queue })));
        await waitUntil(() => worker.running === 2);
        release.open();
        for (const { job } of jobs) await waitUntil(state(job.id, JobState.SUCCEEDED));
      },
      { concurrency: 2 },
    );
    assert.equal(most, 2);
  });

  test("a thrown error becomes a Nack with its name, message and stack", async () => {
    const queue = queueName("fail");
    class PaymentDeclined extends Error {
      override name = "PaymentDeclined";
    }
    await withWorker({ [queue]: () => Promise.reject(new PaymentDeclined("card 4242 declined")) }, async () => {
      const { job } = await client.enqueue(queue, {});
      const dead = await waitUntil(state(job.id, JobState.DEAD));
      assert.equal(dead.lastError?.type, "PaymentDeclined");
      assert.equal(dead.lastError?.message, "card 4242 declined");
      assert.match(dead.lastError?.details ?? "", /PaymentDeclined: card 4242 declined\n\s+at /);
    });
  });

  test("an error too large or with NUL bytes is clipped to what the server takes", async () => {
    const queue = queueName("huge");
    await withWorker({ [queue]: () => Promise.reject(new Error("\0" + "é".repeat(100_000))) }, async () => {
      const { job } = await client.enqueue(queue, {});
      const dead = await waitUntil(state(job.id, JobState.DEAD));
      const message = dead.lastError?.message ?? "";
      assert.ok(message.startsWith("\\x00éé"));
      assert.ok(message.endsWith("...[truncated]\n"));
      assert.ok(Buffer.byteLength(message) <= 64 * 1024);
    });
  });

  test("PermanentError goes to DEAD at once; RetryError retries", async () => {
    const queue = queueName("verdict");
    await withWorker(
      {
        [queue]: (job) => {
          const p = job.payload as { permanent: boolean };
          if (p.permanent) throw new PermanentError("bad input");
          if (job.attempt === 1) throw new RetryError("later", 0);
          return "second time lucky";
        },
      },
      async () => {
        const opts = { maxAttempts: 5 };
        const permanent = (await client.enqueue(queue, { permanent: true }, opts)).job;
        const retried = (await client.enqueue(queue, { permanent: false }, opts)).job;
        const dead = await waitUntil(state(permanent.id, JobState.DEAD));
        assert.equal(dead.attempt, 1);
        const done = await waitUntil(state(retried.id, JobState.SUCCEEDED));
        assert.equal(done.attempt, 2);
      },
    );
  });

  test("checkpoints travel with heartbeats and reach the next attempt", async () => {
    const queue = queueName("ckpt");
    const seen: unknown[] = [];
    await withWorker(
      {
        [queue]: async (job) => {
          seen.push(job.previousCheckpoint);
          if (job.attempt > 1) return "resumed";
          job.checkpoint({ step: 3 });
          await waitUntil(async () => (await client.get(job.id)).checkpoint.length > 0);
          throw new RetryError("crash after step 3", 0);
        },
      },
      async () => {
        const { job } = await client.enqueue(queue, {}, { maxAttempts: 2 });
        await waitUntil(state(job.id, JobState.SUCCEEDED));
      },
      { leaseDurationMs: 1500 },
    );
    assert.deepEqual(seen, [undefined, { step: 3 }]);
  });

  test("heartbeats keep a job leased well past its lease duration", async () => {
    const queue = queueName("long");
    await withWorker(
      {
        [queue]: async (job) => {
          const first = job.leaseExpiresAt!.getTime();
          // Heartbeats push the expiry more than a whole lease past the first one: the job outlives its lease.
          await waitUntil(async () => {
            const expires = (await client.get(job.id)).leaseExpiresAt;
            return expires !== undefined && Number(expires.seconds) * 1000 > first + 1500;
          });
          return "done";
        },
      },
      async () => {
        const { job } = await client.enqueue(queue, {});
        const done = await waitUntil(state(job.id, JobState.SUCCEEDED));
        assert.equal(done.attempts.length, 1);
      },
      { leaseDurationMs: 1500 },
    );
  });

  test("cancelling a running job aborts its signal and the job ends CANCELLED", async () => {
    const queue = queueName("cancel");
    const causes: unknown[] = [];
    const started = gate();
    await withWorker(
      {
        [queue]: async (job) => {
          started.open();
          await once(job.signal, "abort");
          causes.push((job.signal.reason as JobAbortedError).stopCause);
          throw job.signal.reason;
        },
      },
      async () => {
        const { job } = await client.enqueue(queue, {});
        await started.opened;
        await client.cancel(job.id);
        await waitUntil(state(job.id, JobState.CANCELLED));
      },
      { leaseDurationMs: 1500 },
    );
    assert.deepEqual(causes, ["cancel-requested"]);
  });

  test("a lost lease aborts the signal and the worker reports nothing", async () => {
    const queue = queueName("lost");
    let reason: unknown;
    await withWorker(
      {
        [queue]: async (job) => {
          // Someone else finishes the job under this worker's feet (here: with its own token).
          await client.ack(job.id, job.leaseToken, { result: "from elsewhere" });
          await once(job.signal, "abort");
          reason = job.signal.reason;
          return "too late";
        },
      },
      async () => {
        const { job } = await client.enqueue(queue, {});
        await waitUntil(() => reason !== undefined);
        const done = await client.get(job.id);
        assert.equal(done.state, JobState.SUCCEEDED);
        assert.deepEqual(decodeBody(done.result, done.resultContentType), "from elsewhere");
      },
      { leaseDurationMs: 1500 },
    );
    assert.ok(reason instanceof JobAbortedError);
    assert.equal(reason.stopCause, "lease-lost");
    assert.ok(reason.cause instanceof LeaseLostError);
  });

  test("stop: finishes what ends within the grace, releases the rest without spending an attempt", async () => {
    const queue = queueName("stop");
    const quick = gate();
    const bothStarted = { n: 0 };
    const worker = new Worker(client, { pollWaitMs: 500, handleSignals: false, logger: quiet });
    worker.handle(queue, async (job) => {
      bothStarted.n += 1;
      if ((job.payload as { quick: boolean }).quick) {
        await quick.opened;
        return "finished in the grace";
      }
      await once(job.signal, "abort");
      throw job.signal.reason;
    });
    const running = worker.run();
    const fast = (await client.enqueue(queue, { quick: true })).job;
    // One attempt only: a redeploy must not send it to DEAD.
    const slow = (await client.enqueue(queue, { quick: false }, { maxAttempts: 1 })).job;
    await waitUntil(() => bothStarted.n === 2);
    const stopping = worker.stop(500);
    quick.open();
    await stopping;
    await running;
    assert.equal((await client.get(fast.id)).state, JobState.SUCCEEDED);
    const released = await client.get(slow.id);
    assert.equal(released.state, JobState.PENDING);
    assert.equal(released.attempt, 0);
    assert.deepEqual(
      released.attempts.map((a) => [a.number, a.outcome]),
      [[1, AttemptOutcome.RELEASED]],
    );
    assert.equal(released.lastError?.type, "WorkerShutdown");
    assert.equal(worker.running, 0);
    const [again] = await client.lease([queue]);
    assert.equal(again?.job?.id, slow.id);
    assert.equal(again?.job?.attempt, 1);
  });

  test("SIGTERM stops a worker process gracefully", async () => {
    const queue = queueName("sigterm");
    const script = join(ROOT, "clients", "node", "dist", "test", "scripts", "worker.js");
    const child = spawn(process.execPath, [script, spoold.address, queue, "--grace-ms", "300"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await waitForLine(child, child.stdout!, /"event":"ready"/);
    const { job } = await client.enqueue(queue, { do: "hold" }, { maxAttempts: 1 });
    await waitForLine(child, child.stdout!, /"event":"started"/);
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
    const released = await client.get(job.id);
    assert.equal(released.state, JobState.PENDING);
    assert.equal(released.attempt, 0);
    assert.equal(released.attempts[0]?.outcome, AttemptOutcome.RELEASED);
    assert.equal(released.lastError?.type, "WorkerShutdown");
    assert.deepEqual(decodeBody(released.checkpoint, "application/json"), { held: 1 });
  });

  test("a stale ack after the lease expired and the job was re-leased gets LEASE_LOST", async () => {
    const queue = queueName("stale");
    const { job } = await client.enqueue(queue, {}, { maxAttempts: 2 });
    const [first] = await client.lease([queue], { leaseDurationMs: 200 });
    await waitUntil(state(job.id, JobState.PENDING)); // the reaper freed it
    const [second] = await client.lease([queue], { waitMs: 5000 });
    assert.equal(second?.job?.id, job.id);
    await assert.rejects(client.ack(job.id, first!.leaseToken), (err: unknown) => {
      assert.ok(err instanceof LeaseLostError);
      assert.equal(err.reason, "LEASE_LOST");
      return true;
    });
    const still = await client.get(job.id);
    assert.equal(still.state, JobState.RUNNING, "the stale ack changed nothing");
    await client.ack(job.id, second!.leaseToken);
  });

  test("slow acks hold their slots: never more RUNNING leases than `concurrency`", async () => {
    const queue = queueName("backlog");
    for (let i = 0; i < 2; i++) {
      // The server takes 1,000 jobs per batch.
      await client.enqueueBatch(Array.from({ length: 1000 }, () => ({ queue, leaseDurationMs: 5000 })));
    }
    const slow = new Client({ transport: slowAckTransport(spoold.address) });
    let leased = 0;
    let held = 0;
    await withWorker(
      { [queue]: () => undefined },
      async (worker) => {
        const drained = async () => {
          held = Math.max(held, worker.running);
          const running = await client.list({
            filter: { queues: [queue], states: [JobState.RUNNING] },
            pageSize: 1000,
          });
          leased = Math.max(leased, running.jobs.length);
          const open = await client.list({
            filter: { queues: [queue], states: [JobState.PENDING, JobState.RUNNING] },
            pageSize: 1,
          });
          return open.jobs.length === 0;
        };
        await waitUntil(drained, 120_000, 5);
      },
      { concurrency: 50, leaseDurationMs: 5000 },
      slow,
    );
    assert.ok(leased > 0 && leased <= 50, `the server saw ${leased} RUNNING jobs for 50 slots`);
    assert.ok(held <= 50, `the worker held ${held} jobs for 50 slots`);
    const done = [];
    let token = "";
    do {
      const page = await client.list({ filter: { queues: [queue] }, pageSize: 1000, pageToken: token });
      done.push(...page.jobs);
      token = page.nextPageToken;
    } while (token !== "");
    assert.equal(done.length, 2000);
    for (const job of done) {
      assert.equal(job.state, JobState.SUCCEEDED);
      assert.equal(job.attempt, 1, `job ${job.id} SUCCEEDED in its first and only attempt`);
    }
  });

  test("acks are coalesced into AckBatch calls, never one Ack per job", async () => {
    const queue = queueName("ackbatch");
    const enqueued = await client.enqueueBatch(Array.from({ length: 200 }, (_, n) => ({ queue, payload: { n } })));
    const ids = enqueued.map((e) => e.job.id);
    const rec = recordingClient(spoold.address);
    await withWorker(
      { [queue]: (job) => ({ doubled: 2 * (job.payload as { n: number }).n }) },
      () => drained(queue),
      { concurrency: 20 },
      rec.client,
    );
    assert.equal(rec.count("Ack"), 0, "no job was acked on its own");
    assert.equal(rec.count("Nack"), 0);
    assert.deepEqual(rec.ackBatches.flat().sort(), [...ids].sort(), "every job acked once, in an AckBatch");
    assert.ok(
      rec.ackBatches.some((batch) => batch.length > 1),
      `acks were coalesced: batch sizes ${rec.ackBatches.map((b) => b.length).join(",")}`,
    );
    // A job keeps its slot until its Ack is answered, so no batch carries more than `concurrency`.
    assert.ok(rec.ackBatches.every((batch) => batch.length <= 20));
    for (const [n, id] of ids.entries()) {
      const job = await client.get(id);
      assert.equal(job.state, JobState.SUCCEEDED);
      assert.equal(job.attempt, 1);
      assert.deepEqual(decodeBody(job.result, job.resultContentType), { doubled: 2 * n });
    }
  });

  test("a stale lease in an AckBatch is refused alone (LEASE_LOST): the others in the batch succeed", async () => {
    const queue = queueName("stalebatch");
    const n = 5;
    const ids = (await client.enqueueBatch(Array.from({ length: n }, (_, i) => ({ queue, payload: { i } })))).map(
      (e) => e.job.id,
    );
    const staleId = ids[0]!;
    const together = gate();
    let arrived = 0;
    const warnings: string[] = [];
    const errors: unknown[] = [];
    const rec = recordingClient(spoold.address);
    await withWorker(
      {
        [queue]: async (job) => {
          if (job.id === staleId) {
            // Someone else finishes this job first (with its token): the worker's own Ack will be stale.
            await client.ack(job.id, job.leaseToken, { result: "from elsewhere" });
          }
          // Every handler returns at the same moment, so their Acks share one AckBatch.
          if (++arrived === n) together.open();
          await together.opened;
          return { i: (job.payload as { i: number }).i };
        },
      },
      () => drained(queue),
      {
        concurrency: n,
        logger: { warn: (message: string) => warnings.push(message), error: (...args: unknown[]) => errors.push(args) },
      },
      rec.client,
    );
    const batch = rec.ackBatches.find((b) => b.includes(staleId));
    assert.deepEqual(batch?.slice().sort(), [...ids].sort(), "the stale Ack went in one AckBatch with the others");
    assert.equal(rec.count("Ack"), 0, "no fallback to single Acks");
    assert.equal(rec.count("Nack"), 0, "a LEASE_LOST item is not failed over to a Nack");
    assert.deepEqual(errors, []);
    assert.ok(warnings.some((w) => w.includes(staleId) && w.includes("no longer ours")), warnings.join("\n"));
    const stale = await client.get(staleId);
    assert.equal(stale.state, JobState.SUCCEEDED);
    assert.deepEqual(decodeBody(stale.result, stale.resultContentType), "from elsewhere");
    await assertSucceededWithIndex(ids, staleId);
  });

  test("a result over the size limit fails its own attempt (ResultRefused); the rest are acked alone", async () => {
    const queue = queueName("bigresult");
    const n = 4;
    const ids = (
      await client.enqueueBatch(Array.from({ length: n }, (_, i) => ({ queue, payload: { i }, maxAttempts: 1 })))
    ).map((e) => e.job.id);
    const bigId = ids[0]!;
    const together = gate();
    let arrived = 0;
    const rec = recordingClient(spoold.address);
    await withWorker(
      {
        [queue]: async (job) => {
          if (++arrived === n) together.open();
          await together.opened;
          return job.id === bigId ? "x".repeat(1024 * 1024 + 1) : { i: (job.payload as { i: number }).i };
        },
      },
      () => drained(queue),
      { concurrency: n },
      rec.client,
    );
    // The server refuses the whole AckBatch (PAYLOAD_TOO_LARGE): the worker acks each job on its own.
    assert.deepEqual(rec.ackBatches.map((b) => b.length), [n]);
    assert.equal(rec.count("Ack"), n);
    assert.equal(rec.count("Nack"), 1);
    const dead = await client.get(bigId);
    assert.equal(dead.state, JobState.DEAD);
    assert.equal(dead.lastError?.type, "ResultRefused");
    assert.match(dead.lastError?.message ?? "", /PAYLOAD_TOO_LARGE/);
    await assertSucceededWithIndex(ids, bigId);
  });

  test("a result that cannot be encoded fails like a throw, and only its own job", async () => {
    const queue = queueName("unencodable");
    const { job } = await client.enqueue(queue, {}, { maxAttempts: 1 });
    await withWorker({ [queue]: () => ({ big: 10n }) }, async () => {
      const dead = await waitUntil(state(job.id, JobState.DEAD));
      assert.equal(dead.lastError?.type, "TypeError");
      assert.match(dead.lastError?.message ?? "", /BigInt/);
    });
  });

  test("each AckBatch leases the next job: at concurrency 1, one AckBatch per job and a Lease only to start and to wait", async () => {
    const queue = queueName("chain");
    const n = 30;
    const ids = (await client.enqueueBatch(Array.from({ length: n }, (_, i) => ({ queue, payload: { i } })))).map(
      (e) => e.job.id,
    );
    const rec = recordingClient(spoold.address);
    const seen: { id: string; running: number; held: number }[] = [];
    let worker: Worker | undefined;
    await withWorker(
      {
        [queue]: async (job) => {
          const running = await client.list({ filter: { queues: [queue], states: [JobState.RUNNING] }, pageSize: 10 });
          seen.push({ id: job.id, running: running.jobs.length, held: worker?.running ?? -1 });
        },
      },
      async (w) => {
        worker = w;
        await drained(queue);
        await waitUntil(() => rec.count("Lease") === 2); // the last ack found nothing: back to the long poll
      },
      // The long poll outlasts the test; stop's short grace cuts it off.
      { concurrency: 1, pollWaitMs: 30_000, graceMs: 100 },
      rec.client,
    );
    assert.deepEqual(
      seen.map((s) => s.id),
      ids,
      "in enqueue order, each once",
    );
    assert.ok(
      seen.every((s) => s.running === 1 && s.held === 1),
      "one slot, one lease held at a time (the server acks before it leases the next)",
    );
    assert.equal(rec.count("Lease"), 2, "the first Lease, then the long poll once the queue was empty");
    assert.equal(rec.count("AckBatch"), n);
    assert.equal(rec.count("Ack"), 0);
    assert.deepEqual(
      rec.ackBatches,
      ids.map((id) => [id]),
    );
    assert.deepEqual(rec.asked, Array(n).fill(1), "each AckBatch asked for as many jobs as it acked");
    assert.deepEqual(rec.handedOver, [...Array(n - 1).fill(1), 0]);
    for (const id of ids) assert.equal((await client.get(id)).attempt, 1);
  });

  test("an AckBatch asks for at most as many jobs as it acks, and the slots never hold more than `concurrency`", async () => {
    const queue = queueName("refill");
    const n = 60;
    await client.enqueueBatch(Array.from({ length: n }, (_, i) => ({ queue, payload: { i } })));
    const rec = recordingClient(spoold.address);
    let most = 0;
    let active = 0;
    let leased = 0;
    await withWorker(
      {
        [queue]: async (job) => {
          active += 1;
          most = Math.max(most, active);
          // Some jobs take a round trip, so acks of different sizes pile up while one is in flight.
          if ((job.payload as { i: number }).i % 3 === 0) {
            const running = await client.list({ filter: { queues: [queue], states: [JobState.RUNNING] }, pageSize: 100 });
            leased = Math.max(leased, running.jobs.length);
          }
          active -= 1;
        },
      },
      () => drained(queue),
      { concurrency: 4 },
      rec.client,
    );
    assert.ok(most <= 4, `${most} handlers ran at once for 4 slots`);
    assert.ok(leased >= 1 && leased <= 4, `the server saw ${leased} RUNNING jobs for 4 slots`);
    assert.equal(rec.ackBatches.flat().length, n);
    rec.ackBatches.forEach((acks, i) => {
      assert.ok(acks.length <= 4);
      assert.equal(rec.asked[i], acks.length, `batch ${i}: ${acks.length} acks asked for ${rec.asked[i]}`);
      assert.ok((rec.handedOver[i] ?? 0) <= acks.length);
    });
    assert.ok(rec.count("AckBatch") > 0 && rec.handedOver.some((h) => h > 0), "the AckBatches handed jobs over");
  });

  test("stop: AckBatches ask for nothing more; jobs an AckBatch in flight hands over run within the grace", async () => {
    const queue = queueName("stopnext");
    const ids = (await client.enqueueBatch([0, 1, 2].map((i) => ({ queue, payload: { i } })))).map((e) => e.job.id);
    const { rec, held, release } = holdingFirstRefill(); // released once the worker is stopping
    const seen: string[] = [];
    const worker = new Worker(rec.client, { concurrency: 1, pollWaitMs: 500, handleSignals: false, logger: quiet });
    worker.handle(queue, (job) => void seen.push(job.id));
    const running = worker.run();
    await held.opened;
    const stopping = worker.stop(5000);
    release.open();
    await stopping;
    await running;
    assert.deepEqual(seen, ids.slice(0, 2), "the job handed over while stopping ran; no other was leased");
    assert.deepEqual(rec.asked, [1, undefined], "the AckBatch sent after stop() asked for no job");
    assert.equal(rec.count("Lease"), 1);
    assert.equal(worker.running, 0);
    assert.equal((await client.get(ids[0]!)).state, JobState.SUCCEEDED);
    assert.equal((await client.get(ids[1]!)).state, JobState.SUCCEEDED);
    const untouched = await client.get(ids[2]!);
    assert.equal(untouched.state, JobState.PENDING);
    assert.equal(untouched.attempts.length, 0);
  });

  test("stop: a job an AckBatch hands over after the grace is released at once, without spending an attempt", async () => {
    const queue = queueName("latenext");
    const enqueued = await client.enqueueBatch(
      ["quick", "hold", "late"].map((kind) => ({ queue, payload: { kind }, maxAttempts: 1 })),
    );
    const [quick, hold, late] = enqueued.map((e) => e.job.id) as [string, string, string];
    const { rec, held, release } = holdingFirstRefill(); // released once the grace is over
    const seen: string[] = [];
    const logger = {
      warn: (message: string) => {
        if (message.includes("grace period over")) release.open();
      },
      error: () => {},
    };
    const worker = new Worker(rec.client, { concurrency: 2, pollWaitMs: 500, handleSignals: false, logger });
    worker.handle(queue, async (job) => {
      seen.push(job.id);
      if ((job.payload as { kind: string }).kind === "hold") {
        await once(job.signal, "abort");
        throw job.signal.reason;
      }
      return "done";
    });
    const running = worker.run();
    await held.opened; // "quick" finished, its AckBatch (asking for one job) is held; "hold" runs
    await worker.stop(200);
    await running;
    assert.deepEqual(seen.slice().sort(), [quick, hold].sort(), "the late job never ran");
    assert.deepEqual(rec.handedOver, [1]);
    assert.equal(worker.running, 0);
    assert.equal((await client.get(quick)).state, JobState.SUCCEEDED);
    for (const id of [hold, late]) {
      const job = await client.get(id);
      assert.equal(job.state, JobState.PENDING, `job ${id} is ready again`);
      assert.equal(job.attempt, 0);
      assert.deepEqual(
        job.attempts.map((a) => a.outcome),
        [AttemptOutcome.RELEASED],
      );
      assert.equal(job.lastError?.type, "WorkerShutdown");
    }
  });

  test("a job re-leased by the AckBatch that acked its stale lease keeps its own slot and heartbeats", async () => {
    const queue = queueName("again");
    const { job } = await client.enqueue(queue, {}, { maxAttempts: 2, backoff: { initialIntervalMs: 1, jitter: false } });
    let firstToken = "";
    // The first lease's heartbeats are lost on the way, so it expires while its handler runs.
    const rec = recordingClient(spoold.address, (method, message) => {
      if (method === "HeartbeatBatch" && (message as HeartbeatBatchRequest).heartbeats.some((h) => h.leaseToken === firstToken)) {
        throw new ConnectError("dropped by the test", Code.Unavailable);
      }
    });
    const warnings: string[] = [];
    const held: number[] = [];
    let worker: Worker | undefined;
    await withWorker(
      {
        [queue]: async (ctx) => {
          if (ctx.attempt === 1) {
            firstToken = ctx.leaseToken;
            await waitUntil(state(ctx.id, JobState.PENDING)); // the reaper took it back
            return "stale"; // acked with the stale token, which also asks for the next job: this one again
          }
          const first = ctx.leaseExpiresAt!.getTime();
          // Its heartbeats go through: the lease outlives its first expiry.
          await waitUntil(async () => {
            const expires = (await client.get(ctx.id)).leaseExpiresAt;
            return expires !== undefined && Number(expires.seconds) * 1000 > first + 1000;
          });
          // Long after the old entry's cleanup: this job still holds the worker's one slot.
          held.push(worker!.running);
          return "second";
        },
      },
      async (w) => {
        worker = w;
        await waitUntil(state(job.id, JobState.SUCCEEDED), 20_000);
      },
      { concurrency: 1, leaseDurationMs: 1500, logger: { warn: (m: string) => warnings.push(m), error: () => {} } },
      rec.client,
    );
    const done = await client.get(job.id);
    assert.equal(done.attempt, 2);
    assert.deepEqual(decodeBody(done.result, done.resultContentType), "second");
    assert.deepEqual(
      done.attempts.map((a) => a.outcome),
      [AttemptOutcome.LEASE_EXPIRED, AttemptOutcome.SUCCEEDED],
    );
    assert.deepEqual(held, [1], "the old entry's cleanup left the new one in its slot");
    assert.deepEqual(rec.handedOver, [1, 0], "the stale ack's AckBatch leased the job again");
    assert.ok(warnings.some((w) => w.includes(job.id) && w.includes("no longer ours")), warnings.join("\n"));
  });
});
