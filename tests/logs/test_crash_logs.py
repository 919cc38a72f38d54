"""Per-attempt logs from a real worker process: lines logged before it was killed (SIGKILL) stay in
its attempt, up to its last heartbeat; the next attempt has its own."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import spool
from spool.v1 import job_pb2
from spoold.app import App
from spoold.config import Settings
from tests import conftest
from tests.client.conftest import serving
from tests.conftest import wait_until

Attempt = job_pb2.Attempt

WORKER_SCRIPT = """
import logging, sys, threading
from datetime import timedelta
import spool

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
client = spool.AsyncClient(sys.argv[1])
worker = spool.Worker(client, lease_duration=timedelta(seconds=1.5), poll_wait=timedelta(seconds=2))

@worker.handler("crashy")
def handle(job):
    job.log("step %d of %d", 1, 3)
    logging.getLogger("billing").warning("card declined for order 7")
    job.log("last words before the crash")
    print("logged", job.id, flush=True)
    threading.Event().wait()  # hangs until the test kills the process

worker.run()
"""


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(reaper_interval=timedelta(milliseconds=100))


async def test_a_killed_workers_last_lines_stay_in_its_attempt(
    app: App, client: spool.AsyncClient, tmp_path: Path
) -> None:
    job = await client.enqueue("crashy", {"n": 1}, max_attempts=2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), f"127.0.0.1:{app.port}", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).startswith(b"logged")

        async def sent_with_a_heartbeat() -> bool:
            running = (await client.get(job.id, include_logs=True)).attempts[-1]
            return "last words before the crash" in running.logs

        await wait_until(sent_with_a_heartbeat, within=20)
        # While the attempt runs, GetJob leaves the lines out unless asked.
        assert (await client.get(job.id)).attempts[-1].logs == ""
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def expired() -> bool:
        return (await client.get(job.id)).attempts[0].outcome == Attempt.OUTCOME_LEASE_EXPIRED

    await wait_until(expired, within=20)

    second = spool.Worker(client, poll_wait=timedelta(seconds=1))

    @second.handler("crashy")
    async def handle(active: spool.ActiveJob) -> None:
        active.log("second attempt: fine")

    async with serving(second):

        async def succeeded() -> bool:
            return (await client.get(job.id)).state == job_pb2.Job.STATE_SUCCEEDED

        await wait_until(succeeded, within=20)
    first, retry = (await client.get(job.id, include_logs=True)).attempts
    assert first.outcome == Attempt.OUTCOME_LEASE_EXPIRED
    lines = first.logs.splitlines()
    assert [line.split(" ", 2)[1:] for line in lines] == [
        ["INFO", "step 1 of 3"],
        ["WARNING", "billing: card declined for order 7"],
        ["INFO", "last words before the crash"],
    ]
    assert retry.outcome == Attempt.OUTCOME_SUCCEEDED and retry.logs.endswith("INFO second attempt: fine\n")
