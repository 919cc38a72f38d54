// Schedules: a ScheduleSpec describes one (what a Worker declares with schedule()), and
// client.schedules manages them on the server (AdminService). See docs/schedules.md.
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client as RpcClient, type Transport } from "@connectrpc/connect";
import { enqueueRequest, type EnqueueOptions } from "./client.js";
import { duration } from "./convert.js";
import { fromCallError } from "./errors.js";
import { AdminService } from "./gen/spool/v1/admin_service_pb.js";
import type { Job } from "./gen/spool/v1/job_pb.js";
import {
  Schedule_CatchUp,
  Schedule_Overlap,
  ScheduleSchema,
  type Schedule,
} from "./gen/spool/v1/schedule_pb.js";

export interface ScheduleOptions extends EnqueueOptions {
  /** The queue of each job. */
  queue: string;
  /** Default: the queue's name. */
  name?: string;
  /** Each job's payload, as for enqueue (default {}). */
  payload?: unknown;
  /** IANA time zone the cron expression is read in; default "UTC". */
  timeZone?: string;
  /** "skip": no job while the previous fire's job is PENDING or RUNNING; default "allow". */
  overlap?: "allow" | "skip";
  /** Fire times missed while no server ran the schedule: default "latest" (one job for them all). */
  catchUp?: "latest" | "all" | "none";
  /** With catchUp "all": at most this many (default 100). */
  catchUpLimit?: number;
  /** Delay each job by up to this, at random. */
  jitterMs?: number;
}

export interface ScheduleSpec extends ScheduleOptions {
  name: string;
  /** A cron expression (5 fields, 6 with seconds first, or @daily-style) or "every 30s" (ms, s, m, h, d). */
  when: string;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const OVERLAP = { allow: Schedule_Overlap.ALLOW, skip: Schedule_Overlap.SKIP };
const CATCH_UP = { latest: Schedule_CatchUp.LATEST, all: Schedule_CatchUp.ALL, none: Schedule_CatchUp.NONE };
/** What a declaration sets: all of a schedule but its pause, which stays an operator's decision. */
const DECLARED = ["time_zone", "template", "overlap", "catch_up", "catch_up_limit", "jitter"];

/** "every 30s" in milliseconds; undefined for anything else (a cron expression). */
export function intervalMs(when: string): number | undefined {
  const m = /^every\s+(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i.exec(when.trim());
  return m === null ? undefined : Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
}

export function scheduleMessage(spec: ScheduleSpec): Schedule {
  const every = intervalMs(spec.when);
  const { queue, payload, ...job } = spec;
  return create(ScheduleSchema, {
    name: spec.name,
    timing: every === undefined ? { case: "cron", value: spec.when } : { case: "interval", value: duration(every)! },
    timeZone: spec.timeZone ?? "UTC",
    template: enqueueRequest({ ...job, queue, payload: payload ?? {} }),
    overlap: OVERLAP[spec.overlap ?? "allow"],
    catchUp: CATCH_UP[spec.catchUp ?? "latest"],
    catchUpLimit: spec.catchUpLimit ?? 0,
    jitter: duration(spec.jitterMs),
  });
}

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw fromCallError(err);
  }
}

/** client.schedules: AdminService's schedule calls. */
export class Schedules {
  readonly rpc: RpcClient<typeof AdminService>;

  constructor(
    transport: Transport,
    private readonly timeoutMs: number,
  ) {
    this.rpc = createClient(AdminService, transport);
  }

  private get opts(): { timeoutMs: number } {
    return { timeoutMs: this.timeoutMs };
  }

  /** Creates the schedule; a taken name is an InvalidArgumentError with reason SCHEDULE_EXISTS. */
  async create(spec: ScheduleSpec): Promise<Schedule> {
    return (await call(() => this.rpc.createSchedule({ schedule: scheduleMessage(spec) }, this.opts))).schedule!;
  }

  /** Creates the schedule, or sets all of it but whether it is paused (what a Worker's declaration does). */
  async upsert(spec: ScheduleSpec): Promise<Schedule> {
    const timing = intervalMs(spec.when) === undefined ? "cron" : "interval";
    const req = {
      schedule: scheduleMessage(spec),
      updateMask: create(FieldMaskSchema, { paths: [timing, ...DECLARED] }),
      allowMissing: true,
    };
    return (await call(() => this.rpc.updateSchedule(req, this.opts))).schedule!;
  }

  /** The schedule with its next 5 fire times and its last fire. */
  async get(name: string): Promise<Schedule> {
    return (await call(() => this.rpc.getSchedule({ name }, this.opts))).schedule!;
  }

  async delete(name: string): Promise<void> {
    await call(() => this.rpc.deleteSchedule({ name }, this.opts));
  }

  async pause(name: string): Promise<Schedule> {
    return (await call(() => this.rpc.pauseSchedule({ name }, this.opts))).schedule!;
  }

  async resume(name: string): Promise<Schedule> {
    return (await call(() => this.rpc.resumeSchedule({ name }, this.opts))).schedule!;
  }

  /** Fires now, paused or not; returns the job it enqueued. */
  async trigger(name: string): Promise<Job> {
    return (await call(() => this.rpc.triggerSchedule({ name }, this.opts))).job!;
  }
}
