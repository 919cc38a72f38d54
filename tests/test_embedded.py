"""`make run`'s embedded PostgreSQL: a few quiet lines, and private even as root: a 0700 socket
directory inside the data dir, peer authentication for the user running spoold only, no TCP port,
and no parent directory's mode loosened, even under a 0700 parent or with a very long path."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
from pathlib import Path

import asyncpg
import pytest

from spoold import embedded
from spoold.errors import StartupError
from tests.test_spoold_process import Spoold, free_port, serve_once

pytestmark = pytest.mark.timeout(300)


def modes(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in path.parents}


async def test_make_run_prints_a_few_lines_and_no_chatter(tmp_path: Path) -> None:
    server = Spoold(tmp_path / "data", free_port(), tmp_path / "spoold.log")

    async def nothing(stub: object) -> None:
        return None

    try:
        await serve_once(server, nothing)
    finally:
        server.kill()
    out = server.log.read_text()
    for chatter in ("initdb", "pg_ctl", "Success.", "RuntimeDirWarning", "fork_posix", "Traceback", "WARNING"):
        assert chatter not in out, out
    lines = out.splitlines()
    # Where the data is and how to reach it with psql, the migrations, then one line each for the
    # version, the addresses, the database, auth and TLS, and the stop.
    assert len(lines) <= 10, out
    assert any(f"127.0.0.1:{server.port}" in line for line in lines), out
    assert any(str((tmp_path / "data" / "pgdata").resolve()) in line for line in lines), out
    assert any("psql" in line and "-U postgres" in line for line in lines), out


@pytest.fixture
def locked(tmp_path: Path) -> Path:
    """A directory only its owner may enter (as /root is), to hold a data dir."""
    d = tmp_path / "locked"
    d.mkdir(mode=0o700)
    return d


async def test_embedded_postgres_is_private_and_loosens_nothing(locked: Path) -> None:
    (locked / "proj").mkdir()
    data_dir = locked / "proj" / ".spool"
    before = modes(data_dir)
    database = embedded.start(data_dir)
    try:
        assert modes(data_dir) == before
        run = database.pgdata / "run"
        assert database.socket_dir == run and stat.S_IMODE(run.stat().st_mode) == 0o700
        assert stat.S_IMODE(database.pgdata.stat().st_mode) == 0o700
        hba = (database.pgdata / "pg_hba.conf").read_text()
        assert "trust" not in hba and "local all all peer map=spool" in hba
        conn = await asyncpg.connect(database.url)
        try:
            assert await conn.fetchval("SHOW listen_addresses") == ""
            assert await conn.fetchval("SELECT current_user") == "postgres"
        finally:
            await conn.close()
        again = embedded.start(data_dir)  # a second spoold (or `spoold keys`) joins, and stops nothing
        assert not again.started and again.url == database.url
        again.stop()
        assert embedded.running(data_dir) is not None
        if os.geteuid() == 0:
            assert database.pgdata.stat().st_uid != 0  # PostgreSQL refuses root: it runs as a user of its own
            stranger = await asyncio.create_subprocess_exec(
                "runuser",
                "-u",
                "nobody",
                "--",
                *database.psql_args(),
                "-c",
                "select 1",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert await stranger.wait() != 0
    finally:
        database.stop()
    assert embedded.running(data_dir) is None
    assert modes(data_dir) == before


async def test_a_data_dir_too_deep_for_a_socket_path_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ".spool"
    database = embedded.start(deep)
    try:
        assert len(str(database.pgdata / "run")) > 107
        conn = await asyncpg.connect(database.url)
        await conn.close()
    finally:
        database.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user's reach is checked only as root")
def test_programs_the_server_user_cannot_reach_are_one_clear_refusal(locked: Path) -> None:
    user = pwd.getpwnam("nobody")
    with pytest.raises(StartupError, match=r"may not enter .*locked"):
        embedded._check_reachable(user, locked / "venv" / "bin")
