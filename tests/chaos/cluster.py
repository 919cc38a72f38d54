"""What the chaos suite runs and breaks: its own PostgreSQL, the proxy in front of it, two spoold
replicas, and the worker processes (Python and Node). Every process is real and is killed with -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spoold import embedded
from tests.chaos.proxy import ChaosProxy
from tests.replicas.test_replicas import free_port, spoold_command

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"
NODE_SCRIPT = NODE_DIR / "dist" / "test" / "scripts" / "chaos-worker.js"
DATABASE = "chaos"


class Postgres:
    """A throwaway embedded PostgreSQL (never a shared one: the suite restarts it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: embedded.Embedded | None = None

    def start(self) -> None:
        """Started from a process of its own: pg_ctl forked from this one, beside gRPC's threads,
        can crash in the child before it runs (gRPC's fork handlers)."""
        program = "import sys, pathlib; from spoold import embedded; embedded.start(pathlib.Path(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", program, str(self.data_dir)], check=True)
        found = embedded.running(self.data_dir)
        assert found is not None, "the embedded PostgreSQL did not start"
        self.server = replace(found, started=True)  # this suite stops it

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def admin_url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def url(self) -> str:
        """The chaos database, on the unix socket (not through the proxy)."""
        return self.admin_url.replace("/postgres?", f"/{DATABASE}?", 1)

    @property
    def socket(self) -> str:
        assert self.server is not None
        return str(self.server.socket_dir / ".s.PGSQL.5432")

    async def create_database(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await conn.close()


@dataclass
class Replica:
    """One spoold process; restarted on the same port so its clients find it again."""

    name: str
    database_url: str
    logs: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False  # the current process was killed by the suite
    unexpected_exits: list[str] = field(default_factory=list)
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.logs / f"spoold-{self.name}.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "SPOOL_DATABASE_URL": self.database_url,
            "SPOOL_HOST": "127.0.0.1",
            "SPOOL_PORT": str(self.port),
            "SPOOL_HTTP_PORT": "0",
            "SPOOL_REAPER_INTERVAL": "0.25",
            "SPOOL_WATCH_POLL_INTERVAL": "1",
            "SPOOL_LOG_LEVEL": "INFO",
        }
        self.starts += 1
        with self.log_file.open("ab") as out:
            out.write(f"=== chaos: start #{self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(spoold_command(), env=env, stdout=out, stderr=subprocess.STDOUT)
        self.killed = False

    def kill9(self) -> None:
        assert self.process is not None
        self.killed = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def check(self) -> None:
        """Records an exit the suite did not cause (then starts the replica again)."""
        if self.process is None or self.killed or self.process.poll() is None:
            return
        tail = self.log_file.read_text(errors="replace")[-1500:]
        self.unexpected_exits.append(f"{self.name} exited with {self.process.returncode}:\n{tail}")
        self.start()

    def terminate(self) -> int | None:
        """SIGTERM; the exit status (0 for a clean stop), None if it had to be killed."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


async def health(address: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
    except grpc.aio.AioRpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@dataclass
class WorkerProcess:
    """A Worker process of one language in a slot; each restart is a new worker id."""

    kind: str  # "py" or "node"
    slot: int
    address: str
    queue: str
    logs: Path
    gen: int = 0
    process: subprocess.Popen[bytes] | None = None
    killed_ids: list[str] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)

    @property
    def worker_id(self) -> str:
        return f"{self.kind}{self.slot}-{self.gen}"

    def log_file(self, worker_id: str | None = None) -> Path:
        return self.logs / f"worker-{worker_id or self.worker_id}.jsonl"

    def start(self) -> None:
        self.gen += 1
        wid = self.worker_id
        err = (self.logs / f"worker-{wid}.err").open("ab")
        if self.kind == "py":
            args = [sys.executable, "-m", "tests.chaos.pyworker", self.address, self.queue, wid, str(self.log_file())]
            self.process = subprocess.Popen(args, stdout=err, stderr=err, cwd=Path(__file__).resolve().parents[2])
        else:
            out = self.log_file().open("ab")
            args = ["node", str(NODE_SCRIPT), self.address, self.queue, wid]
            self.process = subprocess.Popen(args, stdout=out, stderr=err)
            out.close()
        err.close()

    def kill9(self) -> str:
        assert self.process is not None
        wid = self.worker_id
        self.killed_ids.append(wid)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.start()
        return wid

    def check(self) -> None:
        if self.process is None or self.process.poll() is None:
            return
        err = (self.logs / f"worker-{self.worker_id}.err").read_text(errors="replace")[-1500:]
        self.unexpected_exits.append(f"{self.worker_id} exited with {self.process.returncode}:\n{err}")
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def proxy_url(proxy: ChaosProxy) -> str:
    return f"postgresql://{embedded.SUPERUSER}@127.0.0.1:{proxy.port}/{DATABASE}?sslmode=disable"


async def wait_for(predicate, within: float, interval: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    """Polls an async predicate until it is true; the seconds it took. TimeoutError past `within`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await predicate():
        if loop.time() - start > within:
            raise TimeoutError(f"not within {within}s")
        await asyncio.sleep(interval)
    return loop.time() - start
