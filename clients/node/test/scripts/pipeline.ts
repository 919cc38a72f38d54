// Pipelines across languages, for the Python e2e suite. One shape, five steps on queues named
// PREFIX-STEP: extract (returns payload.n) -> double -> plus1 and plus2 (fan-out) -> sum (join).
//
//   node dist/test/scripts/pipeline.js produce ADDRESS PREFIX     prints {"pipeline": ID}
//   node dist/test/scripts/pipeline.js work ADDRESS PREFIX [--hold STEP] [--lease-ms N]
//     prints {"event":"ran","step":...,"attempt":...} per handler run; with --hold, that step's
//     first attempt prints {"event":"holding"} and never ends (the test kills the process).
import { parseArgs } from "node:util";
import { BackoffKind, Client, Worker, step, type JobContext } from "../../src/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { hold: { type: "string" }, "lease-ms": { type: "string" } },
});
const [mode, address, prefix] = positionals;
if (address === undefined || prefix === undefined) {
  throw new Error("usage: pipeline.js produce|work ADDRESS PREFIX [--hold STEP] [--lease-ms N]");
}
const client = new Client(address);
const q = (name: string) => `${prefix}-${name}`;
const print = (line: Record<string, unknown>) => process.stdout.write(JSON.stringify(line) + "\n");

if (mode === "produce") {
  const retry = { maxAttempts: 3, backoff: { kind: BackoffKind.FIXED, initialIntervalMs: 50, jitter: false } };
  const p = await client.pipeline("interop", [
    step("extract", { queue: q("extract"), payload: { n: 5 }, ...retry }),
    step("double", { queue: q("double"), after: ["extract"], ...retry }),
    step("plus1", { queue: q("plus1"), after: ["double"], ...retry }),
    step("plus2", { queue: q("plus2"), after: ["double"], ...retry }),
    step("sum", { queue: q("sum"), after: ["plus1", "plus2"], ...retry }),
  ]);
  print({ pipeline: p.id, steps: p.steps.map((s) => s.job!.id) });
} else {
  const handlers: Record<string, (job: JobContext) => unknown> = {
    extract: (job) => (job.payload as { n: number }).n,
    double: (job) => (job.parents["extract"] as number) * 2,
    plus1: (job) => (job.parents["double"] as number) + 1,
    plus2: (job) => (job.parents["double"] as number) + 2,
    sum: (job) => (job.parents["plus1"] as number) + (job.parents["plus2"] as number),
  };
  const leaseMs = values["lease-ms"];
  const worker = new Worker(client, {
    concurrency: 4,
    pollWaitMs: 500,
    leaseDurationMs: leaseMs === undefined ? undefined : Number(leaseMs),
    logger: { warn: () => {}, error: (...args: unknown[]) => console.error(...args) },
  });
  for (const [name, fn] of Object.entries(handlers)) {
    worker.handle(q(name), async (job) => {
      print({ event: "ran", step: name, attempt: job.attempt });
      if (values.hold === name && job.attempt === 1) {
        print({ event: "holding", step: name });
        await new Promise(() => {}); // until the process is killed
      }
      return fn(job);
    });
  }
  print({ event: "ready" });
  await worker.run();
}
