// Durable steps in one job (job.step), for the Python e2e suite. The handler of QUEUE runs three
// steps; each appends its name to LOG when it runs. With --hold, the first attempt stops inside
// the third step (prints {"event":"holding"}) until the process is killed.
//
//   node dist/test/scripts/durable.js ADDRESS QUEUE LOG [--hold] [--lease-ms N]
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Client, Worker } from "../../src/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { hold: { type: "boolean", default: false }, "lease-ms": { type: "string" } },
});
const [address, queue, log] = positionals;
if (address === undefined || queue === undefined || log === undefined) {
  throw new Error("usage: durable.js ADDRESS QUEUE LOG [--hold] [--lease-ms N]");
}
const print = (line: Record<string, unknown>) => process.stdout.write(JSON.stringify(line) + "\n");
const leaseMs = values["lease-ms"];
const worker = new Worker(new Client(address), {
  pollWaitMs: 500,
  leaseDurationMs: leaseMs === undefined ? undefined : Number(leaseMs),
  logger: { warn: () => {}, error: (...args: unknown[]) => console.error(...args) },
});
worker.handle(queue, async (job) => {
  const one = await job.step("one", () => {
    appendFileSync(log, "one\n");
    return 1;
  });
  const two = await job.step("two", async () => {
    appendFileSync(log, "two\n");
    return { n: one + 1 };
  });
  const three = await job.step("three", async () => {
    appendFileSync(log, "three\n");
    if (values.hold && job.attempt === 1) {
      print({ event: "holding" });
      await new Promise(() => {}); // until the process is killed
    }
    return two.n + 1;
  });
  return { one, two, three, by: "node" };
});
print({ event: "ready" });
await worker.run();
