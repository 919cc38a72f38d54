// Per-attempt logs from the Node Worker: job.log lines reach the attempt with heartbeats and the
// outcome; floods, huge lines, NUL and unpaired surrogates are bounded or cleaned, never fatal.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AttemptOutcome, JobState, Worker, type Client, type JobContext } from "../src/index.js";
import { AttemptLog, MAX_PENDING_CHARS } from "../src/logs.js";
import { queueName, startSpoold, waitUntil, type Spoold } from "./harness.js";

let spoold: Spoold;
let client: Client;
const quiet = { warn: () => {}, error: () => {} };

before(async () => {
  spoold = await startSpoold();
  client = spoold.client;
});
after(async () => spoold?.close());

async function withWorker(queue: string, fn: (job: JobContext) => unknown, body: () => Promise<void>): Promise<void> {
  const worker = new Worker(client, { pollWaitMs: 500, handleSignals: false, logger: quiet, leaseDurationMs: 1500 });
  worker.handle(queue, fn);
  const running = worker.run();
  try {
    await body();
  } finally {
    await worker.stop(5000);
    await running;
  }
}

describe("attempt logs", () => {
  test("lines go with heartbeats while the handler runs, the rest with the Ack", async () => {
    const queue = queueName("logs");
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    await withWorker(
      queue,
      async (job) => {
        job.log("charging card");
        await finished;
        job.log("charged", "WARN");
      },
      async () => {
        const { job } = await client.enqueue(queue, {});
        await waitUntil(async () => {
          const got = await client.get(job.id, { includeLogs: true });
          return got.attempts.at(-1)?.logs.includes("INFO charging card") ? true : undefined;
        });
        assert.equal((await client.get(job.id)).attempts.at(-1)?.logs, "", "left out unless asked");
        finish();
        await waitUntil(async () => ((await client.get(job.id)).state === JobState.SUCCEEDED ? true : undefined));
        const [attempt] = (await client.get(job.id, { includeLogs: true })).attempts;
        assert.equal(attempt?.outcome, AttemptOutcome.SUCCEEDED);
        assert.match(attempt?.logs ?? "", /^\S+Z INFO charging card\n\S+Z WARN charged\n$/);
      },
    );
  });

  test("a flood, a 10 MB line, NUL and a lone surrogate are bounded or cleaned, and the Nack carries them", async () => {
    const queue = queueName("flood");
    await withWorker(
      queue,
      (job) => {
        job.log("y".repeat(10 * 1024 * 1024));
        for (let i = 0; i < 100_000; i++) job.log(`line ${i}`);
        job.log("nul \0 and \uD800 survive");
        throw new Error("after the flood");
      },
      async () => {
        const { job } = await client.enqueue(queue, {});
        await waitUntil(async () => ((await client.get(job.id)).state === JobState.DEAD ? true : undefined));
        const [attempt] = (await client.get(job.id, { includeLogs: true })).attempts;
        const logs = attempt?.logs ?? "";
        assert.ok(logs.length <= 64 * 1024 + 200);
        assert.match(logs, /^\[spool: \d+ log lines \(\d+ characters\) dropped here\]\n/);
        assert.ok(logs.includes(" INFO line 99999\n"));
        assert.ok(logs.endsWith(" INFO nul \uFFFD and \uFFFD survive\n"));
      },
    );
  });

  test("a failed send puts its lines back within the bound", () => {
    const log = new AttemptLog();
    log.write("INFO", "a");
    const sent = log.take();
    log.write("INFO", "b");
    log.putBack(sent);
    assert.match(log.take(), /Z INFO a\n.*Z INFO b\n$/s);
    for (let i = 0; i < 10_000; i++) log.write("INFO", "z".repeat(100));
    assert.ok(log.take().length <= MAX_PENDING_CHARS + 200);
  });
});
