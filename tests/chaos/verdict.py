"""What the chaos run must have kept, checked from the database and the workers' own logs, and the
report: executions per job with the cause of each extra one, reap times and recovery times."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.chaos.actors import QUEUE, Codes, Probe, Stub, load_lines
from tests.chaos.cluster import Replica, WorkerProcess
from tests.chaos.faults import Chaos

FORBIDDEN = {"INTERNAL", "UNKNOWN"}


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    @property
    def report(self) -> str:
        verdict = ["PASS"] if not self.failures else ["FAIL:", *(f"  - {f}" for f in self.failures)]
        return "\n".join([*self.lines, "", *verdict])


def _stats(values: list[float]) -> str:
    if not values:
        return "none"
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"n={len(values)} p50={statistics.median(values):.2f}s p99={p99:.2f}s max={values[-1]:.2f}s"


async def check_database(db: asyncpg.Connection, total: int, v: Verdict) -> list[asyncpg.Record]:
    states = dict(await db.fetch("SELECT state::text, count(*) FROM spool.jobs WHERE queue = $1 GROUP BY 1", QUEUE))
    if states != {"succeeded": total}:
        v.fail(f"every job SUCCEEDED: {states} of {total}")
    wins = await db.fetch(
        "SELECT j.id, count(*) FILTER (WHERE a.outcome = 'succeeded') AS wins FROM spool.jobs j"
        " LEFT JOIN spool.attempts a ON a.job_id = j.id WHERE j.queue = $1 GROUP BY j.id"
        " HAVING count(*) FILTER (WHERE a.outcome = 'succeeded') <> 1",
        QUEUE,
    )
    if wins:
        v.fail(f"exactly one SUCCEEDED attempt per job: {len(wins)} jobs differ, e.g. {[dict(r) for r in wins[:3]]}")
    results = await db.fetch(
        "SELECT j.id, j.result, j.lease_token AS job_token, a.lease_token AS won FROM spool.jobs j"
        " JOIN spool.attempts a ON a.job_id = j.id AND a.outcome = 'succeeded' WHERE j.queue = $1",
        QUEUE,
    )
    foreign = [r["id"] for r in results if not _result_of(r)]
    if foreign:
        v.fail(f"the stored result belongs to the winning lease: {len(foreign)} jobs not, e.g. {foreign[:5]}")
    return list(
        await db.fetch(
            "SELECT a.job_id, a.lease_token, a.worker_id, a.outcome::text, a.error_type, a.started_at, a.finished_at"
            " FROM spool.attempts a JOIN spool.jobs j ON j.id = a.job_id WHERE j.queue = $1",
            QUEUE,
        )
    )


def _result_of(row: asyncpg.Record) -> bool:
    try:
        result = json.loads(bytes(row["result"]))
    except (TypeError, ValueError):
        return False
    return bool(result.get("lease") == str(row["won"]) and row["job_token"] == row["won"])


def check_codes(codes: Codes, workers: list[WorkerProcess], v: Verdict) -> dict[str, Counter[str]]:
    by_actor: dict[str, Counter[str]] = {}
    for (actor, _rpc, code), n in codes.seen.items():
        by_actor.setdefault(actor, Counter())[code] += n
    for w in workers:
        for path in w.logs.glob(f"worker-{w.kind}{w.slot}-*.jsonl"):
            for line in load_lines(path):
                if line.get("ev") == "code":
                    by_actor.setdefault(f"{w.kind} workers", Counter())[line["code"]] += 1
                    if line["code"] in FORBIDDEN:
                        v.fail(f"{path.name} saw {line['code']} from {line['rpc']}: {line.get('message', '')}")
    for actor, counter in by_actor.items():
        if actor in {"producer", "stub", "probe"} and FORBIDDEN & set(counter):
            v.fail(f"{actor} saw {dict(counter)}")
    return by_actor


def check_processes(
    replicas: list[Replica], exits: dict[str, int | None], workers: list[WorkerProcess], v: Verdict
) -> None:
    for r in replicas:
        for text in r.unexpected_exits:
            v.fail(f"a replica exited without being killed: {text}")
        if exits.get(r.name) != 0:
            v.fail(f"replica {r.name} did not stop cleanly on SIGTERM: {exits.get(r.name)}")
    for w in workers:
        for text in w.unexpected_exits:
            v.fail(f"a worker process exited without being killed: {text}")


def check_late_acks(stub: Stub, v: Verdict) -> None:
    wrong = [a for a in stub.late if a.answer != "LEASE_LOST"]
    if wrong:
        v.fail(f"every late ack refused with LEASE_LOST: {len(wrong)} were not, e.g. {wrong[:3]}")


def executions(attempts: list[asyncpg.Record], chaos: Chaos, total: int, v: Verdict, stub_lease: float) -> None:
    per_job = Counter(a["job_id"] for a in attempts)
    histogram = Counter(min(n, 3) for n in per_job.values())
    causes: Counter[str] = Counter()
    reaps, after_kill = [], []
    kill_time = {wid: t for t, wid in chaos.worker_kills}
    for a in attempts:
        if a["outcome"] == "succeeded":
            continue
        wid = a["worker_id"] or ""
        if a["error_type"] == "LeaseCancelled":
            causes["released by the server: the Lease call that claimed it had ended (worker killed, or deadline)"] += 1
        elif a["outcome"] != "lease_expired":
            causes[f"{a['outcome']} ({a['error_type']}) by {wid.split('-')[0]}"] += 1
        elif wid == "stub":
            causes["lease expired: the raw stub never heartbeats (held past its lease, or acked late)"] += 1
            reaps.append((a["finished_at"] - a["started_at"]).total_seconds() - stub_lease)
        elif wid in kill_time and a["finished_at"].timestamp() >= kill_time[wid]:
            causes["lease expired: its worker was killed -9"] += 1
            after_kill.append(a["finished_at"].timestamp() - kill_time[wid])
        else:
            causes["lease expired on a live worker (heartbeat or ack not answered in time during a fault)"] += 1
    v.say(f"jobs: {total}; attempts: {len(attempts)}")
    v.say(
        "executions per job: "
        + ", ".join(f"{label}: {histogram.get(k, 0)}" for k, label in ((1, "1"), (2, "2"), (3, "3+")))
    )
    for cause, n in causes.most_common():
        v.say(f"  extra execution x{n}: {cause}")
    v.say(f"reap delay after lease expiry (raw stub's leases): {_stats(reaps)}")
    v.say(f"killed worker's jobs back in the queue after the kill: {_stats(after_kill)}")


def recovery(chaos: Chaos, probe: Probe, v: Verdict) -> None:
    v.say("faults (recovery: from the end of the fault until each replica answers a call that reads the database):")
    for f in chaos.faults:
        addresses = f.replicas or list(probe.ok)
        waits = []
        for address in addresses:
            first = probe.first_ok(address, f.end)
            waits.append(f"{first - f.end:.2f}s" if first is not None else "never")
        v.say(
            f"  {f.name:<30} at +{f.start - chaos.faults[0].start:6.1f}s for {f.end - f.start:5.1f}s; "
            f"recovered in {', '.join(waits)}; {f.detail}"
        )
        if "never" in waits:
            v.fail(f"a replica did not answer again after {f.name}")
    v.say(
        f"worker kills (-9): {len(chaos.worker_kills)}; backends terminated: {chaos.terminated}; "
        f"connections cut by the proxy: {chaos.proxy.cuts}"
    )


def handler_runs(workers: list[WorkerProcess], stub: Stub, attempts: list[asyncpg.Record], v: Verdict) -> None:
    """Handler runs from the workers' logs; a run that finished under a lease that did not win had
    its ack refused (or never sent, when its worker was killed): its result must not be the one kept."""
    won = {str(a["job_id"]): str(a["lease_token"]) for a in attempts if a["outcome"] == "succeeded"}
    starts = done = lost = 0
    for w in workers:
        for path in w.logs.glob(f"worker-{w.kind}{w.slot}-*.jsonl"):
            for line in load_lines(path):
                starts += line.get("ev") == "start"
                if line.get("ev") == "done":
                    done += 1
                    lost += won.get(line["job"]) != line["lease"]
    v.say(
        f"handler runs in the Worker processes: {starts} started, {done} finished, of which {lost} under a lease "
        f"that did not win (ack refused, lease lost, or worker killed before its ack)"
    )
    v.say(
        f"raw stub: {stub.leased} leases, {len(stub.late)} acks sent after the lease ended, all answered "
        f"{sorted({a.answer for a in stub.late})}"
    )


def codes_report(by_actor: dict[str, Counter[str]], v: Verdict) -> None:
    v.say("answers other than OK, by who saw them:")
    for actor, counter in sorted(by_actor.items()):
        v.say(f"  {actor:<12} " + ", ".join(f"{code} {n}" for code, n in counter.most_common()))


def log_tail(path: Path, n: int = 20) -> Any:
    return path.read_text(errors="replace").splitlines()[-n:]
