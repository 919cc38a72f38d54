"""A real spoold process whose reaper meets a bug on every run (its table renamed away under it)
stays up, logs each failure, reports NOT_SERVING, and serves again once the bug is gone."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests import conftest
from tests.replicas.test_replicas import free_port, spoold_command

pytestmark = pytest.mark.timeout(180)


async def _status(channel: grpc.aio.Channel) -> int | None:
    try:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.aio.AioRpcError:
        return None
    return int(answer.status)


async def test_a_loop_failing_with_a_bug_turns_health_down_without_ending_the_process(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "spoold.log"
    env = {
        **os.environ,
        "SPOOL_DATABASE_URL": db_url,
        "SPOOL_PORT": str(port),
        "SPOOL_REAPER_INTERVAL": "0.1",
        "SPOOL_LOOP_BACKOFF_MAX": "0.2",
    }
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*spoold_command(), env=env, stdout=out, stderr=out)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:

            async def status_is(wanted: int) -> bool:
                assert proc.returncode is None, f"spoold exited:\n{log.read_text()[-3000:]}"
                return await _status(channel) == wanted

            await conftest.wait_until(lambda: status_is(serving), within=60)
            await db.execute("ALTER TABLE spool.jobs RENAME TO jobs_away")
            await conftest.wait_until(lambda: status_is(not_serving), within=30)
            await conftest.wait_until(lambda: log.read_text().count("ERROR spoold.loops.base: reaper: run failed") >= 3)
            assert "UndefinedTableError" in log.read_text()

            await db.execute("ALTER TABLE spool.jobs_away RENAME TO jobs")
            await conftest.wait_until(lambda: status_is(serving), within=30)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0, log.read_text()[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
