"""The real `spool` command (the console script the cli extra installs), run as a subprocess
against a live spoold served by the `app` fixture in this test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import spool
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App

SPOOL = Path(sys.executable).parent / "spool"
# What a user's shell may have set that would change what the command prints.
_UNSET = (
    "SPOOL_ADDRESS",
    "SPOOL_TOKEN",
    "SPOOL_TLS",
    "SPOOL_TLS_CA",
    "SPOOL_TLS_CERT",
    "SPOOL_TLS_KEY",
    "NO_COLOR",
    "FORCE_COLOR",
    "COLUMNS",
    "TTY_COMPATIBLE",
)


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env["TZ"] = "UTC"
    return {**env, **extra}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


async def run(*args: str, stdin: str = "", env: Mapping[str, str] | None = None) -> Result:
    """Runs `spool ARGS` without blocking the loop, which also serves the server under test."""
    proc = await asyncio.create_subprocess_exec(
        str(SPOOL),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else environment(),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


class Spool:
    """`spool` pointed at the test's server: through SPOOL_ADDRESS, so each test can put the
    global options wherever it likes."""

    def __init__(self, app: App) -> None:
        self.address = f"127.0.0.1:{app.port}"

    def env(self, **extra: str) -> dict[str, str]:
        return environment(SPOOL_ADDRESS=self.address, **extra)

    async def __call__(self, *args: str, stdin: str = "", **env: str) -> Result:
        return await run(*args, stdin=stdin, env=self.env(**env))


@pytest.fixture
def cli(app: App) -> Spool:
    assert SPOOL.exists(), "the spool script is missing: install the cli extra (make install)"
    return Spool(app)


async def lease(client: spool.AsyncClient, queue: str, worker: str = "w1") -> qs.LeasedJob:
    (leased,) = await client.lease([queue], worker_id=worker, wait=timedelta(seconds=10))
    return leased


async def nack(
    client: spool.AsyncClient,
    leased: qs.LeasedJob,
    *,
    retryable: bool = True,
    kind: str = "Timeout",
    message: str = "slow",
    details: str = "",
) -> job_pb2.Job:
    error = job_pb2.JobError(type=kind, message=message, details=details)
    req = qs.NackRequest(job_id=leased.job.id, lease_token=leased.lease_token, error=error, retryable=retryable)
    return (await client.call(client.stub.Nack, req)).job


async def ack(client: spool.AsyncClient, leased: qs.LeasedJob, result: bytes = b"") -> job_pb2.Job:
    req = qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, result=result)
    return (await client.call(client.stub.Ack, req)).job


async def make_dead(client: spool.AsyncClient, queue: str, n: int, message: str = "slow") -> list[str]:
    jobs = await client.enqueue_many(queue, [{"i": i} for i in range(n)])
    for leased in await client.lease([queue], max_jobs=n):
        await nack(client, leased, retryable=False, message=message)
    return [j.id for j in jobs]
