// Server streams that wait by design (WatchJob, WatchPipeline): opened again when the server is
// briefly out of reach, as the Python client's watch does.
import { pause } from "./acks.js";
import { fromCallError, UnavailableError } from "./errors.js";

// Tries in all (the first included), and full jitter over 100 ms doubling up to 5 s.
const TRIES = 8;
const FIRST_MS = 100;
const MAX_MS = 5000;

/**
 * The messages of the stream `open` starts, until it ends: after UNAVAILABLE (a replica stopping,
 * the database away) it is opened again with capped, jittered backoff, reset by each message.
 * Anything else, the tries spent, or `signal` aborted is thrown as a SpoolError.
 */
export async function* reopened<T>(open: () => AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
  for (let failures = 0; ; ) {
    try {
      for await (const message of open()) {
        failures = 0;
        yield message;
      }
      return;
    } catch (err) {
      const error = fromCallError(err);
      if (!(error instanceof UnavailableError) || signal?.aborted || ++failures >= TRIES) throw error;
      await pause(Math.random() * Math.min(MAX_MS, FIRST_MS * 2 ** failures), signal);
    }
  }
}
