"""spoold started while its database is down waits for it: health NOT_SERVING and every call
UNAVAILABLE (DATABASE_UNAVAILABLE) meanwhile, then it serves, without a restart. An error that
waiting cannot mend still ends start-up at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold.app import App
from spoold.errors import StartupError
from tests import conftest
from tests.conftest import with_database
from tests.faults.proxy import FaultProxy
from tests.faults.test_process import _status
from tests.helpers import enqueue_request, expect_error
from tests.replicas.test_replicas import free_port, spoold_command

pytestmark = pytest.mark.timeout(180)
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def test_spoold_started_while_the_database_is_down_waits_for_it(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.refuse = True  # every connection closed as soon as it opens: the database is down
    port, log = free_port(), tmp_path / "spoold.log"
    env = {**os.environ, "SPOOL_DATABASE_URL": proxy.url, "SPOOL_PORT": str(port), "SPOOL_DATABASE_WAIT": "120"}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*spoold_command(), env=env, stdout=out, stderr=out)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = QueueServiceStub(channel)

            async def status_is(wanted: int) -> bool:
                assert proc.returncode is None, f"spoold exited:\n{log.read_text()[-3000:]}"
                return await _status(channel) == wanted

            await conftest.wait_until(lambda: status_is(NOT_SERVING), within=60)
            await expect_error(
                stub.Enqueue(enqueue_request("waiting")), grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"
            )
            watch = stub.WatchJob(qs.WatchJobRequest(job_id="1"))
            await expect_error(watch.read(), grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
            await conftest.wait_until(lambda: log.read_text().count("not reachable yet") >= 2, within=30)

            proxy.refuse = False  # the database is back
            await conftest.wait_until(lambda: status_is(SERVING), within=60)
            job = (await stub.Enqueue(enqueue_request("waiting"))).job
            assert job.id
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0, log.read_text()[-3000:]
        assert "health NOT_SERVING meanwhile" in log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_database_that_stays_down_ends_start_up_after_the_wait(proxy: FaultProxy) -> None:
    proxy.refuse = True
    app = App(conftest.test_settings(database_wait=timedelta(seconds=1)), proxy.url)
    began = time.monotonic()
    try:
        with pytest.raises(StartupError, match="--database-url/SPOOL_DATABASE_URL: cannot connect"):
            await app.start()
    finally:
        await app.stop()
    assert 1 <= time.monotonic() - began < 30


async def test_an_error_that_waiting_cannot_mend_ends_start_up_at_once(admin_url: str) -> None:
    app = App(
        conftest.test_settings(database_wait=timedelta(seconds=600)), with_database(admin_url, "spool_no_such_db")
    )
    try:
        with pytest.raises(StartupError, match="does not exist"):
            await asyncio.wait_for(app.start(), 60)
    finally:
        await app.stop()
