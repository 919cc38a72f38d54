"""Typed exceptions, chosen by the google.rpc.ErrorInfo reason the server attaches to a failed call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class SpoolError(Exception):
    """A call failed. `reason` is the server's machine-readable ErrorInfo reason ("" when it sent none)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str]) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata)
        # Seconds after which the same call may succeed (the server's google.rpc.RetryInfo), or None.
        self.retry_delay: float | None = None


class InvalidArgument(SpoolError):
    """The request was refused as malformed; `field` names the offending field."""

    @property
    def field(self) -> str:
        return self.metadata.get("field", "")


class NotFound(SpoolError):
    """What the call names does not exist."""


class JobNotFound(NotFound):
    """No job has that id."""


class QueueNotFound(NotFound):
    """No queue has that name (a queue exists once it has a job or settings)."""


class LeaseLost(SpoolError):
    """The lease token is stale: the lease expired, or the job was re-leased, finished or cancelled."""


class WrongState(SpoolError):
    """The job's state does not allow the transition (e.g. requeueing a PENDING job)."""


class QueueNotEmpty(SpoolError):
    """DeleteQueue refused: the queue still has jobs (with force: PENDING or RUNNING ones)."""


class ResourceExhausted(SpoolError):
    """A payload or batch is over the server's limit."""


class CheckpointRateLimited(ResourceExhausted):
    """A checkpoint came sooner than the server's minimum interval for the job allows; send it again
    after `retry_delay` seconds (a Worker does so itself)."""


class Unavailable(SpoolError):
    """The server or its database cannot be reached; idempotent calls are retried before this is raised."""


_BY_REASON: dict[str, type[SpoolError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "JOB_NOT_FOUND": JobNotFound,
    "QUEUE_NOT_FOUND": QueueNotFound,
    "LEASE_LOST": LeaseLost,
    "WRONG_STATE": WrongState,
    "QUEUE_NOT_EMPTY": QueueNotEmpty,
    "PAYLOAD_TOO_LARGE": ResourceExhausted,
    "BATCH_TOO_LARGE": ResourceExhausted,
    "CHECKPOINT_RATE_LIMITED": CheckpointRateLimited,
    "DATABASE_UNAVAILABLE": Unavailable,
    "SHUTTING_DOWN": Unavailable,
    "TRANSIENT_CONFLICT": Unavailable,
}

# When the server (or a proxy, or the channel itself) sent no ErrorInfo, the code still says enough.
_BY_CODE: dict[grpc.StatusCode, type[SpoolError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


class _FailedCall(Protocol):
    """What a failed call offers, sync (grpc.Call) or async (grpc.aio.AioRpcError, which is no grpc.Call)."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> Any: ...


def _details(err: _FailedCall) -> tuple[error_details_pb2.ErrorInfo | None, float | None]:
    """The ErrorInfo and the RetryInfo delay (seconds) of a failed call, each None if absent."""
    try:
        # from_call only reads code(), details() and trailing_metadata(); its stub asks for grpc.Call.
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except ValueError:  # details that disagree with the status line: treat as absent
        return None, None
    info, delay = None, None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    return info, delay


def from_rpc_error(err: grpc.RpcError) -> SpoolError:
    """The typed exception for a failed call (sync or grpc.aio)."""
    if not isinstance(err, (grpc.Call, grpc.aio.AioRpcError)):
        return SpoolError(grpc.StatusCode.UNKNOWN, "", str(err), {})
    code = err.code()
    info, delay = _details(err)
    reason = info.reason if info is not None else ""
    metadata = dict(info.metadata) if info is not None else {}
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, SpoolError)
    found = cls(code, reason, err.details() or "", metadata)
    found.retry_delay = delay
    return found


def item_error(code: int, reason: str, message: str, retry_delay: float | None = None) -> SpoolError:
    """The typed exception for one refused item of a batch (AckBatch, HeartbeatBatch)."""
    status = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(status, SpoolError)
    found = cls(status, reason, message, {})
    found.retry_delay = retry_delay
    return found
