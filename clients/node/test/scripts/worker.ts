// A Node worker process for the tests (Node's own and the Python e2e suite). What each job does
// is in its payload: {"do": "echo"} returns {"by": "node", "echo": payload}; {"do": "hold"} runs
// until its signal aborts; {"do": "fail"} throws. Events are printed as JSON lines on stdout.
//
//   node dist/test/scripts/worker.js ADDRESS QUEUE[,QUEUE...] [--lease-ms N] [--grace-ms N] [--id ID]
import { parseArgs } from "node:util";
import { Client, Worker, type JobContext } from "../../src/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "lease-ms": { type: "string" },
    "grace-ms": { type: "string", default: "10000" },
    id: { type: "string", default: `node-${process.pid}` },
  },
});
const [address, queues] = positionals;
if (address === undefined || queues === undefined) {
  throw new Error("usage: worker.js ADDRESS QUEUES [--lease-ms N] [--grace-ms N] [--id ID]");
}

function emit(event: string, job: JobContext, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, id: job.id, attempt: job.attempt, ...extra }) + "\n");
}

class JobFailed extends Error {
  override name = "JobFailed";
}

async function handle(job: JobContext): Promise<unknown> {
  const payload = job.payload as { do?: string };
  emit("started", job, { previousCheckpoint: job.previousCheckpoint });
  switch (payload.do) {
    case "echo":
      return { by: "node", worker: values.id, echo: payload };
    case "fail":
      throw new JobFailed(`failed on purpose in attempt ${job.attempt}`);
    case "hold":
      job.checkpoint({ held: job.attempt });
      await new Promise<void>((resolve) => job.signal.addEventListener("abort", () => resolve(), { once: true }));
      emit("aborted", job, { cause: (job.signal.reason as { stopCause?: string }).stopCause });
      throw job.signal.reason;
    default:
      throw new Error(`unknown action ${String(payload.do)}`);
  }
}

const leaseMs = values["lease-ms"];
const worker = new Worker(new Client(address), {
  concurrency: 4,
  pollWaitMs: 1000,
  leaseDurationMs: leaseMs === undefined ? undefined : Number(leaseMs),
  graceMs: Number(values["grace-ms"]),
  workerId: values.id,
  logger: { warn: () => {}, error: (...args: unknown[]) => console.error(...args) },
});
for (const queue of queues.split(",")) {
  worker.handle(queue, handle);
}
process.stdout.write(JSON.stringify({ event: "ready", worker: values.id }) + "\n");
await worker.run();
process.stdout.write(JSON.stringify({ event: "stopped" }) + "\n");
