"""Scopes, and the one table of which scope each RPC needs. Method names are the paths shared by
gRPC and Connect (`/spool.v1.QueueService/Enqueue`), so every door uses the same table."""

from __future__ import annotations

import enum


class Scope(enum.Enum):
    ENQUEUE = "enqueue"
    WORK = "work"
    READ = "read"
    ADMIN = "admin"


_QUEUE = "/spool.v1.QueueService/"
_ADMIN = "/spool.v1.AdminService/"
# The web console's own calls (console/): who is signed in, and the pushed queue stats.
CONSOLE_SESSION = "/spool.console/Session"
CONSOLE_QUEUES = "/spool.console/WatchQueues"
_PIPELINE = "/spool.v1.PipelineService/"
# The HTTP port's Prometheus endpoint (metrics/endpoint.py) goes through the same check.
METRICS = "/metrics"

REQUIRED: dict[str, Scope] = {
    **{_QUEUE + m: Scope.ENQUEUE for m in ("Enqueue", "EnqueueBatch")},
    **{
        _QUEUE + m: Scope.WORK
        for m in ("Lease", "Heartbeat", "HeartbeatBatch", "Ack", "AckBatch", "Nack", "WatchCancels")
    },
    **{_QUEUE + m: Scope.READ for m in ("GetJob", "ListJobs", "WatchJob", "TailJobs")},
    **{_QUEUE + m: Scope.ADMIN for m in ("Requeue", "CancelJob")},
    **{_ADMIN + m: Scope.READ for m in ("ListQueues", "GetQueue", "CountJobs", "GetBulkOperation")},
    _ADMIN + "ListBulkOperations": Scope.READ,
    _ADMIN + "GetQueueActivity": Scope.READ,
    **{_ADMIN + m: Scope.READ for m in ("ListSchedules", "GetSchedule")},
    CONSOLE_SESSION: Scope.READ,
    CONSOLE_QUEUES: Scope.READ,
    _PIPELINE + "EnqueuePipeline": Scope.ENQUEUE,
    **{_PIPELINE + m: Scope.READ for m in ("GetPipeline", "ListPipelines", "WatchPipeline")},
    _PIPELINE + "CancelPipeline": Scope.ADMIN,
    METRICS: Scope.READ,
}


def required(method: str) -> Scope:
    """The scope a method needs; a method missing from the table needs admin (new RPCs start closed)."""
    return REQUIRED.get(method, Scope.ADMIN)


def parse(names: list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scope names to scopes; ValueError naming the first unknown one."""
    found = set()
    for name in names:
        try:
            found.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {name[:40]!r}; the scopes are {known}") from None
    return frozenset(found)
