"""TailJobs: its filter from the request (every bad field named), its events to the wire."""

from __future__ import annotations

from spool.v1 import queue_service_pb2 as qs
from spoold.api import convert, search
from spoold.api import validate as v
from spoold.config import Limits
from spoold.errors import InvalidArgument
from spoold.store.tail import JobEvent
from spoold.tail import TailFilter

_KINDS = {
    qs.JobEvent.KIND_ENQUEUED: "enqueued",
    qs.JobEvent.KIND_STARTED: "started",
    qs.JobEvent.KIND_SUCCEEDED: "succeeded",
    qs.JobEvent.KIND_FAILED: "failed",
    qs.JobEvent.KIND_DEAD: "dead",
    qs.JobEvent.KIND_CANCELLED: "cancelled",
    qs.JobEvent.KIND_PENDING: "pending",
    qs.JobEvent.KIND_WAITING: "waiting",
}
_KIND_PROTO = {name: kind for kind, name in _KINDS.items()}


def _kind(field: str, value: int) -> str:
    kind = _KINDS.get(value)  # type: ignore[call-overload]
    if kind is None:
        valid = ", ".join(qs.JobEvent.Kind.Name(k) for k in _KINDS)
        raise InvalidArgument(field, f"not an event kind: {value} (valid: {valid})")
    return str(kind)


def tail_filter(req: qs.TailJobsRequest, lim: Limits) -> TailFilter:
    if len(req.queues) > search.MAX_FILTER_QUEUES:
        raise InvalidArgument("queues", f"more than {search.MAX_FILTER_QUEUES} queues")
    for name in ("kinds", "states"):
        if len(getattr(req, name)) > search.MAX_FILTER_STATES:
            raise InvalidArgument(name, f"more than {search.MAX_FILTER_STATES} entries")
    error = v.text("error_contains", req.error_contains, search.MAX_ERROR_CONTAINS)
    return TailFilter(
        queues=frozenset(v.name(f"queues[{i}]", q, lim) for i, q in enumerate(req.queues)),
        kinds=frozenset(_kind(f"kinds[{i}]", k) for i, k in enumerate(req.kinds)),
        states=frozenset(search.state(f"states[{i}]", s) for i, s in enumerate(req.states)),
        error_contains=error.lower(),
    )


def tail_response(e: JobEvent, missed: int) -> qs.TailJobsResponse:
    event = qs.JobEvent(
        job_id=str(e.job_id),
        queue=e.queue,
        kind=_KIND_PROTO.get(e.kind, qs.JobEvent.KIND_UNSPECIFIED),
        state=convert.state_proto(e.state),
        attempt=e.attempt,
        max_attempts=e.max_attempts,
        worker_id=e.worker_id or "",
        error=convert.error_proto(e.error),
        at=convert.ts(e.at),
    )
    return qs.TailJobsResponse(event=event, missed=missed)
