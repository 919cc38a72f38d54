// Pipelines from Node against a live spoold: a pipeline made with client.pipeline, steps that read
// their parents, a step that adds steps at run time (job.addStep) and a follow-up job.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, JobState, PipelineState, Worker, step, type JobContext, type Pipeline } from "../src/index.js";
import { queueName, startSpoold, waitUntil, type Spoold } from "./harness.js";

let spoold: Spoold;
let client: Client;

before(async () => {
  spoold = await startSpoold();
  client = spoold.client;
});
after(async () => spoold?.close());

async function withWorker(handlers: Record<string, (job: JobContext) => unknown>, body: () => Promise<void>): Promise<void> {
  const worker = new Worker(client, { pollWaitMs: 300, handleSignals: false, logger: { warn: () => {}, error: () => {} } });
  for (const [queue, fn] of Object.entries(handlers)) worker.handle(queue, fn);
  const running = worker.run();
  try {
    await body();
  } finally {
    await worker.stop(5000);
    await running;
  }
}

describe("pipelines", () => {
  test("a step adds a fan-out and its join at run time; a job follows up", async () => {
    const [plan, piece, gather, audit] = ["plan", "piece", "gather", "audit"].map(queueName) as [string, string, string, string];
    const joined: Record<string, unknown>[] = [];
    const p = await client.pipeline("dynamic", [step("plan", { queue: plan, payload: { parts: 3 } })]);
    assert.equal(p.state, PipelineState.RUNNING);
    await withWorker(
      {
        [plan]: (job) => {
          const { parts } = job.payload as { parts: number };
          const names = Array.from({ length: parts }, (_, i) => `part${i}`);
          names.forEach((name, i) => job.addStep(step(name, { queue: piece, payload: { i }, after: ["plan"] })));
          job.addStep(step("join", { queue: gather, after: names }));
          job.followUp(audit, { planned: parts });
          return parts;
        },
        [piece]: (job) => (job.payload as { i: number }).i * 10 + (job.parents["plan"] as number),
        [gather]: (job) => {
          joined.push({ ...job.parents });
          return Object.values(job.parents).reduce((a: number, b) => a + (b as number), 0);
        },
        [audit]: () => undefined,
      },
      async () => {
        const done = await waitUntil(async () => {
          const got = await client.pipelines.get(p.id);
          return got.state === PipelineState.SUCCEEDED ? got : undefined;
        }, 20_000);
        assert.deepEqual(
          done.steps.map((s) => s.name),
          ["plan", "part0", "part1", "part2", "join"],
        );
        assert.deepEqual(joined, [{ part0: 3, part1: 13, part2: 23 }]);
        const audits = await client.list({ filter: { queues: [audit] } });
        assert.equal(audits.jobs.length, 1);
      },
    );
  });

  test("pause, resume and fix-and-resume with an edited payload", async () => {
    const queue = queueName("fix");
    const p = await client.pipeline("fix", [step("a", { queue }), step("b", { queue, after: ["a"] })]);
    const paused = await client.pipelines.pause(p.id);
    assert.equal(paused.paused, true);
    assert.equal((await client.lease([queue])).length, 0, "nothing dispatched while paused");
    await client.pipelines.resume(p.id);
    const [a] = await client.lease([queue]);
    await client.nack(a!.job!.id, a!.leaseToken, { retryable: false, error: { type: "Bad", message: "bad" } });
    assert.equal((await client.pipelines.get(p.id)).state, PipelineState.FAILED);
    const retried = await client.pipelines.retry(a!.job!.id, { payload: { fixed: true } });
    assert.equal(retried.state, PipelineState.RUNNING);
    const [again] = await client.lease([queue]);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(again!.job!.payload)), { fixed: true });
  });
  test("watch follows the steps to the end; list finds the pipeline by name and state", async () => {
    const q = queueName("watched");
    const name = `watched-${q}`;
    const p = await client.pipeline(name, [step("a", { queue: q }), step("b", { queue: q, after: ["a"] })]);
    const seen: Record<string, number[]> = {};
    let last: Pipeline | undefined;
    const watching = (async () => {
      for await (const now of client.pipelines.watch(p.id)) {
        last = now;
        for (const s of now.steps) {
          const states = (seen[s.name] ??= []);
          if (states.at(-1) !== s.job!.state) states.push(s.job!.state);
        }
      }
    })();
    await withWorker({ [q]: () => "done" }, async () => {
      await watching;
    });
    assert.equal(last!.state, PipelineState.SUCCEEDED);
    assert.equal(last!.succeededSteps, 2);
    assert.equal(seen["b"]!.at(-1), JobState.SUCCEEDED);
    assert.equal(seen["b"]![0], JobState.WAITING);
    const listed = [];
    for await (const found of client.pipelines.list({ namePrefix: name, states: [PipelineState.SUCCEEDED] })) listed.push(found.id);
    assert.deepEqual(listed, [p.id]);
  });
});
