"""`python -m bench.watch [--quick] [--streams N]`: server memory with many concurrent WatchJob
streams (spoold as a subprocess; its VmRSS from /proc), idle, while every watched job changes
with readers keeping up, while they change with nobody reading, and after the streams end.
Also the time from a change (Heartbeat returning) to the watcher's message, p50/p95."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration

from bench.report import table
from bench.scratch import run, scratch_database, spoold
from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc

QUEUE = "watched"
CHANNELS = 10  # streams spread over several HTTP/2 connections, as many clients would


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def enqueue(stub: queue_service_pb2_grpc.QueueServiceStub, n: int, payload: bytes) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, 500):
        jobs = [qs.EnqueueRequest(queue=QUEUE, payload=payload) for _ in range(min(500, n - start))]
        answer = await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=jobs))
        ids.extend(r.job.id for r in answer.results)
    return ids


class Watchers:
    """One stream per job; each records when it saw each checkpoint, and may stop reading."""

    def __init__(self, stubs: Sequence[queue_service_pb2_grpc.QueueServiceStub], ids: Sequence[str]) -> None:
        self.calls = [stubs[i % len(stubs)].WatchJob(qs.WatchJobRequest(job_id=j)) for i, j in enumerate(ids)]
        self.seen: dict[tuple[int, bytes], float] = {}
        self.reading = asyncio.Event()
        self.reading.set()
        self.messages = 0

    async def first(self) -> None:
        await asyncio.gather(*(c.read() for c in self.calls))

    async def _follow(self, index: int, call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        while True:
            await self.reading.wait()
            msg = await call.read()
            if msg is grpc.aio.EOF:
                return
            self.messages += 1
            self.seen.setdefault((index, msg.job.checkpoint), time.perf_counter())

    def follow(self) -> asyncio.Future[list[None]]:
        return asyncio.gather(*(self._follow(i, c) for i, c in enumerate(self.calls)))


async def heartbeat_all(
    stub: queue_service_pb2_grpc.QueueServiceStub, leased: Sequence[qs.LeasedJob], mark: bytes
) -> dict[int, float]:
    """One change per job (a checkpoint), 50 at a time; returns when each change committed."""
    done: dict[int, float] = {}

    async def one(i: int, lj: qs.LeasedJob) -> None:
        await stub.Heartbeat(qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, checkpoint=mark))
        done[i] = time.perf_counter()

    for start in range(0, len(leased), 50):
        await asyncio.gather(*(one(i, leased[i]) for i in range(start, min(start + 50, len(leased)))))
    return done


async def heartbeat_batches(
    stub: queue_service_pb2_grpc.QueueServiceStub, leased: Sequence[qs.LeasedJob], mark: bytes
) -> None:
    """One change per job, as HeartbeatBatch of 500: the same changes, in a fraction of the calls."""
    for start in range(0, len(leased), 500):
        beats = [
            qs.HeartbeatRequest(job_id=lj.job.id, lease_token=lj.lease_token, checkpoint=mark)
            for lj in leased[start : start + 500]
        ]
        await stub.HeartbeatBatch(qs.HeartbeatBatchRequest(heartbeats=beats))


async def bench(streams: int, rounds: int) -> None:
    rows: list[tuple[str, float, str]] = []
    async with scratch_database() as db_url, spoold(db_url, pool_max_size="16") as server:
        channels = [grpc.aio.insecure_channel(server.target) for _ in range(CHANNELS)]
        stubs = [queue_service_pb2_grpc.QueueServiceStub(c) for c in channels]
        stub = server.stub()
        rows.append(("server started, no streams", rss_mib(server.pid), ""))
        ids = await enqueue(stub, streams, b'{"blob": "' + b"x" * 2000 + b'"}')
        leased: list[qs.LeasedJob] = []
        while len(leased) < streams:
            got = await stub.Lease(qs.LeaseRequest(queues=[QUEUE], max_jobs=1000, lease_duration=_secs(3600)))
            leased.extend(got.jobs)
        order = {lj.job.id: i for i, lj in enumerate(leased)}
        watchers = Watchers(stubs, sorted(ids, key=order.__getitem__))
        started = time.perf_counter()
        await watchers.first()
        opened = time.perf_counter() - started
        rows.append((f"{streams} streams open, idle", rss_mib(server.pid), f"opened in {opened:.1f} s"))
        following = watchers.follow()

        latencies: list[float] = []
        for r in range(rounds):
            mark = f"r{r}".encode()
            committed = await heartbeat_all(stub, leased, mark)
            await _until(lambda mark=mark: sum(1 for (_, c) in watchers.seen if c == mark) >= streams)  # type: ignore[misc]
            latencies += [watchers.seen[(i, mark)] - committed[i] for i in range(streams)]
        p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[18]
        detail = f"change->watcher p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
        rows.append((f"{rounds} changes per job, readers keeping up", rss_mib(server.pid), detail))

        watchers.reading.clear()
        for r in range(rounds * 8):
            await heartbeat_batches(stub, leased, f"slow{r}".encode())
        rows.append((f"{rounds * 8} changes per job, nobody reading", rss_mib(server.pid), "readers paused"))

        watchers.reading.set()
        await stub.AckBatch(
            qs.AckBatchRequest(acks=[qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token) for lj in leased])
        )
        await asyncio.wait_for(following, 60)
        rows.append(("all streams ended (jobs acked)", rss_mib(server.pid), f"{watchers.messages} messages read"))
        for c in channels:
            await c.close()
    table(f"WatchJob: spoold RSS with {streams} concurrent streams", ("phase", "VmRSS MiB", "notes"), rows)


async def _until(predicate, within: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + within
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("watchers did not see every change")
        await asyncio.sleep(0.01)


def _secs(n: int) -> Duration:
    d = Duration()
    d.FromSeconds(n)
    return d


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer change rounds")
    p.add_argument("--streams", type=int, default=1000)
    args = p.parse_args(argv)
    run(bench(args.streams, rounds=1 if args.quick else 5))


if __name__ == "__main__":
    main()
