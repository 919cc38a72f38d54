// A Node worker with the OpenTelemetry SDK, for the cross-language tracing test: each span it ends
// is printed as a JSON line {"span": name, traceId, spanId, parentSpanId, kind, links}. A job of
// QUEUE enqueues a follow-up job to BACK_QUEUE from within its handler (its id printed), so the
// trace goes on to whoever handles that queue.
//
//   node dist/test/scripts/traced-worker.js ADDRESS QUEUE BACK_QUEUE
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator, type ExportResult } from "@opentelemetry/core";
import { BasicTracerProvider, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { Client, Worker } from "../../src/index.js";

const [address, queue, back] = process.argv.slice(2);
if (address === undefined || queue === undefined || back === undefined) {
  throw new Error("usage: traced-worker.js ADDRESS QUEUE BACK_QUEUE");
}

const printer: SpanExporter = {
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    for (const s of spans) {
      const line = {
        span: s.name,
        traceId: s.spanContext().traceId,
        spanId: s.spanContext().spanId,
        parentSpanId: s.parentSpanContext?.spanId ?? null,
        kind: s.kind,
        links: s.links.map((l) => l.context.spanId),
        attributes: s.attributes,
      };
      process.stdout.write(JSON.stringify(line) + "\n");
    }
    done({ code: 0 });
  },
  async shutdown(): Promise<void> {},
};
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(printer)] }));

const client = new Client(address);
const worker = new Worker(client, { pollWaitMs: 500, logger: { warn: () => {}, error: () => {} } });
worker.handle(queue, async () => {
  const { job } = await client.enqueue(back, { from: "node" });
  process.stdout.write(JSON.stringify({ back: job.id, headers: job.headers }) + "\n");
  return { by: "node" };
});
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
await worker.run();
