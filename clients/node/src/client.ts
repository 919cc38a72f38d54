// The typed client: one method per RPC, plain values in (milliseconds, Date, JSON), typed errors out.
import { withSendSpan } from "./tracing.js";
import { create, equals } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { createClient, type Client as RpcClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { duration, date, encodeBody, timestamp } from "./convert.js";
import { fromCallError, itemError, type SpoolError } from "./errors.js";
import { Pipelines, type PipelineOptions, type Step } from "./pipelines.js";
import type { Pipeline } from "./gen/spool/v1/pipeline_service_pb.js";
import { Schedules } from "./schedules.js";
import { reopened } from "./streams.js";
import {
  BackoffPolicySchema,
  JobErrorSchema,
  JobFilterSchema,
  JobSchema,
  RateLimitSchema,
  Job_ConcurrencyScope,
  type BackoffPolicy_Kind,
  type Job,
  type Job_State,
} from "./gen/spool/v1/job_pb.js";
import {
  EnqueueRequestSchema,
  ListJobsRequest_Order,
  QueueService,
  type FollowUp,
  type LeasedJob,
} from "./gen/spool/v1/queue_service_pb.js";

export interface ClientOptions {
  /** "host:port" or "http://host:port"; default 127.0.0.1:50051. */
  address?: string;
  /** Used instead of a new gRPC transport (tests, custom interceptors). */
  transport?: Transport;
  /**
   * TLS. On when given, when the address starts with https://, or when SPOOL_TLS_CA, SPOOL_TLS_CERT
   * or SPOOL_TLS_KEY name PEM files (what is given here wins over those); `false` forces plaintext.
   */
  tls?: TlsOptions | boolean;
  /**
   * API key, sent as `authorization: Bearer <key>` on every call; default $SPOOL_TOKEN, else the
   * contents of the file `tokenFile` or $SPOOL_TOKEN_FILE names (a key kept off command lines).
   */
  token?: string;
  /** A file holding the API key; default $SPOOL_TOKEN_FILE. */
  tokenFile?: string;
  /**
   * Send the key without TLS to a host off this machine (default $SPOOL_INSECURE=1); otherwise
   * that is refused: only loopback addresses, localhost and unix sockets get a key in the clear.
   */
  insecure?: boolean;
  /** Deadline of each unary call (a Lease gets its long-poll wait on top); default 30 s. */
  timeoutMs?: number;
}

export interface Backoff {
  kind?: BackoffPolicy_Kind;
  initialIntervalMs?: number;
  maxIntervalMs?: number;
  multiplier?: number;
  jitter?: boolean;
}

export interface EnqueueOptions {
  /** Default application/json for values, application/octet-stream for a Uint8Array. */
  contentType?: string;
  headers?: Record<string, string>;
  priority?: number;
  runAt?: Date;
  delayMs?: number;
  maxAttempts?: number;
  backoff?: Backoff;
  leaseDurationMs?: number;
  attemptTimeoutMs?: number;
  idempotencyKey?: string;
  concurrencyKey?: string;
  concurrencyLimit?: number;
  /** The key's limit counts the running jobs of every queue, not only this one's (default: this queue's). */
  concurrencyGlobal?: boolean;
  /** At most rateLimit of the jobs with this key start per its interval, in any queue (docs/rate-limits.md). */
  rateLimitKey?: string;
  rateLimit?: RateLimitInit;
}

/** At most `limit` jobs started per `intervalMs` (default 1000), in bursts of at most `burst` (default 1). */
export interface RateLimitInit {
  limit: number;
  intervalMs?: number;
  burst?: number;
}

export interface EnqueueItem extends EnqueueOptions {
  queue: string;
  payload?: unknown;
}

export interface Enqueued {
  job: Job;
  /** True when the idempotency key matched an existing job, which is returned instead. */
  deduplicated: boolean;
}

export interface LeaseOptions {
  maxJobs?: number;
  leaseDurationMs?: number;
  /** Long poll: how long to wait for a job when none is ready (server maximum 60 s). */
  waitMs?: number;
  workerId?: string;
  signal?: AbortSignal;
}

/**
 * The jobs an Ack or AckBatch leases once its acks are done, in the same call: Lease's options
 * without the wait (it never long-polls: what is ready, possibly nothing, comes back at once).
 */
export interface NextOptions extends Omit<LeaseOptions, "waitMs" | "signal"> {
  queues: string[];
}

export interface HeartbeatOptions {
  leaseDurationMs?: number;
  checkpoint?: Uint8Array;
  /** Log lines for the attempt's log (newline-terminated). */
  logs?: string;
}

export interface HeartbeatItem extends HeartbeatOptions {
  jobId: string;
  leaseToken: string;
}

export interface Heartbeat {
  leaseExpiresAt: Date | undefined;
  /** The worker should stop and nack; the job will end CANCELLED. */
  cancelRequested: boolean;
}

export interface HeartbeatResult {
  jobId: string;
  heartbeat?: Heartbeat;
  error?: SpoolError;
}

export interface AckOptions {
  /** A Uint8Array goes as it is; any other value as JSON. */
  result?: unknown;
  resultContentType?: string;
  /** Log lines for the attempt's log (newline-terminated). */
  logs?: string;
  /** Jobs (or steps of the job's pipeline) created in the ack's transaction, only if it is accepted. */
  followUps?: FollowUp[];
}

export interface AckWithNextOptions extends AckOptions {
  /** Once acked, lease up to next.maxJobs (default 1) ready jobs in the same call; none if the Ack is refused. */
  next: NextOptions;
}

/** What ack() returns when asked for the next jobs. */
export interface AckedWithNext {
  job: Job;
  /** The jobs leased for `next`, possibly none: hold them as from lease(). */
  next: LeasedJob[];
}

export interface AckItem extends AckOptions {
  jobId: string;
  leaseToken: string;
}

export interface AckResult {
  jobId: string;
  error?: SpoolError;
}

export interface AckBatchWithNextOptions {
  /** Once the acks are done (whichever were refused), lease up to next.maxJobs (default 1) ready jobs. */
  next: NextOptions;
}

/** What ackBatch() returns when asked for the next jobs. */
export interface AckBatchWithNext {
  results: AckResult[];
  /** The jobs leased for `next`, possibly none: hold them as from lease(). */
  next: LeasedJob[];
}

export interface NackOptions {
  error?: { type?: string; message?: string; details?: string };
  /** False sends the job straight to DEAD; default true. */
  retryable?: boolean;
  retryAfterMs?: number;
  checkpoint?: Uint8Array;
  /**
   * Give the job back unfinished (e.g. the worker is shutting down): the attempt is recorded as
   * RELEASED and not counted, and the job is ready again at once (or after retryAfterMs).
   */
  release?: boolean;
  /** Log lines for the attempt's log (newline-terminated). */
  logs?: string;
}

export interface JobFilterInit {
  queues?: string[];
  states?: Job_State[];
  createdAfter?: Date;
  createdBefore?: Date;
  finishedAfter?: Date;
  finishedBefore?: Date;
  errorContains?: string;
  /** A JSON document the payload must contain, e.g. {order_id: 5512}. */
  payloadContains?: unknown;
  idempotencyKey?: string;
  concurrencyKey?: string;
}

export interface RequeueOptions {
  jobIds?: string[];
  filter?: JobFilterInit;
  includeSucceeded?: boolean;
  limit?: number;
  /** Required with a filter that sets nothing: every finished job of every queue. */
  all?: boolean;
}

export interface ListOptions {
  filter?: JobFilterInit;
  order?: "newest" | "oldest";
  pageSize?: number;
  pageToken?: string;
}

export interface JobPage {
  jobs: Job[];
  /** Empty on the last page. */
  nextPageToken: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** PEM contents: the CA bundle that signed the server's certificate, and the client's own pair for mTLS. */
export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

function baseUrl(address: string, tls: boolean): string {
  return /^https?:\/\//.test(address) ? address : `${tls ? "https" : "http"}://${address}`;
}

function pemFile(name: string): Buffer | undefined {
  const path = process.env[name];
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${name}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The TLS options to use, from the argument and SPOOL_TLS_*; undefined for plaintext. */
function tlsOptions(given: TlsOptions | boolean | undefined, address: string): TlsOptions | undefined {
  if (given === false) return undefined;
  const chosen: TlsOptions = typeof given === "object" ? given : {};
  const tls = {
    ca: chosen.ca ?? pemFile("SPOOL_TLS_CA"),
    cert: chosen.cert ?? pemFile("SPOOL_TLS_CERT"),
    key: chosen.key ?? pemFile("SPOOL_TLS_KEY"),
  };
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error("a client certificate needs its private key: give both (SPOOL_TLS_CERT, SPOOL_TLS_KEY)");
  }
  const wanted = given === true || address.startsWith("https://") || Object.values(tls).some((v) => v !== undefined);
  return wanted ? tls : undefined;
}

function bearer(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

const DEFAULT_ADDRESS = "127.0.0.1:50051";

/**
 * The largest message sent or received: spoold's own limit (64 MiB). An EnqueueBatch or ListJobs
 * answer can pass grpc's usual 4 MiB; a bound still keeps a broken peer from filling memory.
 */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The key: the argument, $SPOOL_TOKEN, else the file tokenFile or $SPOOL_TOKEN_FILE names. */
function resolveToken(opts: ClientOptions): string | undefined {
  const given = opts.token ?? process.env.SPOOL_TOKEN;
  if (given) return given;
  const path = opts.tokenFile ?? process.env.SPOOL_TOKEN_FILE;
  if (!path) return undefined;
  const what = opts.tokenFile !== undefined ? "tokenFile" : "SPOOL_TOKEN_FILE";
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new Error(`${what}: cannot read ${path}: ${(err as Error).message}`);
  }
  if (!text) throw new Error(`${what}: ${path} is empty`);
  return text;
}

const TRUE = ["1", "true", "yes", "on"];

/** Whether the address is on this machine: a loopback address, localhost, or a unix socket. */
export function isLocal(address: string): boolean {
  if (/^unix:/.test(address)) return true;
  let host = address.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  if (host.startsWith("[")) host = host.slice(1, host.indexOf("]"));
  else if (host.split(":").length === 2) host = host.split(":")[0]!;
  host = host.toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost") || host === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * A gRPC transport for the options: address, TLS (arguments, then SPOOL_TLS_*), API key; an Error
 * for a key that would go in the clear to a host off this machine, unless `insecure`.
 */
export function grpcTransport(opts: ClientOptions = {}): Transport {
  const address = opts.address ?? DEFAULT_ADDRESS;
  const tls = tlsOptions(opts.tls, address);
  const token = resolveToken(opts);
  const insecure = opts.insecure ?? TRUE.includes((process.env.SPOOL_INSECURE ?? "").toLowerCase());
  if (token && tls === undefined && !insecure && !isLocal(address)) {
    throw new Error(
      `an API key would go to ${address} in the clear: connect with TLS (tls, SPOOL_TLS_CA), ` +
        "or accept the risk with insecure: true (SPOOL_INSECURE=1)",
    );
  }
  return createGrpcTransport({
    baseUrl: baseUrl(address, tls !== undefined),
    nodeOptions: tls,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    interceptors: token ? [bearer(token)] : [],
  });
}

function backoffPolicy(b: Backoff | undefined) {
  if (b === undefined) {
    return undefined;
  }
  return create(BackoffPolicySchema, {
    kind: b.kind,
    initialInterval: duration(b.initialIntervalMs),
    maxInterval: duration(b.maxIntervalMs),
    multiplier: b.multiplier,
    jitter: b.jitter,
  });
}

export function enqueueRequest(item: EnqueueItem) {
  const body = encodeBody(item.payload, item.contentType);
  const start =
    item.runAt !== undefined
      ? { case: "runAt" as const, value: timestamp(item.runAt)! }
      : item.delayMs !== undefined
        ? { case: "delay" as const, value: duration(item.delayMs)! }
        : { case: undefined };
  return create(EnqueueRequestSchema, {
    queue: item.queue,
    payload: body.bytes,
    contentType: body.contentType,
    headers: item.headers ?? {},
    priority: item.priority ?? 0,
    start,
    maxAttempts: item.maxAttempts,
    backoff: backoffPolicy(item.backoff),
    leaseDuration: duration(item.leaseDurationMs),
    attemptTimeout: duration(item.attemptTimeoutMs),
    idempotencyKey: item.idempotencyKey ?? "",
    concurrencyKey: item.concurrencyKey ?? "",
    concurrencyLimit: item.concurrencyLimit ?? 0,
    concurrencyScope: item.concurrencyGlobal ? Job_ConcurrencyScope.GLOBAL : Job_ConcurrencyScope.UNSPECIFIED,
    rateLimitKey: item.rateLimitKey ?? "",
    rateLimit:
      item.rateLimit === undefined
        ? undefined
        : create(RateLimitSchema, {
            limit: item.rateLimit.limit,
            interval: duration(item.rateLimit.intervalMs ?? 1000),
            burst: item.rateLimit.burst,
          }),
  });
}

export function jobFilter(f: JobFilterInit | undefined) {
  if (f === undefined) {
    return undefined;
  }
  const contains = f.payloadContains;
  return create(JobFilterSchema, {
    queues: f.queues ?? [],
    states: f.states ?? [],
    createdAfter: timestamp(f.createdAfter),
    createdBefore: timestamp(f.createdBefore),
    finishedAfter: timestamp(f.finishedAfter),
    finishedBefore: timestamp(f.finishedBefore),
    errorContains: f.errorContains ?? "",
    payloadContains:
      contains === undefined ? "" : typeof contains === "string" ? contains : JSON.stringify(contains),
    idempotencyKey: f.idempotencyKey ?? "",
    concurrencyKey: f.concurrencyKey ?? "",
  });
}

function heartbeatOf(r: { leaseExpiresAt?: Parameters<typeof date>[0]; cancelRequested: boolean }): Heartbeat {
  return { leaseExpiresAt: date(r.leaseExpiresAt), cancelRequested: r.cancelRequested };
}

/** Runs one call and turns a failed RPC into a typed SpoolError. */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw fromCallError(err);
  }
}

/** A Spool client over gRPC (HTTP/2). Cheap to keep for the life of the process. */
export class Client {
  readonly rpc: RpcClient<typeof QueueService>;
  /** Create, change, pause, trigger and delete schedules (docs/schedules.md). */
  readonly schedules: Schedules;
  /** Create, read and cancel pipelines (docs/pipelines.md). */
  readonly pipelines: Pipelines;
  /** The server's address ("custom transport" when one was given). */
  readonly address: string;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions | string = {}) {
    const opts: ClientOptions = typeof options === "string" ? { address: options } : options;
    const transport = opts.transport ?? grpcTransport(opts);
    this.address = opts.transport !== undefined ? "custom transport" : (opts.address ?? DEFAULT_ADDRESS);
    this.rpc = createClient(QueueService, transport);
    // Whole milliseconds: grpc-timeout takes an integer, and the server answers a fraction INTERNAL.
    this.timeoutMs = Math.ceil(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.schedules = new Schedules(transport, this.timeoutMs);
    this.pipelines = new Pipelines(transport, this.timeoutMs);
  }

  /** Creates a pipeline of these steps in one transaction (pipelines.create). */
  async pipeline(name: string, steps: Step[], options: PipelineOptions = {}): Promise<Pipeline> {
    return this.pipelines.create(name, steps, options);
  }

  /** Call options with the client's deadline. */
  private get opts(): { timeoutMs: number } {
    return { timeoutMs: this.timeoutMs };
  }

  /** Creates one job; returns at once. `payload` is sent as JSON unless it is a Uint8Array. */
  async enqueue(queue: string, payload?: unknown, options: EnqueueOptions = {}): Promise<Enqueued> {
    // Within an active OpenTelemetry span, the job's headers carry its trace context (src/tracing.ts).
    return withSendSpan(queue, 1, async (trace) => {
      const req = enqueueRequest({ ...options, queue, payload });
      if (trace !== undefined) req.headers = { ...req.headers, ...trace };
      // ...and the call's own headers too, so that spoold's SERVER span (when it traces) is its child.
      const res = await call(() => this.rpc.enqueue(req, trace === undefined ? this.opts : { ...this.opts, headers: trace }));
      return { job: res.job!, deduplicated: res.deduplicated };
    });
  }

  /** Creates many jobs in one transaction, all or nothing; results in the order given. */
  async enqueueBatch(items: EnqueueItem[]): Promise<Enqueued[]> {
    const queues = new Set(items.map((i) => i.queue));
    const queue = queues.size === 1 ? items[0]!.queue : undefined;
    // One PRODUCER span for the batch, as for enqueue: every job's headers carry its context.
    return withSendSpan(queue, items.length, async (trace) => {
      const jobs = items.map(enqueueRequest);
      if (trace !== undefined) jobs.forEach((job) => (job.headers = { ...job.headers, ...trace }));
      const opts = trace === undefined ? this.opts : { ...this.opts, headers: trace };
      const res = await call(() => this.rpc.enqueueBatch({ jobs }, opts));
      return res.results.map((r) => ({ job: r.job!, deduplicated: r.deduplicated }));
    });
  }

  /** Claims up to maxJobs ready jobs from the queues, waiting up to waitMs for one. */
  async lease(queues: string[], options: LeaseOptions = {}): Promise<LeasedJob[]> {
    const req = { ...leaseRequest({ ...options, queues }), wait: duration(options.waitMs) };
    const res = await call(() => this.rpc.lease(req, { signal: options.signal, timeoutMs: Math.ceil(this.timeoutMs + (options.waitMs ?? 0)) }));
    return res.jobs;
  }

  /** Extends a held lease, optionally saving a checkpoint for the next attempt. */
  async heartbeat(jobId: string, leaseToken: string, options: HeartbeatOptions = {}): Promise<Heartbeat> {
    const req = {
      jobId,
      leaseToken,
      leaseDuration: duration(options.leaseDurationMs),
      checkpoint: options.checkpoint,
      logs: options.logs ?? "",
    };
    return heartbeatOf(await call(() => this.rpc.heartbeat(req, this.opts)));
  }

  /** Heartbeats many leases in one call; each item succeeds or fails alone. */
  async heartbeatBatch(items: HeartbeatItem[], options: { timeoutMs?: number } = {}): Promise<HeartbeatResult[]> {
    const heartbeats = items.map((i) => ({
      jobId: i.jobId,
      leaseToken: i.leaseToken,
      leaseDuration: duration(i.leaseDurationMs),
      checkpoint: i.checkpoint,
      logs: i.logs ?? "",
    }));
    const res = await call(() => this.rpc.heartbeatBatch({ heartbeats }, { timeoutMs: Math.ceil(options.timeoutMs ?? this.timeoutMs) }));
    return res.results.map((r) =>
      r.error !== undefined
        ? { jobId: r.jobId, error: itemError(r.error.code, r.error.reason, r.error.message, r.error.retryDelay) }
        : { jobId: r.jobId, heartbeat: heartbeatOf(r.heartbeat ?? { cancelRequested: false }) },
    );
  }

  /**
   * Finishes a held lease successfully, with an optional result. With `next`, also leases the next
   * jobs in the same call and returns `{ job, next }` instead of the job.
   */
  ack(jobId: string, leaseToken: string, options: AckWithNextOptions): Promise<AckedWithNext>;
  ack(jobId: string, leaseToken: string, options?: AckOptions): Promise<Job>;
  async ack(
    jobId: string,
    leaseToken: string,
    options: AckOptions & { next?: NextOptions } = {},
  ): Promise<Job | AckedWithNext> {
    const req = { ...ackRequest({ ...options, jobId, leaseToken }), next: nextRequest(options.next) };
    const res = await call(() => this.rpc.ack(req, this.opts));
    return options.next === undefined ? res.job! : { job: res.job!, next: res.next };
  }

  /**
   * Acks many leases in one call; each item succeeds or fails alone. With `next`, also leases the
   * next jobs in the same call and returns `{ results, next }` instead of the results.
   */
  ackBatch(items: AckItem[], options: AckBatchWithNextOptions): Promise<AckBatchWithNext>;
  ackBatch(items: AckItem[]): Promise<AckResult[]>;
  async ackBatch(
    items: AckItem[],
    options: { next?: NextOptions } = {},
  ): Promise<AckResult[] | AckBatchWithNext> {
    const req = { acks: items.map(ackRequest), next: nextRequest(options.next) };
    const res = await call(() => this.rpc.ackBatch(req, this.opts));
    const results: AckResult[] = res.results.map((r) =>
      r.error !== undefined
        ? { jobId: r.jobId, error: itemError(r.error.code, r.error.reason, r.error.message) }
        : { jobId: r.jobId },
    );
    return options.next === undefined ? results : { results, next: res.next };
  }

  /** Finishes a held lease with an error: retried with backoff while attempts remain, else DEAD. */
  async nack(jobId: string, leaseToken: string, options: NackOptions = {}): Promise<Job> {
    const req = {
      jobId,
      leaseToken,
      error: options.error === undefined ? undefined : create(JobErrorSchema, options.error),
      retryable: options.retryable,
      retryAfter: duration(options.retryAfterMs),
      checkpoint: options.checkpoint,
      release: options.release ?? false,
      logs: options.logs ?? "",
    };
    const res = await call(() => this.rpc.nack(req, this.opts));
    return res.job!;
  }

  /** Puts DEAD or CANCELLED (or, on request, SUCCEEDED) jobs back to PENDING, by id or by filter. */
  async requeue(options: RequeueOptions): Promise<Job[]> {
    const req = {
      jobIds: options.jobIds ?? [],
      filter: jobFilter(options.filter),
      includeSucceeded: options.includeSucceeded ?? false,
      limit: options.limit ?? 0,
      all: options.all ?? false,
    };
    return (await call(() => this.rpc.requeue(req, this.opts))).jobs;
  }

  /** Cancels a PENDING job, or asks the worker of a RUNNING one to stop. */
  async cancel(jobId: string): Promise<Job> {
    return (await call(() => this.rpc.cancelJob({ jobId }, this.opts))).job!;
  }

  /** One job with its attempts; with includeLogs, each attempt's log lines (Attempt.logs). */
  async get(jobId: string, options: { includeLogs?: boolean } = {}): Promise<Job> {
    const req = { jobId, includeLogs: options.includeLogs ?? false };
    return (await call(() => this.rpc.getJob(req, this.opts))).job!;
  }

  /** One page of jobs matching the filter, newest first unless asked otherwise. */
  async list(options: ListOptions = {}): Promise<JobPage> {
    const req = {
      filter: jobFilter(options.filter),
      order: options.order === "oldest" ? ListJobsRequest_Order.OLDEST_FIRST : ListJobsRequest_Order.NEWEST_FIRST,
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    };
    const res = await call(() => this.rpc.listJobs(req, this.opts));
    return { jobs: res.jobs, nextPageToken: res.nextPageToken };
  }

  /**
   * The ids of the jobs leased under `workerId` as their cancellation is requested, pushed by the
   * server at once (WatchCancels); runs until `signal` aborts or the server ends it. The first id is
   * "": the stream is registered, and what is cancelled from then on is heard.
   */
  async *watchCancels(workerId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<string, void, undefined> {
    try {
      for await (const res of this.rpc.watchCancels({ workerId }, { signal: options.signal })) {
        yield res.jobId;
      }
    } catch (err) {
      throw fromCallError(err);
    }
  }

  /** The job now, then every change, ending after a terminal state (or when `signal` aborts). The
   * snapshots leave out the payload and the attempts unless `include` names them. */
  async *watch(
    jobId: string,
    options: { signal?: AbortSignal; include?: ("payload" | "attempts")[] } = {},
  ): AsyncGenerator<Job, void, undefined> {
    const readMask = { paths: options.include ?? [] };
    let last: Job | undefined;
    // Reopened after UNAVAILABLE; a reopened stream starts with the snapshot already seen.
    for await (const res of reopened(() => this.rpc.watchJob({ jobId, readMask }, { signal: options.signal }), options.signal)) {
      if (res.job !== undefined && (last === undefined || !equals(JobSchema, last, res.job))) {
        last = res.job;
        yield res.job;
      }
    }
  }
}

function leaseRequest(options: NextOptions) {
  return {
    queues: options.queues,
    maxJobs: options.maxJobs ?? 1,
    leaseDuration: duration(options.leaseDurationMs),
    workerId: options.workerId ?? "",
  };
}

/** AckRequest.next / AckBatchRequest.next: never a wait, which the server refuses there. */
function nextRequest(options: NextOptions | undefined) {
  return options === undefined ? undefined : leaseRequest(options);
}

/** One AckRequest; never with `next` (refused inside AckBatch; ack() sets it itself). */
function ackRequest(item: AckItem) {
  const logs = item.logs ?? "";
  const followUps = item.followUps ?? [];
  if (item.result === undefined) {
    return { jobId: item.jobId, leaseToken: item.leaseToken, logs, followUps };
  }
  const body = encodeBody(item.result, item.resultContentType);
  return {
    jobId: item.jobId,
    leaseToken: item.leaseToken,
    result: body.bytes,
    resultContentType: body.contentType,
    logs,
    followUps,
  };
}
