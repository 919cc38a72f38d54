"""Cross-language fixtures: spoold with a quick reaper, and the Node client's scripts, compiled once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spoold.config import Settings
from tests.conftest import test_settings

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"
SCRIPTS = NODE_DIR / "dist" / "test" / "scripts"


@pytest.fixture
def settings() -> Settings:
    # The reaper frees expired leases within 0.2 s, so takeover tests stay short.
    return test_settings(reaper_interval=timedelta(milliseconds=200))


@pytest.fixture(scope="session")
def node_scripts() -> Path:
    """Compiles the Node client (tsc, strict) once per session; skips when its packages are not installed."""
    node = shutil.which("node")
    tsc = NODE_DIR / "node_modules" / ".bin" / "tsc"
    if node is None or not tsc.exists():
        pytest.skip("the Node client is not installed: run `make node-install`")
    subprocess.run([str(tsc), "-p", str(NODE_DIR / "tsconfig.json")], check=True, cwd=NODE_DIR)
    return SCRIPTS


@dataclass
class NodeProcess:
    """A running Node script whose stdout is JSON lines."""

    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)

    async def next_line(self, within: float = 15.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not raw:
            raise AssertionError(f"node exited ({await self.proc.wait()}) after {self.lines}")
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line

    async def line_where(self, key: str, value: object | None = None, within: float = 15.0) -> dict[str, Any]:
        """The next line that has `key` (equal to `value`, when given)."""
        while True:
            line = await self.next_line(within)
            if key in line and (value is None or line[key] == value):
                return line

    async def rest(self, within: float = 15.0) -> list[dict[str, Any]]:
        """Every line until the process exits."""
        assert self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), within)
        await asyncio.wait_for(self.proc.wait(), within)
        self.lines.extend(json.loads(x) for x in out.decode().splitlines() if x.strip())
        return self.lines

    async def stop(self, sig: int = signal.SIGTERM, within: float = 15.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), within)


@pytest.fixture
async def node(node_scripts: Path) -> AsyncIterator[Any]:
    """Starts Node scripts: `await node("worker.js", address, queue, ...)`; kills leftovers at the end."""
    started: list[NodeProcess] = []

    async def start(script: str, *args: str) -> NodeProcess:
        proc = await asyncio.create_subprocess_exec(
            "node", str(node_scripts / script), *args, stdout=asyncio.subprocess.PIPE
        )
        started.append(NodeProcess(proc))
        return started[-1]

    yield start
    for p in started:
        if p.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.proc.kill()
            await p.proc.wait()


@pytest.fixture
def address(app: Any) -> str:
    return f"127.0.0.1:{app.port}"
