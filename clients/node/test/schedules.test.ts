// Schedules declared by Workers in code, upserted at start-up, and client.schedules, against a live spoold.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { InvalidArgumentError, JobState, ScheduleNotFoundError, Worker, decodeBody, intervalMs, type Client } from "../src/index.js";
import { startSpoold, waitUntil, type Spoold } from "./harness.js";

let spoold: Spoold;
let client: Client;
const quiet = { warn: () => {}, error: () => {} };

before(async () => {
  spoold = await startSpoold();
  client = spoold.client;
});
after(async () => spoold?.close());

function declaringWorker(seen: string[], cron = "0 3 * * *"): Worker {
  return new Worker(client, { pollWaitMs: 200, handleSignals: false, logger: quiet })
    .schedule(cron, { queue: "node-sync", timeZone: "America/New_York", overlap: "skip", payload: { full: true } }, (job) => {
      seen.push(job.job.headers["spool-fire-time"]!);
      return { synced: true };
    })
    .schedule("every 30s", { queue: "node-pings", name: "node-pinger", catchUp: "none", maxAttempts: 3 });
}

test("every 30s is an interval, anything else a cron expression", () => {
  assert.equal(intervalMs("every 30s"), 30_000);
  assert.equal(intervalMs("every 1.5h"), 5_400_000);
  assert.equal(intervalMs("*/5 * * * *"), undefined);
});

test("workers declare their schedules at start-up, once however many declare them", async () => {
  const seen: string[] = [];
  const workers = [declaringWorker(seen), declaringWorker(seen), declaringWorker(seen)];
  const running = workers.map((w) => w.run());
  try {
    const sync = await waitUntil(() => client.schedules.get("node-sync").catch(() => undefined));
    assert.equal(sync.timing.case, "cron");
    assert.equal(sync.timing.value, "0 3 * * *");
    assert.equal(sync.timeZone, "America/New_York");
    const pinger = await waitUntil(() => client.schedules.get("node-pinger").catch(() => undefined));
    assert.equal(pinger.timing.case, "interval");
    assert.equal(pinger.template?.maxAttempts, 3);
    const job = await client.schedules.trigger("node-sync");
    const done = await waitUntil(async () => {
      const j = await client.get(job.id);
      return j.state === JobState.SUCCEEDED ? j : undefined;
    });
    assert.deepEqual(decodeBody(done.result, done.resultContentType), { synced: true });
    assert.deepEqual(seen, [job.headers["spool-fire-time"]]);
  } finally {
    await Promise.all(workers.map((w) => w.stop(2000)));
    await Promise.all(running);
  }
  await client.schedules.pause("node-sync");
  const again = declaringWorker([], "0 4 * * *");
  const run = again.run();
  try {
    await waitUntil(async () => (await client.schedules.get("node-sync")).timing.value === "0 4 * * *");
    assert.equal((await client.schedules.get("node-sync")).paused, true); // the operator's pause is kept
  } finally {
    await again.stop(2000);
    await run;
  }
});

test("a bad declaration rejects run() with the field named", async () => {
  const worker = new Worker(client, { handleSignals: false, logger: quiet }).schedule("61 * * * *", { queue: "q" }, () => null);
  await assert.rejects(worker.run(), (err: unknown) => err instanceof InvalidArgumentError && /schedule\.cron/.test(err.message));
  await assert.rejects(client.schedules.get("q"), ScheduleNotFoundError);
});

test("a job carries its rate-limit key and limit", async () => {
  const { job } = await client.enqueue("node-rated", { n: 1 }, { rateLimitKey: "partner", rateLimit: { limit: 5, intervalMs: 60_000, burst: 2 } });
  assert.equal(job.rateLimitKey, "partner");
  assert.equal(job.rateLimit?.limit, 5);
  assert.equal(job.rateLimit?.burst, 2);
  const leased = await client.lease(["node-rated"], { maxJobs: 10 });
  assert.equal(leased.length, 1);
});
