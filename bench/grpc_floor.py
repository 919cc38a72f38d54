"""The cost of gRPC itself on this machine: a trivial unary call (the health service's Check)
between two grpc.aio processes on uvloop, as spoold and the load generator use them, with 8
concurrent callers. Prints the server's and the client's CPU per call. Two of these calls per job
(Lease and Ack) are the floor under the one-job-per-RPC figures of bench.throughput. Not run by
`make bench`:

    python -m bench.grpc_floor [--calls N] [--callers N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bench.cpu import proc_cpu
from bench.scratch import free_port, run


def _serve(port: int, ready: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    run(main())


async def _measure(port: int, server_pid: int, calls: int, callers: int) -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(callers)]
    stubs = [health_pb2_grpc.HealthStub(c) for c in channels]
    request = health_pb2.HealthCheckRequest()
    for stub in stubs:  # connected and warm before the clock starts
        await stub.Check(request)

    async def caller(stub: health_pb2_grpc.HealthStub) -> None:
        for _ in range(calls // callers):
            await stub.Check(request)

    server_before, client_before, started = proc_cpu(server_pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(s) for s in stubs))
    seconds = time.perf_counter() - started
    server_after = proc_cpu(server_pid)
    client = time.process_time() - client_before
    done = calls // callers * callers
    server = (
        "-" if server_before is None or server_after is None else f"{(server_after - server_before) / done * 1e3:.3f}"
    )
    print(f"  {done:,} calls from {callers} callers in {seconds:.1f} s = {done / seconds:,.0f} calls/s")
    print(f"  CPU per call: server {server} ms, client {client / done * 1e3:.3f} ms")
    for channel in channels:
        await channel.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--callers", type=int, default=8)
    args = p.parse_args()
    port = free_port()
    ready = multiprocessing.get_context("spawn").Event()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the gRPC server did not start")
        assert server.pid is not None
        print("== gRPC floor: health Check over loopback, grpc.aio on uvloop on both sides")
        run(_measure(port, server.pid, args.calls, args.callers))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
