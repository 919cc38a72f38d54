"""What a Worker says: one start-up line (queues, concurrency, server), and each failure at WARNING
with the job id and the error; Worker.run() prints them to stderr when logging is not configured."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import pytest

import spool
from spool.v1 import job_pb2
from spoold.app import App
from tests.client.conftest import serving
from tests.client.test_worker import make_worker, wait_state

Job = job_pb2.Job

UNCONFIGURED_WORKER = """
import sys
import spool

worker = spool.Worker(spool.AsyncClient(sys.argv[1]), concurrency=2)

@worker.handler("emails")
def send(job):
    raise RuntimeError("smtp refused")

worker.run()
"""


async def test_the_start_line_and_failures_reach_the_log(
    app: App, client: spool.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(client, concurrency=3)

    @worker.handler("emails")
    async def send(job: spool.ActiveJob) -> None:
        raise ValueError("no such mailbox")

    with caplog.at_level(logging.INFO, logger="spool"):
        job = await client.enqueue("emails", {}, max_attempts=1)
        async with serving(worker):
            await wait_state(client, job.id, Job.STATE_DEAD)
    started = [r for r in caplog.records if "started" in r.message]
    assert len(started) == 1 and started[0].levelno == logging.INFO
    assert f"queues emails, concurrency 3, server 127.0.0.1:{app.port}" in started[0].message
    failed = [r for r in caplog.records if r.levelno == logging.WARNING and f"job {job.id} " in r.message]
    assert len(failed) == 1
    assert "attempt 1 of 1" in failed[0].message and "ValueError: no such mailbox" in failed[0].message


async def test_run_prints_to_stderr_when_logging_is_not_configured(
    app: App, client: spool.AsyncClient, tmp_path: Path
) -> None:
    job = await client.enqueue("emails", {}, max_attempts=1)
    script = tmp_path / "worker.py"
    script.write_text(UNCONFIGURED_WORKER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), f"127.0.0.1:{app.port}", stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while not any(f"job {job.id} " in line for line in lines):
            lines.append((await asyncio.wait_for(proc.stderr.readline(), 30)).decode())
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert "INFO spool.worker: worker" in lines[0] and "queues emails, concurrency 2" in lines[0]
    failure = next(line for line in lines if f"job {job.id} " in line)
    assert "WARNING spool.worker" in failure and "RuntimeError: smtp refused" in failure
