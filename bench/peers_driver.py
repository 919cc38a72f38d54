"""The peer queues' side of bench.peers: runs inside the bench-only virtualenv (.bench-venv), never
in the project's, so PGQueuer's and Procrastinate's dependencies stay out of Spool's environment.
It imports nothing from Spool or from the bench package: a standalone script.

    .bench-venv/bin/python bench/peers_driver.py {pgqueuer|procrastinate} {drain|latency} URL COUNT
    .bench-venv/bin/python bench/peers_driver.py pgqueuer-batch100 drain URL COUNT

Prints one JSON object on stdout: for drain {"jobs", "seconds", "finished", "cpu_client",
"cpu_database"} (CPU seconds of this process and of the database's backends); for latency
{"latencies_ms": [...]} in enqueue order (the caller drops the warm-up samples).

Each library runs with the settings its documentation gives for throughput:
- PGQueuer: the asyncpg driver (its docs measure it at about twice psycopg), several
  QueueManagers each on its own connection with dequeue batch_size 10, as its benchmark tool runs
  (5 dequeue workers, batch size 10); `mode=drain` for the drain so the managers stop when the
  queue is empty. `pgqueuer-batch100` (drain only) is one QueueManager with batch_size 100: not
  what the docs show, but it spends half the CPU per job, so it is measured as well.
- Procrastinate: the async PsycopgConnector, async no-op tasks, one worker with concurrency 10 and
  a connection pool one larger than that, LISTEN/NOTIFY on (the default); `wait=False` for the
  drain so the worker stops when no job is left.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

ENTRYPOINT = "bench"
PGQ_MANAGERS = 5
PGQ_BATCH = 10
PROC_CONCURRENCY = 10
SPACING = 0.010  # the same pacing as bench/latency.py
FILL_CHUNK = 1000


class Arrivals:
    """Arrival times by job id; `complete` fires once `expected` jobs have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.times: dict[Any, float] = {}
        self.complete = asyncio.Event()

    def arrive(self, job_id: Any) -> None:
        self.times[job_id] = time.perf_counter()
        if len(self.times) >= self.expected:
            self.complete.set()


async def paced(count: int, enqueue: Callable[[], Awaitable[Any]], arrivals: Arrivals) -> list[float]:
    """Enqueues one job every SPACING seconds; latency = handler start - enqueue returning."""
    sent: list[tuple[Any, float]] = []
    for _ in range(count):
        job_id = await enqueue()
        sent.append((job_id, time.perf_counter()))
        await asyncio.sleep(SPACING)  # pacing the load, not synchronisation
    await asyncio.wait_for(arrivals.complete.wait(), 30)
    return [1000 * (arrivals.times[j] - t) for j, t in sent if j in arrivals.times]


# ---------------------------------------------------------------- PGQueuer


async def pgq_setup(url: str) -> Any:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(url)
    await Queries(AsyncpgDriver(conn)).install()
    return conn


def pgq_manager(conn: Any, on_job: Callable[[Any], None]) -> Any:
    from pgqueuer import AsyncpgDriver, Queries, QueueManager

    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRYPOINT)
    async def no_op(job: Any) -> None:
        on_job(job.id)

    return qm


async def pgq_drain(url: str, count: int, managers: int = PGQ_MANAGERS, batch: int = PGQ_BATCH) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries
    from pgqueuer.domain.types import QueueExecutionMode

    admin = await pgq_setup(url)
    queries = Queries(AsyncpgDriver(admin))
    for start in range(0, count, FILL_CHUNK):
        n = min(FILL_CHUNK, count - start)
        await queries.enqueue([ENTRYPOINT] * n, [b"{}"] * n, [0] * n)
    await settle(admin)
    handled = 0

    def on_job(_job_id: Any) -> None:
        nonlocal handled
        handled += 1

    conns = [await asyncpg.connect(url) for _ in range(managers)]
    managers = [pgq_manager(c, on_job) for c in conns]
    before = await cpu_sample(admin)
    started = time.perf_counter()
    await asyncio.gather(
        *(
            qm.run(batch_size=batch, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
            for qm in managers
        )
    )
    seconds = time.perf_counter() - started
    cpu = await cpu_since(admin, before)
    # A finished PGQueuer job leaves the queue table (it is logged elsewhere).
    left = await admin.fetchval("SELECT count(*) FROM pgqueuer")
    for c in [*conns, admin]:
        await c.close()
    return {"jobs": handled, "seconds": seconds, "finished": count - left, **cpu}


async def pgq_latency(url: str, count: int) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    admin = await pgq_setup(url)
    arrivals = Arrivals(count)
    worker_conn, producer_conn = await asyncpg.connect(url), await asyncpg.connect(url)
    qm = pgq_manager(worker_conn, arrivals.arrive)
    producer = Queries(AsyncpgDriver(producer_conn))
    serving = asyncio.create_task(qm.run(batch_size=PGQ_BATCH))

    async def enqueue() -> Any:
        (job_id,) = await producer.enqueue(ENTRYPOINT, b"{}")
        return job_id

    try:
        latencies = await paced(count, enqueue, arrivals)
    finally:
        qm.shutdown.set()
        await serving
        for c in (worker_conn, producer_conn, admin):
            await c.close()
    return {"latencies_ms": latencies}


# ---------------------------------------------------------------- Procrastinate


def proc_app(url: str, on_job: Callable[[Any], None]) -> tuple[Any, Any]:
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=2, max_size=PROC_CONCURRENCY + 1)
    app = procrastinate.App(connector=connector)

    @app.task(name="no_op", queue=ENTRYPOINT, pass_context=True)
    async def no_op(context: Any, n: int = 0) -> None:
        on_job(context.job.id)

    return app, no_op


async def proc_drain(url: str, count: int) -> dict[str, Any]:
    import asyncpg

    handled = 0

    def on_job(_job_id: Any) -> None:
        nonlocal handled
        handled += 1

    app, task = proc_app(url, on_job)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, count, FILL_CHUNK):
            await task.batch_defer_async(*({"n": n} for n in range(start, min(count, start + FILL_CHUNK))))
        admin = await asyncpg.connect(url)
        await settle(admin)
        before = await cpu_sample(admin)
        started = time.perf_counter()
        await app.run_worker_async(
            queues=[ENTRYPOINT], concurrency=PROC_CONCURRENCY, wait=False, install_signal_handlers=False
        )
        seconds = time.perf_counter() - started
        cpu = await cpu_since(admin, before)
    done = await admin.fetchval("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
    await admin.close()
    return {"jobs": handled, "seconds": seconds, "finished": done, **cpu}


async def proc_latency(url: str, count: int) -> dict[str, Any]:
    arrivals = Arrivals(count)
    app, task = proc_app(url, arrivals.arrive)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(
            app.run_worker_async(queues=[ENTRYPOINT], concurrency=PROC_CONCURRENCY, install_signal_handlers=False)
        )

        async def enqueue() -> Any:
            return await task.defer_async(n=0)

        try:
            latencies = await paced(count, enqueue, arrivals)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    return {"latencies_ms": latencies}


# ---------------------------------------------------------------- common


def _proc_cpu(pid: int) -> float | None:
    """User+system CPU seconds of one process from /proc (as bench/cpu.py reads it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_sample(conn: Any) -> tuple[float, dict[int, float]]:
    """This process's CPU and that of every backend serving this database, as bench.cpu.Meter."""
    rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    backends = {r["pid"]: cpu for r in rows if (cpu := _proc_cpu(r["pid"])) is not None}
    return time.process_time(), backends


async def cpu_since(conn: Any, before: tuple[float, dict[int, float]]) -> dict[str, float]:
    client, backends = await cpu_sample(conn)
    database = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in backends.items())
    return {"cpu_client": client - before[0], "cpu_database": database}


async def settle(conn: Any) -> None:
    """As bench.scratch.fill does: vacuum and checkpoint after the bulk insert, so their cost does
    not land inside the measurement."""
    await conn.execute("VACUUM (ANALYZE)")
    await conn.execute("CHECKPOINT")


RUNS: dict[tuple[str, str], Callable[[str, int], Awaitable[dict[str, Any]]]] = {
    ("pgqueuer", "drain"): pgq_drain,
    ("pgqueuer", "latency"): pgq_latency,
    ("pgqueuer-batch100", "drain"): functools.partial(pgq_drain, managers=1, batch=100),
    ("procrastinate", "drain"): proc_drain,
    ("procrastinate", "latency"): proc_latency,
}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or (argv[0], argv[1]) not in RUNS:
        print(__doc__, file=sys.stderr)
        return 2
    peer, mode, url, count = argv
    result = run(RUNS[(peer, mode)](url, int(count)))
    print(json.dumps(result))
    return 0


def run(main: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """On uvloop, as Spool's load generator and server run."""
    import uvloop

    async def wrapped() -> dict[str, Any]:
        return await main

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(wrapped())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
