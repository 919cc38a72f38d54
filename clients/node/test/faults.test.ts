// The Worker against a spoold whose calls fail on purpose: tests/e2e/faulty_spoold.py injects
// INTERNAL and UNAVAILABLE with a server interceptor, before a call runs (it never landed) or after
// (it landed, its answer is lost). A handler's success is recorded once, with no extra attempt.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AttemptOutcome, Client, JobState, SpoolError, Worker, decodeBody, isTransient } from "../src/index.js";
import { FAULTY_SPOOLD, queueName, startSpoold, waitUntil, type Spoold } from "./harness.js";

/** Runs `body` against a spoold with these faults (SPOOL_TEST_FAULTS) and settings, then closes it. */
async function withFaulty(faults: string, env: Record<string, string>, body: (spoold: Spoold) => Promise<void>) {
  const spoold = await startSpoold(
    { SPOOL_TEST_FAULTS: faults, SPOOL_REAPER_INTERVAL: "0.2", SPOOL_POOL_MAX_SIZE: "4", ...env },
    FAULTY_SPOOLD,
  );
  try {
    await body(spoold);
  } finally {
    await spoold.close();
  }
}

/** A client whose transport counts the calls of each method (it changes nothing). */
function counting(address: string) {
  const calls: string[] = [];
  const record: Interceptor = (next) => async (req) => {
    calls.push(req.method.name);
    return next(req);
  };
  const client = new Client({ transport: createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [record] }) });
  return { client, count: (method: string) => calls.filter((m) => m === method).length };
}

interface Logged {
  info: string[];
  warn: string[];
  error: string[];
}

function recordingLogger(): Logged & { logger: { info(m: string): void; warn(m: string): void; error(m: string): void } } {
  const logged: Logged = { info: [], warn: [], error: [] };
  return {
    ...logged,
    logger: {
      info: (m) => logged.info.push(m),
      warn: (m) => logged.warn.push(m),
      error: (m) => logged.error.push(m),
    },
  };
}

/** Runs one job (maxAttempts 1) through a Worker with `handler`; the job once it is SUCCEEDED. */
async function runOne(
  spoold: Spoold,
  through: Client,
  options: { leaseDurationMs?: number; enqueueLeaseMs?: number; handler?: () => Promise<unknown> } = {},
) {
  const queue = queueName("faults");
  const log = recordingLogger();
  const seen: number[] = [];
  const worker = new Worker(through, {
    pollWaitMs: 500,
    handleSignals: false,
    logger: log.logger,
    leaseDurationMs: options.leaseDurationMs,
  });
  worker.handle(queue, async (job) => {
    seen.push(job.attempt);
    if (options.handler) await options.handler();
    return { ok: 1 };
  });
  const running = worker.run();
  try {
    const { job } = await spoold.client.enqueue(queue, {}, { maxAttempts: 1, leaseDurationMs: options.enqueueLeaseMs });
    const done = await waitUntil(async () => {
      const j = await spoold.client.get(job.id);
      return j.state === JobState.SUCCEEDED || j.state === JobState.DEAD ? j : undefined;
    }, 30_000);
    return { done, seen, log };
  } finally {
    await worker.stop(5000);
    await running;
  }
}

function assertSucceededOnce(run: Awaited<ReturnType<typeof runOne>>): void {
  assert.equal(run.done.state, JobState.SUCCEEDED, run.done.lastError?.message);
  assert.deepEqual(run.seen, [1], "the handler ran once");
  assert.deepEqual(
    run.done.attempts.map((a) => a.outcome),
    [AttemptOutcome.SUCCEEDED],
  );
  assert.deepEqual(decodeBody(run.done.result, run.done.resultContentType), { ok: 1 });
}

describe("Worker under injected faults", () => {
  for (const code of ["INTERNAL", "UNAVAILABLE"]) {
    test(`an AckBatch whose answer is lost (${code}) is repeated and counts as done`, async () => {
      await withFaulty(`AckBatch:after:${code}`, {}, async (spoold) => {
        const rec = counting(spoold.address);
        const run = await runOne(spoold, rec.client);
        assertSucceededOnce(run);
        assert.equal(rec.count("AckBatch"), 2);
        assert.equal(rec.count("Nack"), 0, "a success is never turned into a failure");
        assert.ok(run.log.info.some((m) => m.includes("ack already recorded")), run.log.info.join("\n"));
        assert.deepEqual(run.log.error, []);
      });
    });

    test(`an AckBatch that fails before landing (${code}) is repeated until answered`, async () => {
      await withFaulty(`AckBatch:before:${code},AckBatch:before:${code},AckBatch:before:${code}`, {}, async (spoold) => {
        const rec = counting(spoold.address);
        const run = await runOne(spoold, rec.client);
        assertSucceededOnce(run);
        assert.equal(rec.count("AckBatch"), 4);
        assert.equal(rec.count("Nack"), 0);
      });
    });
  }

  test("single Acks after a refused batch are repeated too", async () => {
    await withFaulty("AckBatch:before:INVALID_ARGUMENT,Ack:after:INTERNAL,Ack:before:UNAVAILABLE", {}, async (spoold) => {
      const rec = counting(spoold.address);
      const run = await runOne(spoold, rec.client);
      assertSucceededOnce(run);
      assert.equal(rec.count("Ack"), 3);
      assert.equal(rec.count("Nack"), 0);
    });
  });

  test("a worker whose clock is an hour behind the server's still heartbeats in time", async () => {
    // The server's timestamps are an hour ahead: a lease that seems to run for an hour is 1.5 s long.
    await withFaulty("", { SPOOL_TEST_CLOCK_SKEW: "3600" }, async (spoold) => {
      const rec = counting(spoold.address);
      const run = await runOne(spoold, rec.client, {
        enqueueLeaseMs: 1500,
        handler: () => new Promise((r) => setTimeout(r, 3500)), // the work, longer than the lease
      });
      assertSucceededOnce(run);
      assert.ok(rec.count("HeartbeatBatch") >= 3, `${rec.count("HeartbeatBatch")} heartbeats`);
    });
  });

  test("a worker whose clock is an hour ahead beats every third of the lease, not without pause", async () => {
    await withFaulty("", { SPOOL_TEST_CLOCK_SKEW: "-3600" }, async (spoold) => {
      const rec = counting(spoold.address);
      const run = await runOne(spoold, rec.client, {
        enqueueLeaseMs: 1500,
        handler: () => new Promise((r) => setTimeout(r, 3000)),
      });
      assertSucceededOnce(run);
      // A beat every 500 ms: about 6 in 3 s (a storm would be one every 100 ms).
      assert.ok(rec.count("HeartbeatBatch") <= 12, `${rec.count("HeartbeatBatch")} heartbeats`);
    });
  });

  test("heartbeats send whole milliseconds as their deadline (a fraction is answered INTERNAL)", async () => {
    await withFaulty("", {}, async (spoold) => {
      // Every third of 4 s is 1333.33 ms: the beat's deadline must be sent as an integer.
      const run = await runOne(spoold, spoold.client, {
        leaseDurationMs: 4000,
        handler: () => new Promise((r) => setTimeout(r, 5500)),
      });
      assertSucceededOnce(run);
      assert.deepEqual(
        run.log.warn.filter((m) => m.includes("heartbeat")),
        [],
      );
    });
  });

  test("an EnqueueBatch whose answer is over 4 MiB is read whole", async () => {
    await withFaulty("", {}, async (spoold) => {
      const queue = queueName("big");
      const payload = "x".repeat(900 * 1024);
      const results = await spoold.client.enqueueBatch(Array.from({ length: 6 }, () => ({ queue, payload })));
      assert.equal(results.length, 6);
      assert.equal(decodeBody(results[5]!.job.payload, results[5]!.job.contentType), payload);
    });
  });

  test("a cancel reaches the handler at once (WatchCancels), not at the next heartbeat", async () => {
    await withFaulty("", {}, async (spoold) => {
      const rec = counting(spoold.address);
      const queue = queueName("cancel");
      let started = false;
      let aborted = false;
      // A 60 s lease: the first heartbeat would come after 20 s.
      const worker = new Worker(rec.client, { pollWaitMs: 500, handleSignals: false, logger: recordingLogger().logger, leaseDurationMs: 60_000 });
      worker.handle(queue, (job) => {
        started = true;
        return new Promise((_, reject) =>
          job.signal.addEventListener("abort", () => ((aborted = true), reject(job.signal.reason)), { once: true }),
        );
      });
      const running = worker.run();
      try {
        const { job } = await spoold.client.enqueue(queue, {});
        await waitUntil(() => started && worker.hearsCancels);
        await spoold.client.cancel(job.id);
        await waitUntil(() => aborted, 5000);
        await waitUntil(async () => (await spoold.client.get(job.id)).state === JobState.CANCELLED, 5000);
      } finally {
        await worker.stop(5000);
        await running;
      }
      assert.equal(rec.count("HeartbeatBatch"), 0, "no heartbeat was needed");
    });
  });

  test("against a server without WatchCancels (UNIMPLEMENTED), the heartbeat still brings a cancel", async () => {
    await withFaulty("WatchCancels:before:UNIMPLEMENTED", {}, async (spoold) => {
      const queue = queueName("oldserver");
      const log = recordingLogger();
      let started = false;
      let aborted = false;
      const worker = new Worker(spoold.client, { pollWaitMs: 500, handleSignals: false, logger: log.logger, leaseDurationMs: 1500 });
      worker.handle(queue, (job) => {
        started = true;
        return new Promise((_, reject) =>
          job.signal.addEventListener("abort", () => ((aborted = true), reject(job.signal.reason)), { once: true }),
        );
      });
      const running = worker.run();
      try {
        const { job } = await spoold.client.enqueue(queue, {});
        await waitUntil(() => started);
        await spoold.client.cancel(job.id);
        await waitUntil(() => aborted, 10_000);
        await waitUntil(async () => (await spoold.client.get(job.id)).state === JobState.CANCELLED, 5000);
        assert.equal(worker.hearsCancels, false);
        assert.ok(log.info.some((m) => m.includes("heartbeats only")), log.info.join("\n"));
      } finally {
        await worker.stop(5000);
        await running;
      }
    });
  });

  test("the worker logs one start-up line, and each failure as a warning with the job id and error", async () => {
    await withFaulty("", {}, async (spoold) => {
      const queue = queueName("emails");
      const log = recordingLogger();
      const worker = new Worker(spoold.client, { pollWaitMs: 500, handleSignals: false, logger: log.logger, concurrency: 3 });
      worker.handle(queue, () => {
        throw new TypeError("no such mailbox");
      });
      const running = worker.run();
      try {
        const { job } = await spoold.client.enqueue(queue, {}, { maxAttempts: 1 });
        await waitUntil(async () => (await spoold.client.get(job.id)).state === JobState.DEAD);
        assert.deepEqual(
          log.info.filter((m) => m.includes("started")),
          [`spool worker ${worker.workerId} started: queues ${queue}, concurrency 3, server ${spoold.address}`],
        );
        const failed = log.warn.filter((m) => m.includes(job.id));
        assert.equal(failed.length, 1, log.warn.join("\n"));
        assert.match(failed[0]!, /attempt 1 of 1\) failed: TypeError: no such mailbox/);
      } finally {
        await worker.stop(5000);
        await running;
      }
    });
  });

  const checkpointFaults: [string, string][] = [
    ["HeartbeatBatch:before:INTERNAL", "the batch met INTERNAL"],
    ["HeartbeatBatch:before:RESOURCE_EXHAUSTED,Heartbeat:before:ABORTED", "the single beat after a refused batch met ABORTED"],
  ];
  for (const [faults, label] of checkpointFaults) {
    test(`a checkpoint whose heartbeat met a fault (${label}) is sent again, not dropped`, async () => {
      await withFaulty(faults, {}, async (spoold) => {
        const queue = queueName("progress");
        const log = recordingLogger();
        const worker = new Worker(spoold.client, {
          pollWaitMs: 500,
          handleSignals: false,
          logger: log.logger,
          leaseDurationMs: 1500,
        });
        let stored!: () => void;
        const checkpointed = new Promise<void>((resolve) => (stored = resolve));
        worker.handle(queue, async (job) => {
          job.checkpoint({ done: 7 });
          await checkpointed;
          return { ok: 1 };
        });
        const running = worker.run();
        try {
          const { job } = await spoold.client.enqueue(queue, {}, { maxAttempts: 1 });
          await waitUntil(async () => {
            const saved = (await spoold.client.get(job.id)).checkpoint;
            return new TextDecoder().decode(saved) === '{"done":7}';
          }, 15_000);
          stored();
          await waitUntil(async () => (await spoold.client.get(job.id)).state === JobState.SUCCEEDED);
          assert.ok(!log.error.some((m) => m.includes("dropped")), log.error.join("\n"));
        } finally {
          stored();
          await worker.stop(5000);
          await running;
        }
      });
    });
  }

  test("a watch refused UNAVAILABLE is opened again, and repeats no snapshot", async () => {
    await withFaulty("WatchJob:before:UNAVAILABLE,WatchJob:before:UNAVAILABLE", {}, async (spoold) => {
      const rec = counting(spoold.address);
      const { job } = await spoold.client.enqueue(queueName("watched"), {});
      const states: JobState[] = [];
      for await (const seen of rec.client.watch(job.id)) {
        states.push(seen.state);
        if (seen.state === JobState.PENDING) await spoold.client.cancel(job.id);
      }
      assert.deepEqual(states, [JobState.PENDING, JobState.CANCELLED]);
      assert.equal(rec.count("WatchJob"), 3);
    });
  });

  test("a call cut short (CANCELLED) is transient", () => {
    assert.ok(isTransient(new SpoolError(Code.Canceled, "", "cut by a stopping server")));
    assert.ok(!isTransient(new SpoolError(Code.InvalidArgument, "", "bad")));
  });
});
