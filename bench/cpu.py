"""Where the CPU went during a run: the load generator, spoold, and the PostgreSQL backends serving
the scratch database (read from /proc, so Linux only; elsewhere the figures are simply absent)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> float | None:
    """User+system seconds of one process, or None if it is gone or /proc is absent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces; the fields we want follow its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class Sample:
    client: float
    server: float | None
    backends: dict[int, float]


@dataclass(frozen=True)
class Usage:
    """CPU seconds spent by each party between two samples."""

    client: float
    server: float | None
    database: float | None

    def __add__(self, other: Usage) -> Usage:
        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return Usage(self.client + other.client, add(self.server, other.server), add(self.database, other.database))

    def per_job_ms(self, jobs: int) -> str:
        """Milliseconds of CPU per job: client / spoold / postgres."""
        if jobs <= 0:
            return "-"
        parts = [self.client, self.server, self.database]
        return " / ".join("-" if p is None else f"{1000 * p / jobs:.2f}" for p in parts)


class Meter:
    def __init__(self, db: asyncpg.Connection, server_pid: int | None = None) -> None:
        self._db = db
        self._server_pid = server_pid

    async def sample(self) -> Sample:
        pids = [
            r["pid"]
            for r in await self._db.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ]
        backends = {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) is not None}
        server = proc_cpu(self._server_pid) if self._server_pid else None
        return Sample(time.process_time(), server, backends)

    async def since(self, before: Sample) -> Usage:
        after = await self.sample()
        server = None
        if after.server is not None and before.server is not None:
            server = after.server - before.server
        # Backends that ended during the run are lost; pools keep theirs open, so that is rare.
        database = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
        return Usage(after.client - before.client, server, database if after.backends else None)
