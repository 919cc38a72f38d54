"""Durable steps in one job (job.step), in Python and in Node: a handler with three steps is killed
(-9) inside the third; the next attempt runs only the third, counted by the steps' side effects."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import spool
from spool.v1 import job_pb2
from tests.conftest import wait_until

Job = job_pb2.Job
PYTHON_WORKER = """
import asyncio, sys
from datetime import timedelta
import spool

address, queue, log, hold = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "hold"
client = spool.AsyncClient(address)
worker = spool.Worker(client, poll_wait=timedelta(milliseconds=500), lease_duration=timedelta(seconds=1))

def ran(name):
    with open(log, "a") as f:
        f.write(name + "\\n")

@worker.handler(queue)
async def handle(job):
    async def third(two):
        ran("three")
        if hold and job.attempt == 1:
            print("holding", flush=True)
            await asyncio.Event().wait()  # until the process is killed
        return two["n"] + 1

    one = await job.step("one", lambda: ran("one") or 1)
    two = await job.step("two", lambda: ran("two") or {"n": one + 1})
    three = await job.step("three", third, two)
    return {"one": one, "two": two, "three": three, "by": "python"}

print("ready", flush=True)
worker.run()
"""


async def _python(address: str, queue: str, log: Path, hold: bool, tmp: Path) -> asyncio.subprocess.Process:
    script = tmp / "durable_worker.py"
    script.write_text(PYTHON_WORKER)
    return await asyncio.create_subprocess_exec(
        sys.executable, str(script), address, queue, str(log), "hold" if hold else "go", stdout=asyncio.subprocess.PIPE
    )


async def _line(proc: asyncio.subprocess.Process, wanted: str) -> None:
    assert proc.stdout is not None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert raw, f"the worker exited ({await proc.wait()})"
        if wanted in raw.decode():
            return


async def _crash_then_finish(address: str, start: Any, queue: str, tmp_path: Path) -> tuple[Job, list[str]]:
    log = tmp_path / f"{queue}.log"
    log.touch()
    async with spool.AsyncClient(address) as client:
        job = await client.enqueue(queue, {}, max_attempts=3, lease_duration=timedelta(seconds=1))
        first = await start(queue, log, True)  # returns once the first attempt is inside the third step
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await start(queue, log, False)

        async def done() -> bool:
            return (await client.get(job.id)).state == Job.STATE_SUCCEEDED

        await wait_until(done, within=30)
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
        return await client.get(job.id), log.read_text().split()


async def test_python_durable_steps_after_kill_9(address: str, tmp_path: Path) -> None:
    async def start(queue: str, log: Path, hold: bool) -> asyncio.subprocess.Process:
        proc = await _python(address, queue, log, hold, tmp_path)
        await _line(proc, "holding" if hold else "ready")
        return proc

    job, ran = await _crash_then_finish(address, start, "durable-py", tmp_path)
    assert ran == ["one", "two", "three", "three"], "the second attempt ran only the third step"
    assert json.loads(job.result) == {"one": 1, "two": {"n": 2}, "three": 3, "by": "python"}
    assert job.attempts[0].outcome == job_pb2.Attempt.OUTCOME_LEASE_EXPIRED
    steps = json.loads(job.checkpoint)["spool.steps"]
    assert steps == {"one": 1, "two": {"n": 2}, "three": 3}, "the steps show in GetJob"


async def test_node_durable_steps_after_kill_9(address: str, node: Any, tmp_path: Path) -> None:
    async def start(queue: str, log: Path, hold: bool) -> asyncio.subprocess.Process:
        args = [address, queue, str(log), "--lease-ms", "1000", *(["--hold"] if hold else [])]
        proc = await node("durable.js", *args)
        await proc.line_where("event", "ready")
        if hold:
            await proc.line_where("event", "holding")
        return proc.proc

    job, ran = await _crash_then_finish(address, start, "durable-node", tmp_path)
    assert ran == ["one", "two", "three", "three"], "the second attempt ran only the third step"
    assert json.loads(job.result) == {"one": 1, "two": {"n": 2}, "three": 3, "by": "node"}
    assert json.loads(job.checkpoint)["spool.steps"] == {"one": 1, "two": {"n": 2}, "three": 3}
