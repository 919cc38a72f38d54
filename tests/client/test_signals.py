"""Worker.run() in its own process: SIGTERM drains it without losing or duplicating a job."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import spool
from spool.v1 import job_pb2
from spoold.app import App
from tests.client.conftest import serving
from tests.conftest import wait_until

Job = job_pb2.Job

WORKER_SCRIPT = """
import asyncio, sys
from datetime import timedelta
import spool

client = spool.AsyncClient(sys.argv[1])  # built before the loop: Worker.run() makes the loop
worker = spool.Worker(client, concurrency=3, grace=timedelta(seconds=20), poll_wait=timedelta(seconds=2))

@worker.handler("term")
async def handle(job):
    print("started", job.id, flush=True)
    await asyncio.sleep(0.5)
    print("finished", job.id, flush=True)

worker.run()
print("exited", flush=True)
"""


async def test_sigterm_drains_then_a_second_worker_finishes_the_rest(
    app: App, client: spool.AsyncClient, tmp_path: Path
) -> None:
    jobs = await client.enqueue_many("term", [{"i": i} for i in range(12)], max_attempts=3)
    ids = [j.id for j in jobs]
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), f"127.0.0.1:{app.port}", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert first.startswith(b"started")
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    lines = [first.decode(), *out.decode().splitlines()]
    assert proc.returncode == 0 and lines[-1] == "exited"
    started = [line.split()[1] for line in lines if line.startswith("started")]
    finished = [line.split()[1] for line in lines if line.startswith("finished")]
    assert sorted(started) == sorted(finished), "every job the worker began, it finished before exiting"
    assert 0 < len(finished) < 12

    runs = Counter(finished)
    second = spool.Worker(client, concurrency=3, poll_wait=timedelta(seconds=2))

    @second.handler("term")
    async def handle(job: spool.ActiveJob) -> None:
        runs[job.id] += 1

    async def all_succeeded() -> bool:
        return [(await client.get(i)).state for i in ids] == [Job.STATE_SUCCEEDED] * len(ids)

    async with serving(second):
        await wait_until(all_succeeded, within=30)
    assert runs == Counter({i: 1 for i in ids}), "no job lost, none run twice"
    for job_id in ids:
        job = await client.get(job_id)
        assert job.attempt == 1 and [a.outcome for a in job.attempts] == [job_pb2.Attempt.OUTCOME_SUCCEEDED]
