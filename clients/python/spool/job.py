"""What a handler receives (ActiveJob) and how its outcome becomes an Ack or a Nack."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Unpack

from spool._convert import EnqueueOptions, decode_json, duration, encode, job_request
from spool._logs import AttemptLog
from spool.pipelines import Step, results
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs

# The server refuses error texts over 64 KiB and types over 256 characters.
MAX_ERROR_BYTES = 64 * 1024
MAX_TYPE_CHARS = 256
_TRUNCATED = "...[truncated]\n"


class Retry(Exception):
    """Raise from a handler to fail this attempt and retry after `after` (default: the job's backoff)."""

    def __init__(self, message: str = "retry requested", *, after: timedelta | None = None) -> None:
        super().__init__(message)
        self.after = after


class Permanent(Exception):
    """Raise from a handler to fail the job for good: it goes to DEAD whatever attempts remain."""


# A checkpoint with durable steps is {"spool.steps": {name: result}, "spool.checkpoint": value}.
_STEPS = "spool.steps"
_USER = "spool.checkpoint"
_NOTHING: Any = object()


def _decoded(raw: bytes) -> Any:
    try:
        return decode_json(raw)
    except ValueError:
        return None


def _is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(_STEPS), dict)


class ActiveJob:
    """A leased job, as a handler sees it: the job, its checkpoints and whether to stop."""

    def __init__(self, leased: qs.LeasedJob) -> None:
        self.proto: job_pb2.Job = leased.job
        self.id: str = self.proto.id
        self.queue: str = self.proto.queue
        self.lease_token: str = leased.lease_token
        # Written by one thread and read by another (a handler thread sets the checkpoint, the
        # heartbeat loop sets the cancel flag): a single attribute write is atomic, so plain
        # attributes will do, and a job costs no lock to create.
        self.pending_checkpoint: bytes | None = None
        self._cancelled = False
        # Durable steps (job.step): results saved by earlier attempts, and how to save one now
        # (set by the Worker: a heartbeat that waits for its answer).
        previous = _decoded(self.proto.checkpoint)
        self._steps: dict[str, Any] = dict(previous[_STEPS]) if _is_envelope(previous) else {}
        # Carried into the checkpoints of this attempt until the handler sets its own.
        self._user_checkpoint: Any = previous.get(_USER, _NOTHING) if _is_envelope(previous) else previous
        if self._user_checkpoint is None or isinstance(self._user_checkpoint, bytes):
            self._user_checkpoint = _NOTHING
        self._save: Callable[[bytes], Awaitable[None]] | None = None
        # Jobs and steps to create with the Ack (follow_up, add_step).
        self.follow_ups: list[qs.FollowUp] = []
        # A pipeline step's parents, by step name (docs/pipelines.md).
        self.parent_outcomes: Mapping[str, job_pb2.StepOutcome] = leased.parents
        self._parents: dict[str, Any] | None = None
        # Lines for the attempt's log, sent with the next heartbeat or the outcome.
        self.logs = AttemptLog()

    @property
    def parents(self) -> Mapping[str, Any]:
        """A pipeline step's parents' results by step name (decoded JSON, else bytes); empty for a plain job."""
        if self._parents is None:
            self._parents = results(self.parent_outcomes)
        return self._parents

    def log(self, message: str, *args: object, level: str = "INFO") -> None:
        """Adds a line to this attempt's log (`message % args` when args are given), kept with the
        attempt on the server: `spool logs JOB_ID`. Python `logging` records emitted while the
        handler runs are added too."""
        self.logs.write(level, message % args if args else message)

    @property
    def attempt(self) -> int:
        """1 for the first attempt."""
        return self.proto.attempt

    @property
    def max_attempts(self) -> int:
        return self.proto.max_attempts

    @property
    def headers(self) -> Mapping[str, str]:
        return self.proto.headers

    @property
    def payload(self) -> bytes:
        return self.proto.payload

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return decode_json(self.proto.payload)

    def checkpoint(self, value: Any) -> None:
        """Saves progress with the next heartbeat (or the Nack); bytes are kept as they are, else JSON."""
        self._user_checkpoint = value
        self.pending_checkpoint = self._checkpoint_bytes()

    @property
    def previous_checkpoint(self) -> Any:
        """What the last attempt checkpointed: decoded JSON, or bytes if not JSON; None if nothing."""
        raw = self.proto.checkpoint
        if not raw:
            return None
        try:
            value = decode_json(raw)
        except ValueError:
            return raw
        return value.get(_USER, None) if _is_envelope(value) else value

    def follow_up(self, queue: str, payload: Any = None, **options: Unpack[EnqueueOptions]) -> None:
        """A job to create with this job's Ack, in its transaction: it exists if and only if the
        Ack is accepted (a stale ack's follow-ups are refused with it). Sent when the handler returns."""
        job = job_request(queue, {} if payload is None else payload, **options)
        self.follow_ups.append(qs.FollowUp(job=job))

    def add_step(self, new: Step) -> None:
        """A step to add to this step's pipeline with its Ack (as follow_up): `after` names steps of
        the pipeline (this one counts as succeeded) or steps added before it."""
        spec = new.to_proto()
        self.follow_ups.append(qs.FollowUp(job=spec.job, step_name=spec.name, depends_on=spec.depends_on))

    @property
    def steps(self) -> Mapping[str, Any]:
        """The results of the durable steps (job.step) completed so far, in this attempt or earlier ones."""
        return self._steps

    async def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Runs fn(*args, **kwargs) (awaited if it returns an awaitable) once across the job's
        attempts: its result (JSON-encodable) is saved in the job's checkpoint and acknowledged by
        the server before this returns, and a later attempt gets it back without running fn again.
        A step that raises is not saved: the next attempt runs it again. See docs/pipelines.md."""
        if name in self._steps:
            return self._steps[name]
        if self._save is None:
            raise RuntimeError("job.step needs a job leased by a spool.Worker")
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        self._steps[name] = decode_json(encode(value)[0])  # as a later attempt will see it
        saved = self._checkpoint_bytes()
        self.pending_checkpoint = None  # `saved` holds the handler's latest checkpoint too
        await self._save(saved)
        return self._steps[name]

    def _checkpoint_bytes(self) -> bytes:
        """The checkpoint to store: the handler's own, wrapped with the steps' results once there are any."""
        if not self._steps:
            return encode(self._user_checkpoint)[0]
        if isinstance(self._user_checkpoint, bytes | bytearray | memoryview):
            raise TypeError("a job with durable steps checkpoints JSON values, not bytes")
        envelope: dict[str, Any] = {_STEPS: self._steps}
        if self._user_checkpoint is not _NOTHING:
            envelope[_USER] = self._user_checkpoint
        return encode(envelope)[0]

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled or its lease lost; sync handlers should poll it and return."""
        return self._cancelled

    def mark_cancelled(self) -> None:
        self._cancelled = True


def _clip(text: str, limit: int = MAX_ERROR_BYTES, *, keep_end: bool = False) -> str:
    """At most `limit` UTF-8 bytes, without NUL (which the server refuses)."""
    text = text.replace("\x00", "\\x00")
    data = text.encode()
    if len(data) <= limit:
        return text
    room = limit - len(_TRUNCATED)
    if keep_end:  # a traceback's last lines name the failing frame and the exception
        return _TRUNCATED + data[-room:].decode(errors="ignore")
    return data[:room].decode(errors="ignore") + _TRUNCATED


def job_error(exc: BaseException) -> job_pb2.JobError:
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    details = "".join(traceback.format_exception(exc))
    return job_pb2.JobError(
        type=_clip(name, MAX_TYPE_CHARS), message=_clip(str(exc)), details=_clip(details, keep_end=True)
    )


def nack_request(job: ActiveJob, exc: BaseException, *, release: bool = False) -> qs.NackRequest:
    """The Nack for a failed attempt; Retry picks the delay, Permanent sends the job to DEAD.
    With release the job is handed back unfinished: ready at once, the attempt not counted."""
    req = qs.NackRequest(job_id=job.id, lease_token=job.lease_token, error=job_error(exc), release=release)
    if isinstance(exc, Permanent) and not release:
        req.retryable = False
    if isinstance(exc, Retry) and exc.after is not None:
        req.retry_after.CopyFrom(duration(exc.after))
    if job.pending_checkpoint is not None:
        req.checkpoint = job.pending_checkpoint
    req.logs = job.logs.take()
    return req


def ack_request(job: ActiveJob, result: Any) -> qs.AckRequest:
    """None stores no result; bytes are stored as they are; anything else as JSON."""
    req = qs.AckRequest(job_id=job.id, lease_token=job.lease_token, logs=job.logs.take(), follow_ups=job.follow_ups)
    if result is not None:
        req.result, req.result_content_type = encode(result)
    return req
