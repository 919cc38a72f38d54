"""Runs the chaos suite: sets everything up, breaks it on the timeline, waits for every job to finish,
checks what must have held and returns the verdict with its report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.chaos import verdict as checks
from tests.chaos.actors import Codes, Probe, Stub, produce, stubs
from tests.chaos.cluster import NODE_DIR, Postgres, Replica, WorkerProcess, health, proxy_url, wait_for
from tests.chaos.faults import CYCLE, Chaos
from tests.chaos.proxy import ChaosProxy
from tests.chaos.verdict import Verdict
from tests.helpers import enqueue_request

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class Form:
    jobs: int
    cycles: int  # of the CYCLE-second fault timeline
    drain: float = 900.0  # after the chaos, how long every job may take to finish


SHORT = Form(jobs=5000, cycles=1)
LONG = Form(jobs=20000, cycles=4)


def build_node() -> None:
    tsc = NODE_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        raise RuntimeError("the Node client is not installed: run `make node-install`")
    subprocess.run([str(tsc), "-p", str(NODE_DIR / "tsconfig.json")], check=True, cwd=NODE_DIR)


async def run(form: Form, workdir: Path) -> Verdict:
    await asyncio.to_thread(build_node)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(workdir / "pg")
    await asyncio.to_thread(postgres.start)
    proxy = ChaosProxy(unix_path=postgres.socket)
    replicas: list[Replica] = []
    workers: list[WorkerProcess] = []
    try:
        await postgres.create_database()
        await proxy.start()
        replicas = [Replica(name, proxy_url(proxy), logs) for name in ("A", "B")]
        for r in replicas:  # one at a time: the first one migrates
            r.start()
            await wait_for(lambda r=r: health(r.address), within=120)
        return await _chaos(form, postgres, proxy, replicas, workers, logs)
    finally:
        for w in workers:
            await asyncio.to_thread(w.stop)
        for r in replicas:
            await asyncio.to_thread(r.terminate)
        await proxy.stop()
        await asyncio.to_thread(postgres.stop)


async def _chaos(
    form: Form, postgres: Postgres, proxy: ChaosProxy, replicas: list[Replica], workers: list[WorkerProcess], logs: Path
) -> Verdict:
    addresses = [r.address for r in replicas]
    (first,) = stubs(addresses[:1])
    probe_job = (await first.Enqueue(enqueue_request("probe"), timeout=30)).job.id
    for kind, slot, address in (("py", 0, 0), ("py", 1, 1), ("node", 0, 1), ("node", 1, 0)):
        workers.append(WorkerProcess(kind, slot, addresses[address], "chaos", logs))
        workers[-1].start()
    codes, stop_chaos, stop_watch = Codes(), asyncio.Event(), asyncio.Event()
    chaos = Chaos(postgres, proxy, replicas, workers)
    stub, probe = Stub(addresses, codes), Probe(addresses, probe_job, codes)

    async def monitor() -> None:
        while not stop_watch.is_set():
            chaos.check_processes()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_watch.wait(), 0.5)

    background = [asyncio.create_task(c) for c in (monitor(), probe.run(stop_watch), stub.run(stop_chaos))]
    producing = asyncio.create_task(produce(addresses, form.jobs, form.cycles * CYCLE * 0.9, codes))
    try:
        await chaos.run(form.cycles, stop_chaos)
        await producing
        db = await asyncpg.connect(postgres.url)
        try:

            async def all_done() -> bool:
                done = await db.fetchval(
                    "SELECT count(*) FROM spool.jobs WHERE queue = 'chaos' AND state = 'succeeded'"
                )
                return bool(done == form.jobs)

            v = Verdict()
            try:
                took = await wait_for(all_done, within=form.drain, interval=0.5)
                v.say(f"every job finished {took:.1f}s after the chaos ended")
            except TimeoutError:
                v.fail(f"jobs still unfinished {form.drain:.0f}s after the chaos ended")
            stop_watch.set()
            await asyncio.gather(*background)
            for w in workers:
                await asyncio.to_thread(w.stop)
            exits = {r.name: await asyncio.to_thread(r.terminate) for r in replicas}
            attempts = await checks.check_database(db, form.jobs, v)
        finally:
            await db.close()
    finally:  # on a failure too: no monitor left to restart the workers that run() stops
        stop_chaos.set()
        stop_watch.set()
        for task in (*background, producing):
            if not task.done():
                task.cancel()
        await asyncio.gather(*background, producing, return_exceptions=True)
    checks.check_late_acks(stub, v)
    by_actor = checks.check_codes(codes, workers, v)
    checks.check_processes(replicas, exits, workers, v)
    checks.executions(attempts, chaos, form.jobs, v, stub.lease)
    checks.handler_runs(workers, stub, attempts, v)
    checks.recovery(chaos, probe, v)
    checks.codes_report(by_actor, v)
    v.say(f"logs: {logs}")
    return v
