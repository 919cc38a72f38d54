// Hears cancellations of the worker's running jobs at once, through WatchCancels (one stream per
// worker), rather than at the next heartbeat, which still answers cancel_requested as before.
import { Code } from "@connectrpc/connect";
import type { Client } from "./client.js";
import { SpoolError } from "./errors.js";
import type { Logger } from "./heartbeater.js";

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 10_000;
// An older server, or a key that may not: the heartbeats deliver cancellations instead.
const GIVE_UP: ReadonlySet<Code> = new Set([Code.Unimplemented, Code.PermissionDenied, Code.Unauthenticated]);

/**
 * Calls `onCancel(jobId)` for each cancellation pushed, reconnecting with backoff, until `signal`
 * aborts; `onCancel("")` says a stream is registered.
 */
export async function watchCancels(
  client: Client,
  workerId: string,
  onCancel: (jobId: string) => void,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  for (let failures = 0; !signal.aborted; ) {
    try {
      for await (const jobId of client.watchCancels(workerId, { signal })) {
        failures = 0;
        onCancel(jobId);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof SpoolError && GIVE_UP.has(err.code)) {
        log.info?.(`spool worker: cancellations come with heartbeats only (WatchCancels: ${Code[err.code]})`);
        return;
      }
    }
    failures += 1;
    const delay = Math.random() * Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(failures - 1, 16));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
