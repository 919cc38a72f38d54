"""The one table from domain error to status code (google.rpc.Code), and the one google.rpc.Status
built from it, with an ErrorInfo reason (and a BadRequest naming the field). Each door turns that
Status into its own form: a gRPC status here, Connect error JSON and an HTTP error body in http/."""

from __future__ import annotations

import enum
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from spoold import errors
from spoold.api import calls

log = logging.getLogger(__name__)

DOMAIN = "spool"


class Code(enum.Enum):
    """google.rpc.Code: (number, HTTP status as AIP-193 maps it). Names are gRPC's and Connect's."""

    CANCELLED = (1, 499)
    UNKNOWN = (2, 500)
    INVALID_ARGUMENT = (3, 400)
    DEADLINE_EXCEEDED = (4, 504)
    NOT_FOUND = (5, 404)
    ALREADY_EXISTS = (6, 409)
    PERMISSION_DENIED = (7, 403)
    RESOURCE_EXHAUSTED = (8, 429)
    FAILED_PRECONDITION = (9, 400)
    ABORTED = (10, 409)
    OUT_OF_RANGE = (11, 400)
    UNIMPLEMENTED = (12, 501)
    INTERNAL = (13, 500)
    UNAVAILABLE = (14, 503)
    DATA_LOSS = (15, 500)
    UNAUTHENTICATED = (16, 401)


CODES: dict[type[errors.SpoolError], Code] = {
    errors.InvalidArgument: Code.INVALID_ARGUMENT,
    errors.JobNotFound: Code.NOT_FOUND,
    errors.PipelineNotFound: Code.NOT_FOUND,
    errors.QueueNotFound: Code.NOT_FOUND,
    errors.ScheduleNotFound: Code.NOT_FOUND,
    errors.LeaseLost: Code.FAILED_PRECONDITION,
    errors.WrongState: Code.FAILED_PRECONDITION,
    errors.QueueNotEmpty: Code.FAILED_PRECONDITION,
    errors.PayloadTooLarge: Code.RESOURCE_EXHAUSTED,
    errors.BatchTooLarge: Code.RESOURCE_EXHAUSTED,
    errors.LimitReached: Code.RESOURCE_EXHAUSTED,
    errors.CheckpointRateLimited: Code.RESOURCE_EXHAUSTED,
    errors.Unavailable: Code.UNAVAILABLE,
    errors.SearchTimeout: Code.DEADLINE_EXCEEDED,
    errors.SearchesBusy: Code.RESOURCE_EXHAUSTED,
    errors.Unauthenticated: Code.UNAUTHENTICATED,
    errors.PermissionDenied: Code.PERMISSION_DENIED,
    errors.KeyNotFound: Code.NOT_FOUND,
    errors.BulkOperationNotFound: Code.NOT_FOUND,
    errors.Internal: Code.INTERNAL,
    errors.BodyTooLarge: Code.RESOURCE_EXHAUSTED,
    errors.BodyTimeout: Code.DEADLINE_EXCEEDED,
    errors.UnsupportedMediaType: Code.INVALID_ARGUMENT,
    errors.RouteNotFound: Code.NOT_FOUND,
    errors.MethodNotAllowed: Code.UNIMPLEMENTED,
}

# Where an HTTP answer says more than its code's status: a job in the wrong state for the
# transition is a conflict with the resource's state (409), a body or payload too large is 413.
HTTP_STATUS: dict[type[errors.SpoolError], int] = {
    errors.LeaseLost: 409,
    errors.WrongState: 409,
    errors.QueueNotEmpty: 409,
    errors.PayloadTooLarge: 413,
    errors.BatchTooLarge: 413,
    errors.BodyTooLarge: 413,
    errors.BodyTimeout: 408,
    errors.UnsupportedMediaType: 415,
    errors.MethodNotAllowed: 405,
}


def _lookup(table: dict[type[errors.SpoolError], Any], err: errors.SpoolError) -> Any:
    for cls in type(err).__mro__:
        if cls in table:
            return table[cls]
    return None


def code_of(err: errors.SpoolError) -> Code:
    return _lookup(CODES, err) or Code.INTERNAL


def http_status(err: errors.SpoolError) -> int:
    found: int | None = _lookup(HTTP_STATUS, err)
    return found if found is not None else code_of(err).value[1]


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def retry_delay(err: errors.SpoolError) -> duration_pb2.Duration | None:
    """When the same call may succeed, in whole milliseconds rounded up (never early); None if not said."""
    if err.retry_delay is None:
        return None
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, math.ceil(err.retry_delay * 1000)))
    return delay


def status_of(err: errors.SpoolError) -> status_pb2.Status:
    """The google.rpc.Status every door answers `err` with."""
    details: list[Message] = [error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)]
    if isinstance(err, errors.InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if (delay := retry_delay(err)) is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return status_pb2.Status(code=code_of(err).value[0], message=err.message, details=[_packed(d) for d in details])


def to_status(err: errors.SpoolError) -> grpc.Status:
    """The gRPC door's form of the error."""
    return rpc_status.to_status(status_of(err))


def failure(exc: BaseException, name: str) -> errors.SpoolError:
    """What a call that raised `exc` answers: a domain error as it is; anything else is a bug or an
    unforeseen failure, logged here with the request id, and answered INTERNAL naming that id."""
    if isinstance(exc, errors.SpoolError):
        return exc
    rid = calls.request_id()
    log.error("request %s: %s failed", rid, name, exc_info=exc)
    return errors.Internal(rid)


async def abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    await context.abort(status.code, status.details, status.trailing_metadata)


R = TypeVar("R")
Req = TypeVar("Req")
Ctx = TypeVar("Ctx", bound=calls.CallContext)
Unary = Callable[[Any, Req, Ctx], Awaitable[R]]
Stream = Callable[[Any, Req, Ctx], AsyncIterator[R]]


def unary(method: Unary[Req, Ctx, R]) -> Unary[Req, Ctx, R]:
    """A service method raises domain errors only: anything else becomes a logged INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Ctx) -> R:
        try:
            return await method(self, request, context)
        except errors.SpoolError:
            raise
        except Exception as exc:
            raise failure(exc, method.__name__) from exc

    return wrapper


def stream(method: Stream[Req, Ctx, R]) -> Stream[Req, Ctx, R]:
    """unary() for server-streaming methods."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Ctx) -> AsyncIterator[R]:
        try:
            async for item in method(self, request, context):
                yield item
        except errors.SpoolError:
            raise
        except Exception as exc:
            raise failure(exc, method.__name__) from exc

    return wrapper
