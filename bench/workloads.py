"""The three shapes of load, each run by N concurrent drivers: enqueue only, drain a backlog of
pre-enqueued jobs, and steady produce+consume (each driver enqueues a batch, claims one, acks it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from bench.cpu import Meter, Usage
from bench.drivers import Driver, Held


@dataclass(frozen=True)
class Result:
    jobs: int
    seconds: float
    cpu: Usage | None = None

    def __add__(self, other: Result) -> Result:
        cpu = self.cpu + other.cpu if self.cpu and other.cpu else None
        return Result(self.jobs + other.jobs, self.seconds + other.seconds, cpu)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


async def _timed(meter: Meter | None, body: Callable[[], Awaitable[int]]) -> Result:
    before = await meter.sample() if meter else None
    start = time.perf_counter()
    jobs = await body()
    seconds = time.perf_counter() - start
    cpu = await meter.since(before) if meter and before else None
    return Result(jobs, seconds, cpu)


async def enqueue(drivers: Sequence[Driver], batch: int, total: int, meter: Meter | None = None) -> Result:
    """Each driver enqueues its share of `total`, `batch` jobs per call."""
    calls = max(1, total // (batch * len(drivers)))

    async def one(d: Driver) -> int:
        for _ in range(calls):
            await d.enqueue(batch)
        return calls * batch

    return await _timed(meter, lambda: _sum(one(d) for d in drivers))


async def drain(drivers: Sequence[Driver], batch: int, meter: Meter | None = None, chained: bool = False) -> Result:
    """Claims and acks until the queue is empty; the backlog must be in place beforehand. Chained,
    each ack claims the next jobs in the same call (Ack with `next`)."""

    async def one(d: Driver) -> int:
        done = 0
        held = await d.claim(batch)
        while held:
            done += len(held)
            if chained:
                held = await d.ack_then_claim(held, batch)
            else:
                await d.ack(held)
                held = await d.claim(batch)
        return done

    return await _timed(meter, lambda: _sum(one(d) for d in drivers))


async def steady(
    drivers: Sequence[Driver], batch: int, seconds: float, meter: Meter | None = None, chained: bool = False
) -> Result:
    """Produce+consume for `seconds`: each driver enqueues `batch`, claims up to `batch`, acks them.
    Chained, each ack claims the jobs of the next round in the same call, and the jobs claimed in
    the last round are not counted."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds

    async def one(d: Driver) -> int:
        done = 0
        held: list[Held] = []
        while loop.time() < until:
            await d.enqueue(batch)
            if chained:
                held = await d.ack_then_claim(held, batch) if held else await d.claim(batch)
            else:
                held = await d.claim(batch)
                if held:
                    await d.ack(held)
            done += len(held)
        return done - len(held) if chained else done

    return await _timed(meter, lambda: _sum(one(d) for d in drivers))


async def _sum(runs: Iterable[Awaitable[int]]) -> int:
    return sum(await asyncio.gather(*runs))
