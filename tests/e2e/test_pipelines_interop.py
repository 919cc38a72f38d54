"""Pipelines across languages: made in Python and worked by Node, made in Node and worked by
Python, and a step whose Node worker is killed (-9) mid-run is reaped and re-run alone."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import spool
from spool import step
from spool.v1 import pipeline_service_pb2 as ps
from tests.conftest import wait_until

P = ps.Pipeline
STEPS = ("extract", "double", "plus1", "plus2", "sum")
FAST = spool.Backoff(kind="fixed", initial=timedelta(milliseconds=50), jitter=False)
# The shape of clients/node/test/scripts/pipeline.ts, step by step, as Python handlers.
HANDLERS: dict[str, Callable[[spool.ActiveJob], int]] = {
    "extract": lambda job: int(job.json()["n"]),
    "double": lambda job: int(job.parents["extract"]) * 2,
    "plus1": lambda job: int(job.parents["double"]) + 1,
    "plus2": lambda job: int(job.parents["double"]) + 2,
    "sum": lambda job: int(job.parents["plus1"]) + int(job.parents["plus2"]),
}


def steps(prefix: str) -> list[spool.Step]:
    after = {"double": ["extract"], "plus1": ["double"], "plus2": ["double"], "sum": ["plus1", "plus2"]}
    payload = {"extract": {"n": 5}}
    return [
        step(s, f"{prefix}-{s}", payload=payload.get(s), after=after.get(s, []), max_attempts=3, backoff=FAST)
        for s in STEPS
    ]


async def finished(client: spool.AsyncClient, pipeline_id: str, within: float = 30) -> ps.Pipeline:
    async def done() -> bool:
        return (await client.pipelines.get(pipeline_id)).state == P.STATE_SUCCEEDED

    await wait_until(done, within=within)
    return await client.pipelines.get(pipeline_id)


@asynccontextmanager
async def python_workers(address: str, prefix: str, ran: Counter[str]) -> AsyncIterator[None]:
    client = spool.AsyncClient(address)
    worker = spool.Worker(client, poll_wait=timedelta(milliseconds=500), concurrency=4)
    for name, fn in HANDLERS.items():

        def run(job: spool.ActiveJob, name: str = name, fn: Callable[[spool.ActiveJob], int] = fn) -> int:
            ran[name] += 1
            return fn(job)

        worker.handler(f"{prefix}-{name}")(run)
    task = asyncio.create_task(worker.serve())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
        await client.close()


async def node_runs(proc: Any, until: Callable[[list[dict[str, Any]]], bool]) -> Counter[str]:
    while not until(proc.lines):
        await proc.next_line(within=30)
    return Counter(line["step"] for line in proc.lines if line.get("event") == "ran")


async def test_a_python_pipeline_worked_by_node(address: str, node: Any) -> None:
    worker = await node("pipeline.js", "work", address, "py2node")
    await worker.line_where("event", "ready")
    async with spool.AsyncClient(address) as client:
        p = await client.pipeline("interop", steps("py2node"))
        await node_runs(worker, lambda lines: any(x.get("step") == "sum" for x in lines))
        done = await finished(client, p.id)
    assert json.loads(done.steps[-1].job.result) == 23
    ran = await node_runs(worker, lambda lines: True)
    assert ran == dict.fromkeys(STEPS, 1)
    assert await worker.stop(signal.SIGTERM) == 0


async def test_a_node_pipeline_worked_by_python(address: str, node: Any) -> None:
    ran: Counter[str] = Counter()
    producer = await node("pipeline.js", "produce", address, "node2py")
    made = await producer.line_where("pipeline")
    async with python_workers(address, "node2py", ran), spool.AsyncClient(address) as client:
        done = await finished(client, made["pipeline"])
    assert [s.job.id for s in done.steps] == made["steps"]
    assert json.loads(done.steps[-1].job.result) == 23
    assert ran == dict.fromkeys(STEPS, 1)


async def test_a_step_whose_worker_is_killed_is_reaped_and_rerun_without_its_parents(address: str, node: Any) -> None:
    doomed = await node("pipeline.js", "work", address, "kill9", "--hold", "double", "--lease-ms", "1000")
    await doomed.line_where("event", "ready")
    async with spool.AsyncClient(address) as client:
        p = await client.pipeline("interop", steps("kill9"))
        await doomed.line_where("event", "holding")
        before = Counter(x["step"] for x in doomed.lines if x.get("event") == "ran")
        assert before == {"extract": 1, "double": 1}
        doomed.proc.send_signal(signal.SIGKILL)
        await doomed.proc.wait()
        rescuer = await node("pipeline.js", "work", address, "kill9")
        await rescuer.line_where("event", "ready")
        done = await finished(client, p.id)
    after = await node_runs(rescuer, lambda lines: any(x.get("step") == "sum" for x in lines))
    assert after == {"double": 1, "plus1": 1, "plus2": 1, "sum": 1}, "extract did not run again"
    double = done.steps[1].job
    assert double.attempts[0].outcome == spool.v1.job_pb2.Attempt.OUTCOME_LEASE_EXPIRED
    assert len(done.steps[0].job.attempts) == 1
    assert json.loads(done.steps[-1].job.result) == 23
