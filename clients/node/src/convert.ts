// Conversions between the client's plain values (milliseconds, Date, JSON) and protobuf ones.
import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";

export const JSON_TYPE = "application/json";
export const BYTES_TYPE = "application/octet-stream";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function duration(ms: number | undefined): Duration | undefined {
  if (ms === undefined) {
    return undefined;
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`a duration must be a finite number of milliseconds >= 0, got ${ms}`);
  }
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) });
}

export function millis(d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6;
}

export function timestamp(date: Date | undefined): Timestamp | undefined {
  if (date === undefined) {
    return undefined;
  }
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1e6 });
}

export function date(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

/** Bytes go as they are; anything else is sent as JSON. */
export function encodeBody(value: unknown, contentType?: string): { bytes: Uint8Array; contentType: string } {
  if (value instanceof Uint8Array) {
    return { bytes: value, contentType: contentType ?? BYTES_TYPE };
  }
  return { bytes: encoder.encode(JSON.stringify(value ?? null)), contentType: contentType ?? JSON_TYPE };
}

/** JSON bodies parsed, others returned as bytes; an empty body is undefined. */
export function decodeBody(bytes: Uint8Array, contentType: string): unknown {
  if (bytes.length === 0) {
    return undefined;
  }
  if (contentType === "" || contentType === JSON_TYPE || contentType.endsWith("+json")) {
    return JSON.parse(decoder.decode(bytes)) as unknown;
  }
  return bytes;
}
