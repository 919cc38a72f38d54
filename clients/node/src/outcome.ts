// How a handler's failure becomes a Nack: the error's name, message and stack, within the
// server's limits (64 KiB of text, 256 characters of type, no NUL).
import type { NackOptions } from "./client.js";

const MAX_ERROR_BYTES = 64 * 1024;
const MAX_TYPE_CHARS = 256;
const TRUNCATED = "...[truncated]\n";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** At most `limit` UTF-8 bytes without NUL; a stack keeps its start, where the failing frame is. */
export function clip(text: string, limit = MAX_ERROR_BYTES): string {
  const clean = text.replaceAll("\0", "\\x00");
  const bytes = encoder.encode(clean);
  if (bytes.length <= limit) {
    return clean;
  }
  // A cut inside a multi-byte character decodes to U+FFFD; drop it.
  return decoder.decode(bytes.subarray(0, limit - TRUNCATED.length)).replace(/\uFFFD$/, "") + TRUNCATED;
}

export function nackOf(err: unknown, checkpoint: Uint8Array | undefined): NackOptions {
  const e = err instanceof Error ? err : new Error(String(err));
  const fields = e as { retryable?: unknown; retryAfterMs?: unknown };
  return {
    error: {
      type: clip(e.name || "Error", MAX_TYPE_CHARS),
      message: clip(e.message),
      details: clip(e.stack ?? ""),
    },
    retryable: fields.retryable === false ? false : undefined,
    retryAfterMs: typeof fields.retryAfterMs === "number" ? fields.retryAfterMs : undefined,
    checkpoint,
  };
}
