// Pipelines: step() describes a step, and client.pipelines (or client.pipeline) creates, reads and
// cancels pipelines on the server (PipelineService). See docs/pipelines.md.
//
//   await spool.pipeline("export", [
//     step("extract", { payload: { report: 7 } }),
//     step("render", { after: ["extract"] }),
//     step("upload", { after: ["render"], maxAttempts: 5 }),
//   ]);
import { create } from "@bufbuild/protobuf";
import { createClient, type Client as RpcClient, type Transport } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { enqueueRequest, type EnqueueOptions } from "./client.js";
import { decodeBody, encodeBody } from "./convert.js";
import { fromCallError } from "./errors.js";
import { reopened } from "./streams.js";
import type { StepOutcome } from "./gen/spool/v1/job_pb.js";
import { FollowUpSchema, type FollowUp } from "./gen/spool/v1/queue_service_pb.js";
import {
  PipelineService,
  type Pipeline_State,
  RetryStepRequest_Mode,
  StepSpecSchema,
  type Pipeline,
  type StepSpec,
  type WatchPipelineResponse,
} from "./gen/spool/v1/pipeline_service_pb.js";

export interface StepOptions extends Omit<EnqueueOptions, "idempotencyKey"> {
  /** Default: the step's name. */
  queue?: string;
  /** As for enqueue (default {}). */
  payload?: unknown;
  /** The steps that must succeed before this one runs. */
  after?: string[];
}

export interface Step extends StepOptions {
  name: string;
}

export interface PipelineOptions {
  /** Deduplicates pipelines of the same name; default: a new key, so a retried call finds the first pipeline. */
  idempotencyKey?: string;
  /** A step that runs once if the pipeline fails, with the failed step as its one parent. */
  onFailure?: Step;
}

/** A step named `name` on `options.queue` (default: its name), after the steps in `options.after`. */
export function step(name: string, options: StepOptions = {}): Step {
  return { ...options, name };
}

function stepSpec(s: Step): StepSpec {
  const { name, after, queue, payload, ...job } = s;
  return create(StepSpecSchema, {
    name,
    dependsOn: after ?? [],
    job: enqueueRequest({ ...job, queue: queue ?? name, payload: payload ?? {} }),
  });
}

/** A step to add to a step's pipeline with its Ack (job.addStep). */
export function stepFollowUp(s: Step): FollowUp {
  const spec = stepSpec(s);
  return create(FollowUpSchema, { job: spec.job, stepName: spec.name, dependsOn: spec.dependsOn });
}

/** A job to create with an Ack (job.followUp). */
export function jobFollowUp(queue: string, payload: unknown, options: EnqueueOptions): FollowUp {
  return create(FollowUpSchema, { job: enqueueRequest({ ...options, queue, payload: payload ?? {} }) });
}

/** The parents' results by step name: parsed JSON, else bytes; undefined for no result. */
export function parentResults(outcomes: Readonly<Record<string, StepOutcome>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(outcomes)) {
    out[name] = decodeBody(o.result, o.resultContentType);
  }
  return out;
}

export class Pipelines {
  readonly rpc: RpcClient<typeof PipelineService>;

  constructor(
    transport: Transport,
    private readonly timeoutMs: number,
  ) {
    this.rpc = createClient(PipelineService, transport);
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw fromCallError(err);
    }
  }

  /** Creates the pipeline and all its steps in one transaction. */
  async create(name: string, steps: Step[], options: PipelineOptions = {}): Promise<Pipeline> {
    const req = {
      name,
      steps: steps.map(stepSpec),
      idempotencyKey: options.idempotencyKey ?? `auto-${randomUUID()}`,
      onFailure: options.onFailure === undefined ? undefined : stepSpec(options.onFailure),
    };
    const res = await this.call(() => this.rpc.enqueuePipeline(req, { timeoutMs: this.timeoutMs }));
    return res.pipeline!;
  }

  /** The pipeline with every step, its state and attempts. */
  async get(pipelineId: string): Promise<Pipeline> {
    const res = await this.call(() => this.rpc.getPipeline({ pipelineId }, { timeoutMs: this.timeoutMs }));
    return res.pipeline!;
  }

  /** Dispatches nothing new until resume(); running steps finish. */
  async pause(pipelineId: string): Promise<Pipeline> {
    const res = await this.call(() => this.rpc.pausePipeline({ pipelineId }, { timeoutMs: this.timeoutMs }));
    return res.pipeline!;
  }

  /** Makes ready again the steps whose parents have all succeeded. */
  async resume(pipelineId: string): Promise<Pipeline> {
    const res = await this.call(() => this.rpc.resumePipeline({ pipelineId }, { timeoutMs: this.timeoutMs }));
    return res.pipeline!;
  }

  /**
   * Fix and resume: the failed step runs again (with `options.payload` if given, sent as for
   * enqueue); with `downstream`, the steps after it run again too. Finished steps keep their results.
   */
  async retry(jobId: string, options: { payload?: unknown; downstream?: boolean } = {}): Promise<Pipeline> {
    const body = "payload" in options ? encodeBody(options.payload) : undefined;
    const req = {
      jobId,
      mode: options.downstream ? RetryStepRequest_Mode.DOWNSTREAM : RetryStepRequest_Mode.FAILED_ONLY,
      payload: body?.bytes,
      contentType: body?.contentType ?? "",
    };
    const res = await this.call(() => this.rpc.retryStep(req, { timeoutMs: this.timeoutMs }));
    return res.pipeline!;
  }

  /**
   * Every matching pipeline (without its steps; stepCount and succeededSteps count them), newest
   * first, fetching pages as the iteration goes.
   */
  async *list(
    options: { states?: Pipeline_State[]; namePrefix?: string; paused?: boolean; pageSize?: number } = {},
  ): AsyncGenerator<Pipeline, void, undefined> {
    let pageToken = "";
    do {
      const req = {
        states: options.states ?? [],
        namePrefix: options.namePrefix ?? "",
        paused: options.paused,
        pageSize: options.pageSize ?? 100,
        pageToken,
      };
      const res = await this.call(() => this.rpc.listPipelines(req, { timeoutMs: this.timeoutMs }));
      yield* res.pipelines;
      pageToken = res.nextPageToken;
    } while (pageToken);
  }

  /**
   * The pipeline now, then again after each change of its steps (every step in each), ending once
   * the pipeline is finished (or when `signal` aborts).
   */
  async *watch(pipelineId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Pipeline, void, undefined> {
    let current: Pipeline | undefined;
    // Reopened after UNAVAILABLE: the new stream's snapshot replaces the pipeline.
    for await (const res of reopened(() => this.rpc.watchPipeline({ pipelineId }, { signal: options.signal }), options.signal)) {
      current = merged(current, res);
      yield current;
    }
  }

  /** Cancels every unfinished step; running ones get cancel_requested. */
  async cancel(pipelineId: string): Promise<Pipeline> {
    const res = await this.call(() => this.rpc.cancelPipeline({ pipelineId }, { timeoutMs: this.timeoutMs }));
    return res.pipeline!;
  }
}

/** A WatchPipeline answer applied: a snapshot replaces the pipeline; a change replaces the steps it
 * names, adds the new ones and takes the pipeline's own fields. */
function merged(current: Pipeline | undefined, res: WatchPipelineResponse): Pipeline {
  const next = res.pipeline!;
  if (res.snapshot || current === undefined) return next;
  const changed = new Map(next.steps.map((s) => [s.name, s]));
  const steps = current.steps.map((s) => {
    const now = changed.get(s.name);
    changed.delete(s.name);
    return now ?? s;
  });
  return { ...next, steps: [...steps, ...changed.values()] };
}
