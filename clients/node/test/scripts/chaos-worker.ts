// A Node Worker process for the chaos suite (tests/chaos); its stdout is JSON lines the suite reads back.
//
//   node dist/test/scripts/chaos-worker.js ADDRESS QUEUE WORKER_ID
//
// Each handler run prints {"ev":"start"} and, before it returns, {"ev":"done"} with its lease token;
// the result names that lease. Every call that ends with a code other than OK prints {"ev":"code"}
// (an interceptor on the transport sees each one, retried or not).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client, Worker, type JobContext } from "../../src/index.js";

const [address, queue, workerId] = process.argv.slice(2);
if (address === undefined || queue === undefined || workerId === undefined) {
  throw new Error("usage: chaos-worker.js ADDRESS QUEUE WORKER_ID");
}

function print(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ ...line, t: Date.now() / 1000 }) + "\n");
}

const codes: Interceptor = (next) => async (req) => {
  const rpc = req.method.name;
  try {
    return await next(req);
  } catch (err) {
    const code = err instanceof ConnectError ? err.code : Code.Unknown;
    print({ ev: "code", rpc, code: codeName(code), message: String(err).slice(0, 300) });
    throw err;
  }
};

function codeName(code: Code): string {
  // Connect's names in gRPC's spelling: Code.DeadlineExceeded -> DEADLINE_EXCEEDED.
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

const transport = createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [codes] });
const worker = new Worker(new Client({ address, transport, timeoutMs: 10_000 }), {
  concurrency: 8,
  pollWaitMs: 2000,
  leaseDurationMs: 6000,
  workerId,
  handleSignals: true,
  logger: {
    warn: (...args: unknown[]) => print({ ev: "log", level: "warn", text: args.map(String).join(" ").slice(0, 500) }),
    error: (...args: unknown[]) => print({ ev: "log", level: "error", text: args.map(String).join(" ").slice(0, 500) }),
  },
});

async function handle(job: JobContext): Promise<unknown> {
  const line = { job: job.id, lease: job.leaseToken, attempt: job.attempt, w: workerId };
  print({ ev: "start", ...line });
  const ms = (job.payload as { ms?: number }).ms ?? 10;
  await new Promise((resolve) => setTimeout(resolve, ms));
  print({ ev: "done", ...line });
  return { lease: job.leaseToken, w: workerId };
}

worker.handle(queue, handle);
print({ ev: "ready", w: workerId });
await worker.run();
print({ ev: "stopped", w: workerId });
