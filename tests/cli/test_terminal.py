"""What reaches a terminal: colour only on one (and never under NO_COLOR), no escape sequence
that came from a job, and the cli extra kept out of `import spool`."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys

import spool
from spool.cli._text import clean, clean_block
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from tests.cli.conftest import SPOOL, Spool, lease

COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m|\x1b\[[0-9;]*9[0-7]m|\x1b\[38;")
# An OSC title change, a screen clear, a colour and a one-byte CSI, in a worker id, an error and a payload.
HOSTILE = "w\x1b]0;pwned\x07-1"
NASTY = "boom\x1b[2J\x1b[31mred\x9b1m\u202eevil"


async def in_a_terminal(cli: Spool, *args: str, **env: str) -> str:
    """The command's stdout as a terminal gets it (a pseudo-terminal)."""
    leader, follower = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        str(SPOOL), *args, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=cli.env(**env)
    )
    os.close(follower)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


async def test_colour_on_a_terminal_only_and_never_under_no_color(cli: Spool, client: spool.AsyncClient) -> None:
    await client.enqueue("q", {})
    assert COLOUR.search(await in_a_terminal(cli, "ls"))
    assert not COLOUR.search(await in_a_terminal(cli, "ls", NO_COLOR="1"))
    piped = await cli("ls")
    assert "\x1b" not in piped.out and "ready" in piped.out


async def hostile_job(client: spool.AsyncClient) -> str:
    job = await client.enqueue("evil", {"note": NASTY})
    leased = await lease(client, "evil", worker=HOSTILE)
    error = job_pb2.JobError(type="Err\x1b[5m", message=NASTY, details=f"Traceback\n  {NASTY}\n")
    await client.call(client.stub.Nack, qs.NackRequest(job_id=job.id, lease_token=leased.lease_token, error=error))
    return job.id


async def test_escape_sequences_from_jobs_never_reach_the_terminal(cli: Spool, client: spool.AsyncClient) -> None:
    job_id = await hostile_job(client)
    for args in (["get", job_id, "--verbose"], ["ls"], ["dead"]):
        for out in ((await cli(*args)).out, await in_a_terminal(cli, *args, NO_COLOR="1")):
            raw = out.replace("\x1b[0m", "").replace("\x1b[1m", "").replace("\x1b[2m", "").replace("\x1b[22m", "")
            assert "\x1b" not in raw and "\x9b" not in raw and "\u202e" not in raw and "\x07" not in raw, args
            assert "\\x1b[2J" in out, args  # shown, escaped, so that it can be seen
    verbose = (await cli("get", job_id, "-v")).out
    assert "w\\x1b]0;pwned\\x07-1" in verbose and "Traceback\n" in verbose
    # JSON keeps the exact text, escaped so that printing it is harmless too.
    text = (await cli("get", job_id, "-o", "json")).out
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert '"\\u001b[2J' in text or "\\u001b[2J" in text


def test_clean_escapes_controls_and_keeps_text() -> None:
    assert clean("a\x1b[31mb\tc\nd é ✓") == "a\\x1b[31mb c d é ✓"
    assert clean("\u202eabc\x9b") == "\\u202eabc\\x9b"
    assert clean("x" * 10, width=5) == "xxxx…"
    assert clean_block("line 1\r\n\tline 2\x1b[2J\n") == "line 1\n\tline 2\\x1b[2J"


def test_import_spool_leaves_the_cli_extra_out() -> None:
    code = (
        "import sys, spool; spool.Client; print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


def test_without_the_cli_extra_the_command_says_how_to_get_it() -> None:
    # As if click and rich were not installed: an import of either fails.
    code = "import sys; sys.modules['click'] = None; from spool.cli import main; sys.exit(main(['ls']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "spool: the command line needs the cli extra: pip install 'spool-client[cli]'\n"
