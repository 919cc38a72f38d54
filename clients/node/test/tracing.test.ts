// The Node Worker's handler span: the child of the producer's span, a link on retries, and a
// malformed or huge traceparent that never breaks a job (the SDK's in-memory exporter).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { JobState, RetryError, Worker, type Client } from "../src/index.js";
import { queueName, startSpoold, waitUntil, type Spoold } from "./harness.js";

let spoold: Spoold;
let client: Client;
const exporter = new InMemorySpanExporter();

before(async () => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  spoold = await startSpoold();
  client = spoold.client;
});
after(async () => spoold?.close());

async function runUntil(queue: string, jobId: string, fn: (attempt: number) => unknown): Promise<void> {
  const worker = new Worker(client, { pollWaitMs: 500, handleSignals: false, logger: { warn: () => {}, error: () => {} } });
  worker.handle(queue, (job) => fn(job.attempt));
  const running = worker.run();
  try {
    await waitUntil(async () => ((await client.get(jobId)).state === JobState.SUCCEEDED ? true : undefined));
  } finally {
    await worker.stop(5000);
    await running;
  }
}

describe("tracing", () => {
  test("the handler span is the producer's child, and a retry's span links to it", async () => {
    const queue = queueName("traced");
    const producer = { traceId: "a".repeat(32), spanId: "b".repeat(16) };
    const headers = { traceparent: `00-${producer.traceId}-${producer.spanId}-01` };
    const { job } = await client.enqueue(queue, {}, { headers, maxAttempts: 2 });
    await runUntil(queue, job.id, (attempt) => {
      if (attempt === 1) throw new RetryError("again", 10);
    });
    const spans = exporter.getFinishedSpans().filter((s) => s.name === `${queue} process`);
    const [first, retry] = spans.sort((a, b) => Number(a.attributes["messaging.spool.attempt"]) - Number(b.attributes["messaging.spool.attempt"]));
    assert.equal(first?.spanContext().traceId, producer.traceId);
    assert.equal(first?.parentSpanContext?.spanId, producer.spanId);
    assert.equal(first?.attributes["messaging.message.id"], job.id);
    assert.equal(retry?.parentSpanContext, undefined);
    assert.deepEqual(retry?.links.map((l) => l.context.spanId), [producer.spanId]);
  });

  test("an enqueueBatch within a span sends one PRODUCER span, whose context every job carries", async () => {
    const queue = queueName("batched");
    const results = await trace.getTracer("test").startActiveSpan("outer", async (outer) => {
      try {
        return await client.enqueueBatch([
          { queue, payload: { n: 1 } },
          { queue, payload: { n: 2 } },
        ]);
      } finally {
        outer.end();
      }
    });
    const [send] = exporter.getFinishedSpans().filter((s) => s.name === `${queue} send`);
    assert.ok(send, "a send span");
    assert.equal(send.attributes["messaging.batch.message_count"], 2);
    assert.equal(send.attributes["messaging.destination.name"], queue);
    const { traceId, spanId } = send.spanContext();
    for (const { job } of results) {
      assert.equal((await client.get(job.id)).headers["traceparent"], `00-${traceId}-${spanId}-01`);
    }
  });

  for (const traceparent of ["zz-not-a-traceparent", "00-" + "f".repeat(7000)]) {
    test(`a traceparent of ${traceparent.length} characters that is not valid never breaks a job`, async () => {
      const queue = queueName("badtrace");
      const { job } = await client.enqueue(queue, {}, { headers: { traceparent } });
      await runUntil(queue, job.id, () => "ran");
      const [span] = exporter.getFinishedSpans().filter((s) => s.name === `${queue} process`);
      assert.equal(span?.parentSpanContext, undefined);
    });
  }
});
