"""What the HTTP door costs: single Enqueue calls (one job per call) against one spoold, over the
REST route (POST /v1/queues/{q}/jobs, JSON), over Connect (the generated Python client, JSON) and
over gRPC, in alternating order in the same run, each with the same number of concurrent callers
that each wait for an answer before the next call. The goal: REST and Connect at least 50 % of
gRPC's rate. Both HTTP doors are driven by the same HTTP client (pyqwest, which the generated
Connect client uses), so that the load generator's own cost does not pass for the server's; spoold's
CPU per call is printed beside each rate, the figure that shows what each door costs the server.

    python -m bench.http [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence

import pyqwest
from connectrpc.compat import google_protobuf_json_codec

from bench.cpu import proc_cpu
from bench.report import ratio, table, target
from bench.scratch import QUEUE, run, scratch_database, spoold
from spool.v1 import queue_service_connect, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs

CALLERS = 8
PAYLOAD = {"to": "ada@example.com", "template": "welcome"}
Call = Callable[[], Awaitable[object]]


async def rate(call: Call, seconds: float, pid: int | None = None) -> tuple[float, float | None]:
    """Calls per second of CALLERS concurrent loops of `call`, after a short warm-up, and the CPU
    seconds per call of process `pid` (spoold) over the same calls."""
    done = 0
    stop = 0.0

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    stop = time.perf_counter() + min(1.0, seconds / 4)
    await asyncio.gather(*(loop() for _ in range(CALLERS)))
    before = proc_cpu(pid) if pid else None
    done, started = 0, time.perf_counter()
    stop = started + seconds
    await asyncio.gather(*(loop() for _ in range(CALLERS)))
    after = proc_cpu(pid) if pid else None
    cpu = (after - before) / done if before is not None and after is not None and done else None
    return done / (time.perf_counter() - started), cpu


async def measure(seconds: float, rounds: int) -> tuple[dict[str, float], dict[str, float | None]]:
    """Each door's calls per second and spoold's CPU seconds per call, averaged over the rounds."""
    payload = json.dumps(PAYLOAD).encode()
    totals = {"gRPC": 0.0, "Connect": 0.0, "REST": 0.0}
    cpu: dict[str, float | None] = dict.fromkeys(totals, 0.0)
    async with scratch_database() as url, spoold(url, http=True) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        stub = queue_service_pb2_grpc.QueueServiceStub(server.channel)
        grpc_request = qs.EnqueueRequest(queue=QUEUE, payload=payload)
        rest = pyqwest.Client()
        rest_url = f"{base}/v1/queues/{QUEUE}/jobs"
        rest_body = json.dumps({"payload": PAYLOAD}).encode()
        async with queue_service_connect.QueueServiceClient(base, codec=google_protobuf_json_codec()) as connect:
            calls: dict[str, Call] = {
                "gRPC": lambda: stub.Enqueue(grpc_request),
                "Connect": lambda: connect.enqueue(grpc_request),
                "REST": lambda: _post(rest, rest_url, rest_body),
            }
            for n in range(rounds):
                order = list(calls) if n % 2 == 0 else list(calls)[::-1]
                for name in order:
                    calls_per_s, cpu_per_call = await rate(calls[name], seconds, server.process.pid)
                    totals[name] += calls_per_s / rounds
                    so_far = cpu[name]
                    cpu[name] = None if so_far is None or cpu_per_call is None else so_far + cpu_per_call / rounds
    return totals, cpu


async def _post(client: pyqwest.Client, url: str, body: bytes) -> None:
    answer = await client.post(url, {"content-type": "application/json"}, body)
    if answer.status != 202:
        raise RuntimeError(f"REST enqueue answered {answer.status}: {answer.content[:200]!r}")


async def main(quick: bool) -> None:
    rates, cpu = await measure(2.0 if quick else 10.0, 2 if quick else 4)
    grpc_rate = rates["gRPC"]
    rows = [
        (name, round(r), ratio(r, grpc_rate), "-" if cpu[name] is None else f"{1e6 * (cpu[name] or 0):.0f}")
        for name, r in rates.items()
    ]
    columns = ("door", "calls/s", "of gRPC", "spoold CPU us/call")
    table(f"http: single Enqueue calls, {CALLERS} concurrent callers", columns, rows)
    for door in ("REST", "Connect"):
        share = 100 * rates[door] / grpc_rate
        target(f"{door} single Enqueue vs gRPC", f"{share:.0f}%", ">= 50%", share >= 50)


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 s per door: about 20 s")
    run(main(p.parse_args(argv).quick))


if __name__ == "__main__":
    cli()
