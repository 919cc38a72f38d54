"""The one table from domain error to gRPC status code, with a google.rpc.ErrorInfo reason."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from spoold import errors

log = logging.getLogger(__name__)

DOMAIN = "spool"

CODES: dict[type[errors.SpoolError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.JobNotFound: grpc.StatusCode.NOT_FOUND,
    errors.QueueNotFound: grpc.StatusCode.NOT_FOUND,
    errors.LeaseLost: grpc.StatusCode.FAILED_PRECONDITION,
    errors.WrongState: grpc.StatusCode.FAILED_PRECONDITION,
    errors.QueueNotEmpty: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.BatchTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.KeyNotFound: grpc.StatusCode.NOT_FOUND,
}


def code_of(err: errors.SpoolError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.INTERNAL


def to_status(err: errors.SpoolError) -> grpc.Status:
    code = code_of(err)
    details = [error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)]
    if isinstance(err, errors.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.message)]
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=err.message, details=packed))


def internal_status(request_id: str) -> grpc.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN, metadata={"request_id": request_id}))
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error (request {request_id})", details=[info])
    )


async def abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    await context.abort(status.code, status.details, status.trailing_metadata)


def request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str):
            return value[:100]
    return uuid.uuid4().hex


R = TypeVar("R")
Req = TypeVar("Req")
Unary = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]
Stream = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[R]]


async def _answer_failure(context: grpc.aio.ServicerContext[Any, Any], exc: Exception, name: str) -> None:
    """Aborts the call with the status for `exc`: a domain error's own, anything else a logged INTERNAL.
    Called from an except block, so the log carries the traceback."""
    if isinstance(exc, (grpc.aio.AbortError, grpc.aio.UsageError)):
        raise exc
    if isinstance(exc, errors.SpoolError):
        await abort(context, to_status(exc))
    rid = request_id(context)
    log.exception("request %s: %s failed", rid, name)
    await abort(context, internal_status(rid))


def unary(method: Unary[Req, R]) -> Unary[Req, R]:
    """Turns domain errors into statuses and anything else into a logged INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await _answer_failure(context, exc, method.__name__)
        raise AssertionError("unreachable: abort raises")

    return wrapper


def stream(method: Stream[Req, R]) -> Stream[Req, R]:
    """unary() for server-streaming methods."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[R]:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as exc:
            await _answer_failure(context, exc, method.__name__)

    return wrapper
