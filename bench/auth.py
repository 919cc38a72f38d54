"""What API keys cost: the same cases through two spoold processes on one scratch database, one
with `--auth off` and one with `--auth required` and a key restricted to the bench queue (so the
scope check, the key cache and the queue checks of fenced calls all run), in alternating order.
Both sides send the same `authorization` header through the same client interceptor, so only the
server's work differs. The goal: at most 5 % on the batched path.

    python -m bench.auth [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import grpc

from bench import ceiling
from bench.ceiling import Case, Params
from bench.cpu import Meter
from bench.drivers import GrpcDriver
from bench.report import ratio, table, target
from bench.scratch import QUEUE, Server, run, scratch_database, spoold
from bench.throughput import sum_results
from bench.workloads import Result
from spool.v1 import queue_service_pb2_grpc
from spoold.auth import keys
from spoold.store.keys import KeyStore

CASES = (
    Case("drain", 1, 8, chained=True),  # one job per RPC: Ack with next
    Case("steady", 1, 8),  # one job per RPC: Enqueue, Lease, Ack
    Case("drain", 100, 8, chained=True),  # batched: AckBatch with next
    Case("steady", 100, 8),  # batched: EnqueueBatch, Lease 100, AckBatch
)
ROUNDS = 4
HEADERS = ("case", "auth off jobs/s", "auth on jobs/s", "on/off", "spoold CPU ms/job off", "on")


class Bearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, key: str) -> None:
        self._metadata = (("authorization", f"Bearer {key}"),)

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        details = details._replace(metadata=tuple(details.metadata or ()) + self._metadata)
        return await continuation(details, request)


@contextlib.asynccontextmanager
async def drivers(server: Server, key: str, batched: bool, count: int = 8) -> AsyncIterator[list[GrpcDriver]]:
    channels = [grpc.aio.insecure_channel(server.target, interceptors=[Bearer(key)]) for _ in range(count)]
    try:
        yield [GrpcDriver(queue_service_pb2_grpc.QueueServiceStub(ch), batched) for ch in channels]
    finally:
        for ch in channels:
            await ch.close()


async def make_key(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        new = keys.new_key()
        await KeyStore(conn).create(new, "bench", ["enqueue", "work"], [f"{QUEUE[:3]}*"], None)
        return new.text
    finally:
        await conn.close()


async def measure(params: Params) -> list[tuple[object, ...]]:
    part = params.split(ROUNDS)
    rows = []
    async with scratch_database() as url:
        key = await make_key(url)
        async with spoold(url, auth="off") as off, spoold(url, auth="required") as on:
            admin = await asyncpg.connect(url)
            try:
                for case in CASES:
                    results: dict[str, list[Result]] = {"off": [], "on": []}
                    for n in range(ROUNDS):
                        order = [("off", off), ("on", on)]
                        for name, server in order if n % 2 == 0 else order[::-1]:
                            async with drivers(server, key, case.batch > 1) as use:
                                meter = Meter(admin, server.pid)
                                results[name].append(await ceiling.run_case(case, part, admin, use, meter))
                    o, a = sum_results(results["off"]), sum_results(results["on"])
                    cpu = [r.cpu.per_job_ms(r.jobs).split("/")[1] if r.cpu else "-" for r in (o, a)]
                    rows.append((case.label, o.rate, a.rate, ratio(a.rate, o.rate), *cpu))
            finally:
                await admin.close()
    return rows


async def main(quick: bool) -> None:
    rows = await measure(Params.of(quick))
    table("auth: spoold with API keys required beside the same spoold with auth off", HEADERS, rows)
    batched = [r for r in rows if "batch" in str(r[0])]
    worst = min(float(str(r[3]).rstrip("%")) for r in batched)
    target("auth cost on the batched path (worst case)", f"{100 - worst:.0f}%", "<= 5%", worst >= 95)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller cases: about a minute")
    run(main(p.parse_args(argv).quick))


if __name__ == "__main__":
    cli()
