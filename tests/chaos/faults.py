"""The faults, on a timeline repeated every CYCLE seconds while the workers are killed throughout.

Each fault is recorded with its start and end (wall clock), so the report can time how long each
replica took to answer again after it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from tests.chaos.cluster import Postgres, Replica, WorkerProcess, health, wait_for
from tests.chaos.proxy import ChaosProxy

log = logging.getLogger("chaos")

CYCLE = 60.0


@dataclass
class Fault:
    name: str
    start: float
    end: float = 0.0
    detail: str = ""
    replicas: list[str] = field(default_factory=list)  # whose recovery to time (all if empty)


@dataclass
class Chaos:
    postgres: Postgres
    proxy: ChaosProxy
    replicas: list[Replica]
    workers: list[WorkerProcess]
    faults: list[Fault] = field(default_factory=list)
    worker_kills: list[tuple[float, str]] = field(default_factory=list)
    terminated: int = 0

    async def run(self, cycles: int, stop: asyncio.Event) -> None:
        """The fault timeline `cycles` times, with worker kills all along; sets `stop` when done."""
        killer = asyncio.create_task(self._kill_workers(stop))
        try:
            for _ in range(cycles):
                await self._cycle()
        finally:
            stop.set()
            await killer

    async def _cycle(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        a, b = self.replicas
        steps: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (0, lambda: self._kill_replica(a)),
            (8, lambda: self._storm(6)),
            (18, lambda: self._latency(6, 0.03)),
            (27, lambda: self._kill_replica(b)),
            (35, lambda: self._cuts(6)),
            (44, self._restart_postgres),
            (52, lambda: self._restart_replica_while_postgres_is_down(a)),
        ]
        for offset, step in steps:
            await asyncio.sleep(max(0.0, start + offset - loop.time()))  # the timeline, not a wait
            await step()
        await asyncio.sleep(max(0.0, start + CYCLE - loop.time()))

    async def _record(self, name: str, body: Callable[[Fault], Awaitable[None]], *replicas: Replica) -> None:
        fault = Fault(name, time.time(), replicas=[r.address for r in replicas])
        self.faults.append(fault)
        try:
            await body(fault)
        finally:
            fault.end = time.time()
        log.info("fault %s: %.1fs %s", name, fault.end - fault.start, fault.detail)

    async def _kill_replica(self, replica: Replica) -> None:
        async def body(fault: Fault) -> None:
            replica.kill9()
            await asyncio.sleep(1)  # down for a second, then restarted on the same port
            replica.start()
            took = await wait_for(lambda: health(replica.address), within=120, interval=0.05)
            fault.detail = f"SERVING {took:.1f}s after the restart"

        await self._record(f"kill -9 {replica.name}", body, replica)

    async def _storm(self, seconds: float) -> None:
        async def body(fault: Fault) -> None:
            conn = await asyncpg.connect(self.postgres.url)
            n = 0
            try:
                loop = asyncio.get_running_loop()
                until = loop.time() + seconds
                while loop.time() < until:
                    n += await conn.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name LIKE 'spoold%'"
                    )
                    await asyncio.sleep(0.5)
            finally:
                await conn.close()
            self.terminated += n
            fault.detail = f"{n} backends terminated"

        await self._record("pg_terminate_backend storm", body)

    async def _latency(self, seconds: float, latency: float) -> None:
        async def body(fault: Fault) -> None:
            self.proxy.latency = latency
            try:
                await asyncio.sleep(seconds)
            finally:
                self.proxy.latency = 0.0
            fault.detail = f"+{latency * 1000:.0f} ms per packet each way"

        await self._record("proxy latency", body)

    async def _cuts(self, seconds: float) -> None:
        async def body(fault: Fault) -> None:
            loop = asyncio.get_running_loop()
            until, n = loop.time() + seconds, 0
            while loop.time() < until:
                n += self.proxy.cut_in_flight()
                await asyncio.sleep(0.25)
            n += self.proxy.cut_all()
            fault.detail = f"{n} connections cut (mid-query, then all)"

        await self._record("proxy cuts", body)

    async def _restart_postgres(self) -> None:
        async def body(fault: Fault) -> None:
            await asyncio.to_thread(self.postgres.stop)
            await asyncio.sleep(2)  # down for two seconds
            await asyncio.to_thread(self.postgres.start)
            fault.detail = "stopped (fast shutdown), down 2 s, started"

        await self._record("PostgreSQL restart", body)

    async def _restart_replica_while_postgres_is_down(self, replica: Replica) -> None:
        async def body(fault: Fault) -> None:
            await asyncio.to_thread(self.postgres.stop)
            replica.kill9()
            replica.start()  # it must wait for the database, NOT_SERVING, and not exit
            await asyncio.sleep(3)  # down for three seconds
            await asyncio.to_thread(self.postgres.start)
            took = await wait_for(lambda: health(replica.address), within=120, interval=0.05)
            fault.detail = f"replica started while PostgreSQL was down for 3 s; SERVING {took:.1f}s after it was back"

        await self._record(f"kill -9 {replica.name} while PG is down", body, replica)

    async def _kill_workers(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), random.uniform(3, 7))
            except TimeoutError:
                worker = random.choice(self.workers)
                self.worker_kills.append((time.time(), worker.kill9()))

    def check_processes(self) -> None:
        for p in (*self.replicas, *self.workers):
            p.check()
