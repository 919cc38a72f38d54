// OpenTelemetry for the Node client and Worker, as the Python ones do (docs/observability.md). Off
// and free unless @opentelemetry/api is installed (an optional peer dependency) and the program
// registered an SDK: an enqueue within an active span runs in a PRODUCER span `<queue> send` whose
// W3C context goes into the jobs' headers; a handler of a job carrying a traceparent runs in a
// CONSUMER span `<queue> process`, the child of the producer span on the first attempt and linked
// to it on retries. A malformed traceparent is ignored; nothing here throws into a job.
import type * as Otel from "@opentelemetry/api";

type Api = typeof Otel;
let loading: Promise<Api | undefined> | undefined;

/** The OpenTelemetry API when it is installed, else undefined (looked up once). */
function otel(): Promise<Api | undefined> {
  loading ??= import("@opentelemetry/api").then(
    (m) => m as Api,
    () => undefined,
  );
  return loading;
}

async function inSpan<T>(api: Api, span: Otel.Span, parent: Otel.Context, run: () => Promise<T>): Promise<T> {
  return api.context.with(api.trace.setSpan(parent, span), async () => {
    try {
      return await run();
    } catch (err) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Runs `send` with the trace headers to add to each job, within a PRODUCER span when a span is active. */
export async function withSendSpan<T>(
  queue: string | undefined, // undefined: a batch to several queues
  count: number,
  send: (headers: Record<string, string> | undefined) => Promise<T>,
): Promise<T> {
  const api = await otel();
  const active = api?.context.active();
  if (api === undefined || active === undefined || api.trace.getSpanContext(active) === undefined) {
    return send(undefined);
  }
  const attributes: Otel.Attributes = {
    "messaging.system": "spool",
    "messaging.operation.type": "send",
    "messaging.operation.name": "send",
  };
  if (queue !== undefined) attributes["messaging.destination.name"] = queue;
  if (count !== 1) attributes["messaging.batch.message_count"] = count;
  const name = queue === undefined ? "send" : `${queue} send`;
  const span = api.trace.getTracer("spool").startSpan(name, { kind: api.SpanKind.PRODUCER, attributes }, active);
  return inSpan(api, span, active, () => {
    const headers: Record<string, string> = {};
    api.propagation.inject(api.trace.setSpan(active, span), headers);
    return send(headers);
  });
}

/** Runs a handler within its CONSUMER span, when the job carries a traceparent and the API is installed. */
export async function withProcessSpan<T>(
  job: { id: string; queue: string; attempt: number; headers: Readonly<Record<string, string>> },
  run: () => Promise<T>,
): Promise<T> {
  const traceparent = job.headers["traceparent"];
  const api = traceparent === undefined ? undefined : await otel();
  if (api === undefined || traceparent === undefined) {
    return run();
  }
  const carrier: Record<string, string> = { traceparent };
  const tracestate = job.headers["tracestate"];
  if (tracestate !== undefined) carrier["tracestate"] = tracestate;
  let producer: Otel.SpanContext | undefined;
  let sent = api.ROOT_CONTEXT;
  try {
    sent = api.propagation.extract(api.ROOT_CONTEXT, carrier);
    producer = api.trace.getSpanContext(sent);
  } catch {
    producer = undefined; // a propagator that chokes on a bad header: trace without a parent
  }
  const valid = producer !== undefined && api.trace.isSpanContextValid(producer);
  const child = valid && job.attempt === 1;
  const parent = child ? sent : api.ROOT_CONTEXT;
  const span = api.trace.getTracer("spool").startSpan(
    `${job.queue} process`,
    {
      kind: api.SpanKind.CONSUMER,
      root: !child,
      links: valid && !child && producer !== undefined ? [{ context: producer }] : [],
      attributes: {
        "messaging.system": "spool",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "messaging.spool.attempt": job.attempt,
      },
    },
    parent,
  );
  return inSpan(api, span, parent, run);
}
