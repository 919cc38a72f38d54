// Typed errors, chosen by the google.rpc.ErrorInfo reason the server attaches to a failed call
// (the grpc-status-details-bin trailer). The names follow the Python client's spool.errors.
import type { Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { millis } from "./convert.js";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** A call failed. `reason` is the server's ErrorInfo reason ("" when it sent none). */
export class SpoolError extends Error {
  override name = "SpoolError";
  /** When the same call may succeed, in ms (the server's google.rpc.RetryInfo); undefined if not said. */
  retryDelayMs: number | undefined;
  constructor(
    readonly code: Code,
    readonly reason: string,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    super(`${Code[code] ?? code}: ${message}${reason ? ` [${reason}]` : ""}`, options);
  }
}

/** The request was refused as malformed; `field` names the offending field. */
export class InvalidArgumentError extends SpoolError {
  override name = "InvalidArgumentError";
  get field(): string {
    return this.metadata["field"] ?? "";
  }
}

/** No job has that id. */
export class JobNotFoundError extends SpoolError {
  override name = "JobNotFoundError";
}

/** The lease token is stale: the lease expired, or the job was re-leased, finished or cancelled. */
/** No schedule has that name. */
export class ScheduleNotFoundError extends SpoolError {
  override name = "ScheduleNotFoundError";
}

export class LeaseLostError extends SpoolError {
  override name = "LeaseLostError";
}

/** The job's state does not allow the transition (e.g. requeueing a PENDING job). */
export class WrongStateError extends SpoolError {
  override name = "WrongStateError";
}

/** A payload or batch is over the server's limit. */
export class ResourceExhaustedError extends SpoolError {
  override name = "ResourceExhaustedError";
}

export class PayloadTooLargeError extends ResourceExhaustedError {
  override name = "PayloadTooLargeError";
}

export class BatchTooLargeError extends ResourceExhaustedError {
  override name = "BatchTooLargeError";
}

/**
 * A checkpoint came sooner than the server's minimum interval for the job allows; send it again
 * after `retryDelayMs` (a Worker does so itself).
 */
export class CheckpointRateLimitedError extends ResourceExhaustedError {
  override name = "CheckpointRateLimitedError";
}

/** The server or its database cannot be reached; the call may be retried. */
export class UnavailableError extends SpoolError {
  override name = "UnavailableError";
}

type ErrorClass = new (
  code: Code,
  reason: string,
  message: string,
  metadata?: Record<string, string>,
  options?: { cause?: unknown },
) => SpoolError;

const BY_REASON: Readonly<Record<string, ErrorClass>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  JOB_NOT_FOUND: JobNotFoundError,
  SCHEDULE_NOT_FOUND: ScheduleNotFoundError,
  SCHEDULE_EXISTS: InvalidArgumentError,
  LEASE_LOST: LeaseLostError,
  WRONG_STATE: WrongStateError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  BATCH_TOO_LARGE: BatchTooLargeError,
  CHECKPOINT_RATE_LIMITED: CheckpointRateLimitedError,
  DATABASE_UNAVAILABLE: UnavailableError,
  SHUTTING_DOWN: UnavailableError,
  TRANSIENT_CONFLICT: UnavailableError,
};

// When the server (or a proxy, or the channel itself) sent no ErrorInfo, the code still says enough.
const BY_CODE: Partial<Record<Code, ErrorClass>> = {
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.NotFound]: JobNotFoundError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.Unavailable]: UnavailableError,
};

function classFor(code: Code, reason: string): ErrorClass {
  return BY_REASON[reason] ?? BY_CODE[code] ?? SpoolError;
}

/**
 * True for failures worth retrying as they are: the server or its database unreachable, too slow, or
 * a call cut short (CANCELLED: a stopping server cuts in-flight calls; our own aborts are not retried).
 */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof UnavailableError ||
    (err instanceof SpoolError && (err.code === Code.DeadlineExceeded || err.code === Code.Canceled))
  );
}

// A server fault says nothing about the request, which may even have landed.
const UNANSWERED: ReadonlySet<Code> = new Set([Code.Internal, Code.Unknown, Code.Aborted, Code.DataLoss]);

/**
 * True when the server gave no answer to the request itself: transient failures, and server faults
 * (INTERNAL, UNKNOWN). The Worker repeats its Lease, Ack and Nack through these: an Ack that did
 * land is answered LEASE_LOST the second time, with the job SUCCEEDED, and counts as done.
 */
export function isUnanswered(err: unknown): boolean {
  return isTransient(err) || (err instanceof SpoolError && UNANSWERED.has(err.code));
}

/** True when the server refused an Ack's result for good: invalid (e.g. not JSON) or over the size limit. */
export function isResultRefused(err: unknown): boolean {
  if (!(err instanceof SpoolError) || (err.code !== Code.InvalidArgument && err.code !== Code.ResourceExhausted)) {
    return false;
  }
  const field = err.metadata["field"] ?? "";
  return field.endsWith("result") || field.endsWith("result_content_type");
}

/** The typed error for anything a call threw; non-RPC errors (programming errors) pass through. */
export function fromCallError(err: unknown): unknown {
  if (!(err instanceof ConnectError)) {
    return err;
  }
  const info = err.findDetails(ErrorInfoSchema)[0];
  const reason = info?.reason ?? "";
  const cls = classFor(err.code, reason);
  const found = new cls(err.code, reason, err.rawMessage, { ...(info?.metadata ?? {}) }, { cause: err });
  found.retryDelayMs = millis(err.findDetails(RetryInfoSchema)[0]?.retryDelay);
  return found;
}

/** The typed error for one refused item of a batch (AckBatch, HeartbeatBatch). */
export function itemError(code: number, reason: string, message: string, retryDelay?: Duration): SpoolError {
  const known = Code[code] !== undefined ? (code as Code) : Code.Unknown;
  const found = new (classFor(known, reason))(known, reason, message);
  found.retryDelayMs = millis(retryDelay);
  return found;
}
