"""spoold refuses to start on a bad setting with one line naming it and exit status 2, never a
traceback: a port already served (two real servers), an unreachable database, a missing
certificate, --auth off off loopback. And `spoold keys create` works with no server running."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import grpc
import pytest

from spool.v1 import queue_service_pb2_grpc
from spoold.app import App
from spoold.errors import StartupError
from tests import conftest
from tests.auth.conftest import bearer
from tests.conftest import wait_until
from tests.helpers import enqueue_request
from tests.test_spoold_process import free_port, spoold_command

pytestmark = pytest.mark.timeout(120)


def run_spoold(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SPOOL_LOG_LEVEL": "WARNING", **(env or {})}
    return subprocess.run(
        [*spoold_command(), *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def refused(result: subprocess.CompletedProcess[str], *named: str) -> str:
    """The one line spoold printed, having checked the exit status and that no traceback came."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


async def test_a_second_server_on_a_served_port_refuses_to_start(db_url: str) -> None:
    port = free_port()
    env = {"SPOOL_DATABASE_URL": db_url, "SPOOL_PORT": str(port)}
    first = await asyncio.create_subprocess_exec(
        *spoold_command(), env={**os.environ, **env, "SPOOL_LOG_LEVEL": "WARNING"}, stderr=asyncio.subprocess.PIPE
    )
    try:

        async def serving() -> bool:
            assert first.returncode is None, "the first spoold exited"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        await wait_until(serving, within=60, interval=0.1)
        second = await asyncio.to_thread(run_spoold, env=env)
        line = refused(second, "--port/SPOOL_PORT", f"127.0.0.1:{port}", "already in use")
        assert line.startswith("spoold: ")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:  # the first one still serves
            await queue_service_pb2_grpc.QueueServiceStub(channel).Enqueue(enqueue_request("q"), timeout=10)
    finally:
        first.terminate()
        await asyncio.wait_for(first.wait(), 30)


async def test_the_port_check_holds_inside_one_process_too(db_url: str) -> None:
    """Without SO_REUSEPORT, gRPC itself refuses the second bind (the plain-socket check aside)."""
    first = App(conftest.test_settings(), db_url)
    await first.start()
    try:
        second = App(conftest.test_settings(port=first.port), db_url)
        with pytest.raises(StartupError, match="--port/SPOOL_PORT"):
            second.bind()
    finally:
        await first.stop()


def test_an_unreachable_database_is_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    url = f"postgresql://spool:secret-pw@127.0.0.1:{dead}/spool"
    line = refused(
        run_spoold("--port", str(free_port()), env={"SPOOL_DATABASE_URL": url, "SPOOL_DATABASE_WAIT": "0"}),
        "--database-url/SPOOL_DATABASE_URL",
    )
    assert "secret-pw" not in line and "spool:***@" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], "--tls-cert/SPOOL_TLS_CERT"),
        (["--tls-cert", "/nonexistent/cert.pem"], "--tls-key/SPOOL_TLS_KEY"),
        (["--tls-client-ca", "/nonexistent/ca.pem"], "--tls-client-ca/SPOOL_TLS_CLIENT_CA"),
        (["--host", "0.0.0.0", "--auth", "off"], "--insecure"),
    ],
)
def test_bad_settings_are_one_line(args: list[str], named: str) -> None:
    refused(
        run_spoold("--port", str(free_port()), *args, env={"SPOOL_DATABASE_URL": "postgresql://unused@127.0.0.1:1/x"}),
        named,
    )


def test_a_malformed_environment_value_is_one_line() -> None:
    refused(run_spoold(env={"SPOOL_PORT": "fifty"}), "SPOOL_PORT")


def test_a_file_that_is_not_a_certificate_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = run_spoold("--port", str(free_port()), "--tls-cert", str(junk), "--tls-key", str(junk))
    refused(result, "--tls-cert/SPOOL_TLS_CERT")


async def test_keys_create_works_with_no_server_and_prints_the_key_last(db_url: str) -> None:
    result = await asyncio.to_thread(
        run_spoold, "keys", "create", "--name", "first admin", "--scope", "admin", env={"SPOOL_DATABASE_URL": db_url}
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert key.startswith("spool_") and key.strip() == key
    app = App(conftest.test_settings(auth="required"), db_url)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await queue_service_pb2_grpc.QueueServiceStub(channel).Enqueue(enqueue_request("q"), metadata=bearer(key))
    finally:
        await app.stop()
    listed = await asyncio.to_thread(run_spoold, "keys", "ls", env={"SPOOL_DATABASE_URL": db_url})
    assert "'first admin'" in listed.stdout and key not in listed.stdout
    bad = await asyncio.to_thread(
        run_spoold,
        "keys",
        "create",
        "--name",
        "w",
        "--scope",
        "work",
        "--queues",
        "*",
        env={"SPOOL_DATABASE_URL": db_url},
    )
    assert bad.returncode == 2 and "for admin keys only" in bad.stderr and "Traceback" not in bad.stderr
