"""A Python Worker process for the chaos suite; its log is JSON lines that the suite reads back.

    python -m tests.chaos.pyworker ADDRESS QUEUE WORKER_ID LOG_FILE

Each handler run writes {"ev": "start"} and, before it returns, {"ev": "done"} with its lease token;
the result it returns names that lease, so the suite can tell whose result was stored. Every call
the Worker makes that ends other than OK writes {"ev": "code"} (a client interceptor sees them all,
retried or not), so a kill -9 loses at most the line being written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import timedelta
from typing import Any, TextIO

import grpc

import spool
from spool._config import CHANNEL_OPTIONS


class CodeLog(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Writes one line for each call that ends with a code other than OK."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def record(self, method: str, code: grpc.StatusCode) -> None:
        if code != grpc.StatusCode.OK:
            line = {"ev": "code", "rpc": method.rsplit("/", 1)[-1], "code": code.name, "t": time.time()}
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        self.record(details.method.decode() if isinstance(details.method, bytes) else details.method, await call.code())
        return call

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)


async def serve(address: str, queue: str, worker_id: str, out: TextIO) -> None:
    def emit(ev: str, job: spool.ActiveJob, **extra: Any) -> None:
        line = {"ev": ev, "job": job.id, "lease": job.lease_token, "attempt": job.attempt, "w": worker_id}
        out.write(json.dumps({**line, **extra, "t": time.time()}) + "\n")
        out.flush()

    async def handle(job: spool.ActiveJob) -> dict[str, Any]:
        emit("start", job)
        await asyncio.sleep(job.json().get("ms", 10) / 1000)
        emit("done", job)
        return {"lease": job.lease_token, "w": worker_id}

    client = spool.AsyncClient(address, timeout=10)
    # The Worker's client with an interceptor that records the codes of its calls.
    client._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=[CodeLog(out)])
    worker = spool.Worker(
        client,
        [queue],
        concurrency=8,
        lease_duration=timedelta(seconds=6),
        poll_wait=timedelta(seconds=2),
        worker_id=worker_id,
    )
    worker.handler(queue)(handle)
    out.write(json.dumps({"ev": "ready", "w": worker_id, "t": time.time()}) + "\n")
    out.flush()
    await worker.serve()


def main(argv: list[str]) -> None:
    address, queue, worker_id, log_file = argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with open(log_file, "a", buffering=1) as out:
        asyncio.run(serve(address, queue, worker_id, out))


if __name__ == "__main__":
    main(sys.argv[1:])
