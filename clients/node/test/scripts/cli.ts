// Client calls for the Python e2e suite; each prints JSON lines on stdout.
//
//   node dist/test/scripts/cli.js enqueue ADDRESS QUEUE JSON     {"id": ...}
//   node dist/test/scripts/cli.js watch ADDRESS JOB_ID           {"state": ..., "attempt": ...} per change
//   node dist/test/scripts/cli.js stale-ack ADDRESS QUEUE        leases with a short lease, waits until the
//                                                                job is leased again, then acks with the stale token
import { Code } from "@connectrpc/connect";
import { Client, JobState, SpoolError } from "../../src/index.js";

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

async function enqueue(client: Client, queue: string, json: string): Promise<void> {
  const { job } = await client.enqueue(queue, JSON.parse(json), { maxAttempts: 3 });
  print({ id: job.id });
}

async function watch(client: Client, jobId: string): Promise<void> {
  try {
    for await (const job of client.watch(jobId)) {
      print({ state: JobState[job.state], attempt: job.attempt, workerId: job.workerId });
    }
  } catch (err) {
    if (err instanceof SpoolError && err.code === Code.Unimplemented) {
      print({ unimplemented: true });
      process.exit(3);
    }
    throw err;
  }
}

async function staleAck(client: Client, queue: string): Promise<void> {
  const [leased] = await client.lease([queue], { waitMs: 10_000, leaseDurationMs: 300, workerId: "node-stale" });
  if (leased === undefined) throw new Error(`no job on ${queue}`);
  const id = leased.job!.id;
  print({ leased: id, attempt: leased.job!.attempt });
  // Hold on without heartbeats until the reaper frees the job and someone else leases it.
  for (;;) {
    const job = await client.get(id);
    if (job.state === JobState.RUNNING && job.attempt > leased.job!.attempt) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    await client.ack(id, leased.leaseToken, { result: { by: "stale node worker" } });
    print({ acked: true });
  } catch (err) {
    if (!(err instanceof SpoolError)) throw err;
    print({ code: Code[err.code], reason: err.reason });
  }
}

const [command, address, arg, extra] = process.argv.slice(2);
const client = new Client(address ?? "127.0.0.1:50051");
switch (command) {
  case "enqueue":
    await enqueue(client, arg!, extra ?? "{}");
    break;
  case "watch":
    await watch(client, arg!);
    break;
  case "stale-ack":
    await staleAck(client, arg!);
    break;
  default:
    throw new Error(`unknown command ${String(command)}`);
}
