"""Client credentials: the Python client and the CLI refuse to send an API key in the clear to a host
off this machine unless told to (insecure=True, SPOOL_INSECURE=1, --insecure), and read the key from
the environment or a file (SPOOL_TOKEN_FILE, --token-file), so that it need never be on a command
line where `ps` shows it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest

import spool
from spool._config import Connection, local
from spoold.app import App
from tests.auth.conftest import make_key

OFF_MACHINE = ["10.1.2.3:50051", "spool.example.com:50051", "dns:///spool.example.com:443", "[2001:db8::1]:50051"]
ON_MACHINE = [
    "127.0.0.1:50051",
    "localhost:50051",
    "[::1]:50051",
    "127.0.0.2:1",
    "unix:/tmp/spool.sock",
    "ipv4:127.0.0.1:5",
]


@pytest.mark.parametrize("address", ON_MACHINE)
def test_loopback_and_sockets_are_local(address: str) -> None:
    assert local(address)


@pytest.mark.parametrize("address", OFF_MACHINE)
def test_a_key_in_the_clear_off_this_machine_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"in the clear.*SPOOL_INSECURE"):
        spool.Client(address, token="spool_x_y")
    with pytest.raises(ValueError, match="in the clear"):
        spool.AsyncClient(address, metadata=[("authorization", "Bearer spool_x_y")])
    with pytest.raises(ValueError, match="in the clear"):
        Connection.resolve(address, env={"SPOOL_TOKEN": "spool_x_y"})


@pytest.mark.parametrize("address", OFF_MACHINE)
def test_tls_or_an_explicit_opt_out_lets_it_go(address: str) -> None:
    assert Connection.resolve(address, token="k", tls=True, env={}).tls
    assert Connection.resolve(address, token="k", env={"SPOOL_TLS": "1"}).tls
    assert Connection.resolve(address, token="k", insecure=True, env={}).metadata
    assert Connection.resolve(address, token="k", env={"SPOOL_INSECURE": "1"}).metadata
    assert Connection.resolve(address, env={}).metadata == ()  # no key, nothing to refuse
    with pytest.raises(ValueError, match="in the clear"):
        Connection.resolve(address, token="k", tls=False, env={"SPOOL_TLS_CA": "", "SPOOL_INSECURE": "0"})


def test_the_key_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("spool_abc_def\n")
    found = Connection.resolve("127.0.0.1:1", env={"SPOOL_TOKEN_FILE": str(path)})
    assert found.metadata == (("authorization", "Bearer spool_abc_def"),)
    given = Connection.resolve("127.0.0.1:1", env={"SPOOL_TOKEN": "other", "SPOOL_TOKEN_FILE": str(path)})
    assert given.metadata == (("authorization", "Bearer other"),)
    (tmp_path / "empty").write_text(" \n")
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(ValueError, match="SPOOL_TOKEN_FILE"):
            Connection.resolve("127.0.0.1:1", env={"SPOOL_TOKEN_FILE": str(bad)})


async def spool_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spool.cli",
        *args,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_cli_reads_the_key_from_a_file_and_refuses_the_clear(
    app: App, db: asyncpg.Connection, tmp_path: Path
) -> None:
    key = await make_key(db, ["read"])
    path = tmp_path / "key"
    path.write_text(key + "\n")
    address = f"127.0.0.1:{app.port}"
    code, out = await spool_cli("--address", address, "--token-file", str(path), "queues", env={})
    assert code == 0, out
    code, out = await spool_cli("--address", address, "queues", env={"SPOOL_TOKEN_FILE": str(path)})
    assert code == 0, out
    code, out = await spool_cli("--address", address, "queues", env={})
    assert code != 0 and "API_KEY_MISSING" in out, out
    code, out = await spool_cli("--address", "10.1.2.3:50051", "--token-file", str(path), "queues", env={})
    assert code == 2 and "in the clear" in out and key not in out, out
