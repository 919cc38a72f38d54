"""`python -m bench.decode_stall [--entries N] [--rounds R]`: how long a request with N tiny map
entries (default 900,000 EnqueueBatch headers in one job, about 9.8 MB, under the batch request's
byte budget) holds the event loop before it is refused: protobuf's full decode (what a request
cost before api/shallow.py) against the shallow count that now refuses it first. Median of R rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from bench.report import table
from spool.v1 import queue_service_pb2 as qs
from spoold.api import shallow
from spoold.config import Limits
from spoold.errors import SpoolError


def tiny_headers(entries: int) -> bytes:
    req = qs.EnqueueBatchRequest()
    job = req.jobs.add(queue="q", payload=b"{}")
    for n in range(entries):
        job.headers[f"{n:x}"] = ""
    return req.SerializeToString()


def refused_by_shallow(raw: bytes) -> None:
    try:
        shallow.check(qs.EnqueueBatchRequest, raw, Limits())
    except SpoolError:
        return
    raise AssertionError("the shallow count let the request through")


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_stall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=900_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    raw = tiny_headers(args.entries)
    rows = [
        ("full decode (FromString)", median_ms(lambda: qs.EnqueueBatchRequest.FromString(raw), args.rounds)),
        ("shallow count, refused", median_ms(lambda: refused_by_shallow(raw), args.rounds)),
    ]
    table(
        f"{args.entries:,} tiny headers, {len(raw):,} bytes: event-loop time, median of {args.rounds}",
        ("step", "ms"),
        rows,
    )


if __name__ == "__main__":
    main()
