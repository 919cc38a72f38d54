// The Node Worker under the server's checkpoint rate limit (SPOOL_CHECKPOINT_MIN_INTERVAL): a
// durable step's awaited checkpoint refused as too soon is sent again after the RetryInfo delay.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { CheckpointRateLimitedError, JobState, Worker, type Client } from "../src/index.js";
import { queueName, startSpoold, waitUntil, type Spoold } from "./harness.js";

const STEPS = 25;
let spoold: Spoold;
let client: Client;

before(async () => {
  spoold = await startSpoold({ SPOOL_CHECKPOINT_MIN_INTERVAL: "0.05" });
  client = spoold.client;
});
after(async () => spoold?.close());

test("a tight loop of checkpoints is refused with the server's retry delay", async () => {
  const queue = queueName("tight");
  await client.enqueue(queue, {});
  const [leased] = await client.lease([queue], { maxJobs: 1 });
  assert.ok(leased?.job);
  const checkpoint = new TextEncoder().encode("{}");
  await client.heartbeat(leased.job.id, leased.leaseToken, { checkpoint });
  for (let n = 0; n < 5; n++) {
    const refused = await client.heartbeat(leased.job.id, leased.leaseToken, { checkpoint }).then(
      () => undefined,
      (err: unknown) => err,
    );
    if (refused === undefined) continue; // the interval passed between two calls: admitted
    assert.ok(refused instanceof CheckpointRateLimitedError, String(refused));
    assert.equal(refused.reason, "CHECKPOINT_RATE_LIMITED");
    assert.ok(refused.retryDelayMs !== undefined && refused.retryDelayMs > 0 && refused.retryDelayMs <= 50);
    await client.heartbeat(leased.job.id, leased.leaseToken); // no checkpoint: never refused
    return;
  }
  assert.fail("no checkpoint was refused");
});

test("a job of many quick durable steps completes with every step saved", async () => {
  const queue = queueName("steps");
  const seen: number[] = [];
  const worker = new Worker(client, { pollWaitMs: 500, handleSignals: false, logger: { warn: () => {}, error: () => {} } });
  worker.handle(queue, async (job) => {
    let total = 0;
    for (let n = 0; n < STEPS; n++) {
      total += await job.step(`s${n}`, () => n);
      seen.push(n);
    }
    return total;
  });
  const running = worker.run();
  try {
    const { job } = await client.enqueue(queue, {});
    const done = await waitUntil(async () => {
      const found = await client.get(job!.id);
      return found.state === JobState.SUCCEEDED ? found : undefined;
    }, 30_000);
    const steps = JSON.parse(new TextDecoder().decode(done.checkpoint))["spool.steps"];
    assert.deepEqual(steps, Object.fromEntries([...Array(STEPS).keys()].map((n) => [`s${n}`, n])));
    assert.deepEqual(seen, [...Array(STEPS).keys()], "each step ran once, in one attempt");
    assert.equal(JSON.parse(new TextDecoder().decode(done.result)), (STEPS * (STEPS - 1)) / 2);
  } finally {
    await worker.stop(5000);
    await running;
  }
});
