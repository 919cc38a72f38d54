"""ListJobs and Requeue-by-filter requests to validated domain values (JobFilter, JobPage)."""

from __future__ import annotations

import json
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.api import page_token
from spoold.api import validate as v
from spoold.api.convert import STATE_FROM_PROTO
from spoold.config import Limits
from spoold.errors import InvalidArgument
from spoold.model import JobFilter, JobPage, JobState, JobStatus, Order

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_REQUEUE = 1000
# A substring search costs the length of each error text times the pattern's (PostgreSQL's LIKE
# tries the pattern at every position), and a containment the payload's array elements times the
# filter's; jsonb does not look at a statement timeout while it compares one pair of documents (a
# 10,000-element containment against a 1 MiB payload ran 24 s past a 3 s timeout). So both are
# kept small enough that no row costs more than a fraction of a second (bench/search_flood.py).
MAX_ERROR_CONTAINS = 256
MAX_PAYLOAD_CONTAINS = 4 * 1024
MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS = 32
MAX_FILTER_QUEUES = 1000
# More entries than there are states or statuses can only be repeats.
MAX_FILTER_STATES = 16

STATUS_FROM_PROTO = {
    job_pb2.Job.STATUS_READY: JobStatus.READY,
    job_pb2.Job.STATUS_SCHEDULED: JobStatus.SCHEDULED,
    job_pb2.Job.STATUS_RETRYING: JobStatus.RETRYING,
    job_pb2.Job.STATUS_RUNNING: JobStatus.RUNNING,
    job_pb2.Job.STATUS_SUCCEEDED: JobStatus.SUCCEEDED,
    job_pb2.Job.STATUS_DEAD: JobStatus.DEAD,
    job_pb2.Job.STATUS_CANCELLED: JobStatus.CANCELLED,
    job_pb2.Job.STATUS_THROTTLED: JobStatus.THROTTLED,
    job_pb2.Job.STATUS_WAITING: JobStatus.WAITING,
}

_ORDERS = {
    qs.ListJobsRequest.ORDER_UNSPECIFIED: Order.NEWEST_FIRST,
    qs.ListJobsRequest.ORDER_NEWEST_FIRST: Order.NEWEST_FIRST,
    qs.ListJobsRequest.ORDER_OLDEST_FIRST: Order.OLDEST_FIRST,
}


def job_filter(p: job_pb2.JobFilter, lim: Limits, prefix: str = "filter.") -> JobFilter:
    created_after, created_before = _range(
        prefix + "created",
        p.created_after if p.HasField("created_after") else None,
        p.created_before if p.HasField("created_before") else None,
    )
    finished_after, finished_before = _range(
        prefix + "finished",
        p.finished_after if p.HasField("finished_after") else None,
        p.finished_before if p.HasField("finished_before") else None,
    )
    payload = v.text(f"{prefix}payload_contains", p.payload_contains, MAX_PAYLOAD_CONTAINS)
    contains = v.json_document(f"{prefix}payload_contains", payload, lim) if payload else None
    if contains is not None and _array_items(json.loads(contains)) > MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS:
        raise InvalidArgument(
            f"{prefix}payload_contains", f"more than {MAX_PAYLOAD_CONTAINS_ARRAY_ITEMS} array elements in all"
        )
    if len(p.queues) > MAX_FILTER_QUEUES:
        raise InvalidArgument(f"{prefix}queues", f"more than {MAX_FILTER_QUEUES} queues")
    for name in ("states", "statuses"):
        if len(getattr(p, name)) > MAX_FILTER_STATES:
            raise InvalidArgument(f"{prefix}{name}", f"more than {MAX_FILTER_STATES} entries")
    return JobFilter(
        queues=tuple(dict.fromkeys(v.name(f"{prefix}queues[{i}]", q, lim) for i, q in enumerate(p.queues))),
        states=tuple(dict.fromkeys(state(f"{prefix}states[{i}]", s) for i, s in enumerate(p.states))),
        statuses=tuple(dict.fromkeys(_status(f"{prefix}statuses[{i}]", s) for i, s in enumerate(p.statuses))),
        created_after=created_after,
        created_before=created_before,
        finished_after=finished_after,
        finished_before=finished_before,
        error_contains=v.text(f"{prefix}error_contains", p.error_contains, MAX_ERROR_CONTAINS) or None,
        payload_contains=contains,
        idempotency_key=v.text(f"{prefix}idempotency_key", p.idempotency_key, lim.max_key_length) or None,
        concurrency_key=v.text(f"{prefix}concurrency_key", p.concurrency_key, lim.max_key_length) or None,
        pipeline_id=v.positive_id(f"{prefix}pipeline_id", p.pipeline_id) if p.pipeline_id else None,
    )


def _array_items(doc: object) -> int:
    """How many elements the document's arrays hold, at every depth."""
    count, pending = 0, [doc]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            count += len(item)
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return count


def state(field: str, value: int) -> JobState:
    state: JobState | None = STATE_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if state is None:
        raise InvalidArgument(field, f"not a job state: {value}")
    return state


def _status(field: str, value: int) -> JobStatus:
    status: JobStatus | None = STATUS_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if status is None:
        valid = ", ".join(job_pb2.Job.Status.Name(p) for p in STATUS_FROM_PROTO)
        raise InvalidArgument(field, f"not a job status: {value} (valid: {valid})")
    return status


def _range(
    field: str, after_ts: Timestamp | None, before_ts: Timestamp | None
) -> tuple[datetime | None, datetime | None]:
    """A [after, before) range of `field`_after and `field`_before; an empty range is fine, a reversed one is not."""
    after = v.timestamp(f"{field}_after", after_ts) if after_ts is not None else None
    before = v.timestamp(f"{field}_before", before_ts) if before_ts is not None else None
    if after is not None and before is not None and before < after:
        raise InvalidArgument(f"{field}_before", f"is before {field.rsplit('.', 1)[-1]}_after")
    return after, before


def job_page(req: qs.ListJobsRequest, lim: Limits) -> JobPage:
    order = _ORDERS.get(req.order)
    if order is None:
        raise InvalidArgument("order", f"unknown order {req.order}")
    if not 0 <= req.page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    f = job_filter(req.filter, lim)
    return JobPage(
        filter=f,
        order=order,
        size=req.page_size or DEFAULT_PAGE_SIZE,
        after_id=page_token.decode(req.page_token, f, order) if req.page_token else None,
    )


def next_page_token(page: JobPage, last_id: int) -> str:
    return page_token.encode(last_id, page.filter, page.order)


def requeue_limit(value: int) -> int:
    if not 0 <= value <= MAX_REQUEUE:
        raise InvalidArgument("limit", f"must be between 1 and {MAX_REQUEUE} (0 means {MAX_REQUEUE})")
    return value or MAX_REQUEUE
