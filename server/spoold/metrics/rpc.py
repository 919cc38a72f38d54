"""RPCs by door, service, method and status code, with their latency: one histogram that the gRPC
interceptor (api/metering.py) and the HTTP door (http/door.py) both feed through `observe`, so no
method has code of its own here. A method's path is split once and remembered."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

# Seconds: a claim or an ack takes about a millisecond; a Lease long poll waits up to a minute.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RpcMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            "spool_rpc_duration_seconds",
            "RPCs handled by this process, by door (grpc, http), service, method and status code; "
            "for streams, how long the stream lasted",
            ["door", "service", "method", "code"],
            buckets=BUCKETS,
            registry=registry,
        )
        self._names: dict[str, tuple[str, str]] = {}

    def observe(self, door: str, path: str, code: str, seconds: float) -> None:
        """path: `/spool.v1.QueueService/Enqueue`; code: a gRPC status name (OK, NOT_FOUND, ...)."""
        names = self._names.get(path)
        if names is None:
            service, _, method = path.lstrip("/").partition("/")
            names = self._names[path] = (service, method)
        self._histogram.labels(door, names[0], names[1], code).observe(seconds)
