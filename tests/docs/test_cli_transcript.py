"""docs/cli.md's session, replayed: each `$ spool ...` line of its console blocks is run against a
fresh spoold holding the jobs the page describes, and what it prints must be what the page shows.

Times, measured durations and generated keys differ from run to run and are compared by their
shape. SPOOL_DOCS_UPDATE=1 writes what the commands print into the page instead of comparing.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import spool
from spool.v1 import job_pb2
from spoold.app import App
from tests.cli.conftest import environment, lease, nack

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli.md"
_BLOCK = re.compile(r"```console\n(.*?)```", re.S)
_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"), "<time>"),
    (re.compile(r"\d\d:\d\d:\d\d UTC"), "<clock>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|s)\b|\b\d+m\d\ds\b"), "<duration>"),
    (re.compile(r"auto-[0-9a-f]{32}"), "<key>"),
]


def shape(text: str) -> list[str]:
    for pattern, placeholder in _VARYING:
        text = pattern.sub(placeholder, text)
    return [" ".join(line.split()) for line in text.strip("\n").splitlines()]


async def setting(client: spool.AsyncClient) -> None:
    """The jobs the page starts from (its first paragraph says what they are)."""
    ada = await client.enqueue("emails", {"to": "ada@example.com"}, max_attempts=2)
    await client.enqueue("emails", {"to": "bob@example.com"}, delay=timedelta(hours=1))
    await client.enqueue("reports", {"month": "2026-10"})
    await lease(client, "reports", worker="worker-2")
    details = 'Traceback (most recent call last):\n  File "mailer.py", line 12, in send\nSMTPError: mailbox full'
    for _ in range(2):  # the second failure spends its last attempt: DEAD
        await fail(client, details)
    await client.requeue(ada.id)
    await fail(client, details)
    assert (await client.get(ada.id)).state == job_pb2.Job.STATE_PENDING


async def fail(client: spool.AsyncClient, details: str) -> None:
    leased = await lease(client, "emails", worker="worker-1")
    await nack(client, leased, kind="SMTPError", message="mailbox full", details=details)


async def bash(command: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", f"{command} 2>&1", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()


async def test_the_session_in_the_cli_page_is_what_spool_prints(app: App, client: spool.AsyncClient) -> None:
    page = PAGE.read_text()
    await setting(client)
    env = environment(SPOOL_ADDRESS=f"127.0.0.1:{app.port}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    blocks: list[str] = []
    for block in _BLOCK.finditer(page):
        written: list[str] = []
        for chunk in re.split(r"^(?=\$ )", block.group(1), flags=re.M):
            if not chunk.strip():
                continue
            command, _, shown = chunk.partition("\n")
            printed = await bash(command.removeprefix("$ "), env)
            if not os.environ.get("SPOOL_DOCS_UPDATE"):
                assert shape(printed) == shape(shown), f"docs/cli.md: `{command}` printed:\n{printed}"
            written.append(f"{command}\n{printed.rstrip()}\n" if printed.strip() else f"{command}\n")
        blocks.append("".join(written))
    assert blocks, "docs/cli.md has no console block"
    if os.environ.get("SPOOL_DOCS_UPDATE"):
        parts = iter(blocks)
        PAGE.write_text(_BLOCK.sub(lambda _: f"```console\n{next(parts)}```", page))
