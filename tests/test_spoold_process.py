"""The `spoold` command as a user runs it: no database URL (embedded PostgreSQL in --data-dir), served
until SIGTERM, a clean exit that stops the embedded server, and the data still there on the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spool.v1 import queue_service_pb2 as qs
from spool.v1 import queue_service_pb2_grpc
from tests import conftest
from tests.helpers import enqueue_request

pytestmark = pytest.mark.timeout(300)  # two embedded PostgreSQL starts, on a shared machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spoold_command() -> list[str]:
    script = Path(sys.executable).parent / "spoold"
    return [str(script)] if script.exists() else [sys.executable, "-m", "spoold"]


class Spoold:
    """One spoold process; its output goes to a log file that a failing test prints."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir, self.port, self.log = data_dir, port, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SPOOL_DATABASE_URL"}
        args = [*spoold_command(), "--data-dir", str(self.data_dir), "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=out, stderr=out)

    async def wait_serving(self, channel: grpc.aio.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            assert self.proc is not None and self.proc.returncode is None, f"spoold exited:\n{self.output()}"
            try:
                resp = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            except grpc.aio.AioRpcError:
                return False
            return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

        await conftest.wait_until(serving, within=90, interval=0.2)

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout=60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
async def spoold(tmp_path: Path) -> AsyncIterator[Spoold]:
    server = Spoold(tmp_path / "data", free_port(), tmp_path / "spoold.log")
    try:
        yield server
    finally:
        server.kill()


async def serve_once(server: Spoold, work) -> object:  # type: ignore[no-untyped-def]
    """Starts spoold, runs work(stub) once it is SERVING, then SIGTERMs it and checks a clean stop."""
    pid_file = server.data_dir / "pgdata" / "postmaster.pid"
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await server.wait_serving(channel)
        assert pid_file.exists(), "no embedded PostgreSQL in the data dir"
        result = await work(queue_service_pb2_grpc.QueueServiceStub(channel))
    code = await server.terminate()
    assert code == 0, f"spoold exited with {code}:\n{server.output()}"
    assert not pid_file.exists(), f"embedded PostgreSQL still running:\n{server.output()}"
    return result


async def test_spoold_serves_on_embedded_postgres_stops_cleanly_and_keeps_data(spoold: Spoold) -> None:
    async def enqueue(stub: queue_service_pb2_grpc.QueueServiceStub) -> str:
        resp = await stub.Enqueue(enqueue_request("process", {"kept": True}))
        return resp.job.id

    job_id = await serve_once(spoold, enqueue)
    assert (spoold.data_dir / "pgdata" / "PG_VERSION").exists()

    async def get(stub: queue_service_pb2_grpc.QueueServiceStub) -> qs.GetJobResponse:
        return await stub.GetJob(qs.GetJobRequest(job_id=str(job_id)))

    got = await serve_once(spoold, get)
    assert isinstance(got, qs.GetJobResponse)
    assert got.job.queue == "process" and got.job.payload == b'{"kept": true}'
    assert got.job.state == got.job.STATE_PENDING
