"""Every repeated field of every request, maps and field masks included, at every depth, has a cap on
its count, checked here before anything looks at its items. Each door calls `check` on the decoded
request before the service code runs (api/decoding.py for gRPC, http/door.py for HTTP), so a request
with a million queue names or states is refused at the cost of a len(), not of a million validations.

A repeated field that CAPS does not name gets DEFAULT_CAP; tests/api/test_counts.py fails until a
new repeated request field is given its own cap here."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from spoold.api.search import MAX_FILTER_QUEUES, MAX_FILTER_STATES
from spoold.config import Limits
from spoold.errors import BatchTooLarge, BodyTooLarge, InvalidArgument, PayloadTooLarge, SpoolError
from spoold.pipelines import MAX_STEPS

DEFAULT_CAP = 100
# What a Lease may name: a worker serves a few queues; every one is claimed from on every poll.
MAX_LEASE_QUEUES = 100
# The paths of an update_mask name fields of one message; more than this many are repeats.
MAX_MASK_PATHS = 32
MAX_KEY_SCOPES = 8
MAX_KEY_QUEUES = 100

# Field full name -> its cap under the server's limits.
CAPS: dict[str, Callable[[Limits], int]] = {
    "spool.v1.EnqueueRequest.headers": lambda lim: lim.max_headers,
    "spool.v1.EnqueueBatchRequest.jobs": lambda lim: lim.max_batch,
    "spool.v1.LeaseRequest.queues": lambda lim: MAX_LEASE_QUEUES,
    "spool.v1.HeartbeatBatchRequest.heartbeats": lambda lim: lim.max_batch,
    "spool.v1.AckBatchRequest.acks": lambda lim: lim.max_batch,
    "spool.v1.RequeueRequest.job_ids": lambda lim: lim.max_batch,
    "spool.v1.JobFilter.queues": lambda lim: MAX_FILTER_QUEUES,
    "spool.v1.JobFilter.states": lambda lim: MAX_FILTER_STATES,
    "spool.v1.JobFilter.statuses": lambda lim: MAX_FILTER_STATES,
    "google.protobuf.FieldMask.paths": lambda lim: MAX_MASK_PATHS,
    "spool.v1.CreateApiKeyRequest.scopes": lambda lim: MAX_KEY_SCOPES,
    "spool.v1.CreateApiKeyRequest.queues": lambda lim: MAX_KEY_QUEUES,
    # Output only (the server computes them): a request may not carry more than a schedule shows.
    "spool.v1.Schedule.next_fire_times": lambda lim: DEFAULT_CAP,
    "spool.v1.EnqueuePipelineRequest.steps": lambda lim: MAX_STEPS,
    # A step's parents are steps of the same pipeline.
    "spool.v1.StepSpec.depends_on": lambda lim: MAX_STEPS,
    "spool.v1.AckRequest.follow_ups": lambda lim: MAX_STEPS,
    "spool.v1.FollowUp.depends_on": lambda lim: MAX_STEPS,
    "spool.v1.TailJobsRequest.queues": lambda lim: MAX_FILTER_QUEUES,
    "spool.v1.TailJobsRequest.kinds": lambda lim: MAX_FILTER_STATES,
    "spool.v1.TailJobsRequest.states": lambda lim: MAX_FILTER_STATES,
    "spool.v1.ListPipelinesRequest.states": lambda lim: MAX_FILTER_STATES,
}
# Batches past their cap keep the reason they have always had.
_BATCHES = frozenset(
    {
        "spool.v1.EnqueueBatchRequest.jobs",
        "spool.v1.HeartbeatBatchRequest.heartbeats",
        "spool.v1.AckBatchRequest.acks",
        "spool.v1.RequeueRequest.job_ids",
    }
)


# Decoding costs the event loop time per repeated or map entry before any cap can be looked at (an
# 8 MiB list of states took 380 ms; 19 MB of EnqueueBatch headers 1.9 s), so a request's size is
# bounded first: a method that carries no payload, result, checkpoint or error text by this, which
# its largest valid request does not reach; the others by what their limits allow, plus room.
SMALL_REQUEST_BYTES = 64 * 1024
_ROOM = 1024 * 1024
# Methods with one payload, result or checkpoint, and the field a request too large is named by.
_ONE = {
    "Enqueue": "payload",
    "Heartbeat": "checkpoint",
    "Nack": "error",
    "CreateSchedule": "schedule.template.payload",
    "UpdateSchedule": "schedule.template.payload",
}
# Batches, and the field a batch too large is named by (the reason they have always had).
_MANY = {"EnqueueBatch": "jobs", "HeartbeatBatch": "heartbeats", "EnqueuePipeline": "steps"}
# An Ack carries its follow-up jobs, payloads and all, with no bound of their own but the message's.
_ACKS = frozenset({"Ack", "AckBatch"})


def _method(path: str) -> str | None:
    service, _, method = path.rpartition("/")
    return method if service.startswith("/spool.") else None


def carries_payloads(path: str) -> bool:
    """Whether the Spool method at `path` carries payloads, results, checkpoints or error text."""
    method = _method(path)
    return method in _ONE or method in _MANY or method in _ACKS


def small_http_body(path: str) -> bool:
    """Whether an HTTP request to `path` takes no payload, so that its body has SMALL_REQUEST_BYTES
    at most: a Connect method that carries none, or a REST route but the enqueue one (which take
    a few options at most). The others have the HTTP door's limit, which counts base64 in JSON."""
    if path.startswith("/spool."):
        return not carries_payloads(path)
    return path.startswith("/v1/") and not path.endswith("/jobs")


def byte_budget(path: str, lim: Limits) -> int | None:
    """The most bytes a protobuf request to the Spool method at `path`
    (`/spool.v1.QueueService/ListJobs`) may have; None for a path that is not a Spool method."""
    method = _method(path)
    if method is None or method in _ACKS:
        return None
    if method in _ONE:
        return lim.max_payload_bytes + _ROOM
    if method in _MANY:
        return lim.max_batch_bytes + _ROOM
    return SMALL_REQUEST_BYTES


def too_large(path: str, size: int, lim: Limits) -> SpoolError:
    """The refusal of a request over its byte budget: as its batch or payload would have been."""
    method = _method(path) or ""
    if method in _MANY:
        field = _MANY[method]
        return BatchTooLarge(f"{field}: {size} bytes in all is over the limit of {lim.max_batch_bytes}", field=field)
    if method in _ONE:
        field = _ONE[method]
        message = f"{field}: the request's {size} bytes are over the limit of {lim.max_payload_bytes}"
        return PayloadTooLarge(message, field=field)
    return BodyTooLarge(byte_budget(path, lim) or size)


def check(request: Message, lim: Limits) -> None:
    """Refuses the request if any repeated field in it holds more entries than its cap, naming the
    field as validation does (`jobs`, `filter.states`, `jobs[3].headers`)."""
    _check(request, lim, "")


def _check(msg: Message, lim: Limits, prefix: str) -> None:
    # Only the fields that are, or lead to, repeated ones: about 0.3 us per batch item.
    for field, into in _paths(msg.DESCRIPTOR):
        if field.is_repeated:
            value = getattr(msg, field.name)
            _check_count(field, prefix + field.name, len(value), lim)
            if into:
                for i, item in enumerate(value):
                    _check(item, lim, f"{prefix}{field.name}[{i}].")
        elif msg.HasField(field.name):
            _check(getattr(msg, field.name), lim, f"{prefix}{field.name}.")


def check_json(tree: object, message: Message, lim: Limits) -> None:
    """check() for a request's JSON (proto3 JSON names or field names), before json_format turns it
    into `message`, which costs about a microsecond per byte: parsed by json.loads, a list of a
    million states is refused at the cost of a len()."""
    _check_json(tree, cast(Descriptor, message.DESCRIPTOR), lim, "")


def _check_json(tree: object, d: Descriptor, lim: Limits, prefix: str) -> None:
    if not isinstance(tree, dict):
        return
    by_name = _json_paths(d)
    for key, value in tree.items():
        if key not in by_name:
            continue
        field, into = by_name[key]
        path = prefix + field.name
        if field.is_repeated or _is_mask(field):
            _check_count(field, path, _json_count(value), lim)
            if into and isinstance(value, list) and field.message_type is not None:
                for i, item in enumerate(value):
                    _check_json(item, field.message_type, lim, f"{path}[{i}].")
        elif field.message_type is not None:
            _check_json(value, field.message_type, lim, path + ".")


def _check_count(field: FieldDescriptor, path: str, count: int, lim: Limits) -> None:
    name, path = ("google.protobuf.FieldMask.paths", path + ".paths") if _is_mask(field) else (field.full_name, path)
    cap = CAPS.get(name, _default)(lim)
    if count > cap:
        _refuse(name, path, count, cap)


def _json_count(value: object) -> int:
    """Entries of a JSON array or object; a field mask in JSON is one string of comma-separated paths."""
    if isinstance(value, str):
        return value.count(",") + 1
    return len(value) if isinstance(value, list | dict) else 0


@cache
def _json_paths(d: Descriptor) -> dict[str, tuple[FieldDescriptor, bool]]:
    """_paths(d) by JSON name and by field name, field masks included (JSON spells them as strings)."""
    found = {}
    for f in d.fields:
        into = f.message_type is not None and not _is_map(f) and _reaches_repeated(f.message_type, frozenset())
        if f.is_repeated or into or _is_mask(f):
            found[f.json_name] = found[f.name] = (f, into)
    return found


def _is_mask(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name == "google.protobuf.FieldMask"


def _default(lim: Limits) -> int:
    return DEFAULT_CAP


def _refuse(name: str, path: str, count: int, cap: int) -> None:
    if name in _BATCHES:
        raise BatchTooLarge(f"{path}: {count} items is over the limit of {cap}", field=path)
    raise InvalidArgument(path, f"{count} entries is over the limit of {cap}")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


@cache
def _paths(d: Descriptor) -> tuple[tuple[FieldDescriptor, bool], ...]:
    """The fields of `d` that are repeated or hold repeated ones, each with whether its items (or
    its value) hold repeated fields to look into."""
    found = []
    for f in d.fields:
        into = f.message_type is not None and not _is_map(f) and _reaches_repeated(f.message_type, frozenset())
        if f.is_repeated or into:
            found.append((f, into))
    return tuple(found)


def _reaches_repeated(d: Descriptor, seen: frozenset[str]) -> bool:
    """Whether a message of this type can hold a repeated field, at any depth."""
    if d.full_name in seen:
        return False
    for f in d.fields:
        if f.is_repeated:
            return True
        if f.message_type is not None and _reaches_repeated(f.message_type, seen | {d.full_name}):
            return True
    return False
