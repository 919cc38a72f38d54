"""Connect for every method of every service, through the code protoc-gen-connectrpc generated
(spool/v1/*_connect.py, over the same protobuf classes as gRPC). The generated ASGI application
calls snake_case methods; an adapter made from the service's descriptor answers each one with the
door, so a method added to the proto is served here once `make gen` has run.

JSON requests with fields the message does not have are refused (INVALID_ARGUMENT), as on the REST
routes: a misspelt field is a mistake to report, not to ignore (docs/http.md)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from starlette.types import ASGIApp

from spoold.api import counts, shallow
from spoold.config import Limits
from spoold.errors import InvalidArgument, SpoolError
from spoold.http import calls
from spoold.http.answers import connect_error, retry_after
from spoold.http.door import Door

M = TypeVar("M", bound=Message)


class _Refusing(Codec[Message, M]):
    """A generated codec whose decoding failures answer INVALID_ARGUMENT with an ErrorInfo, as
    every other refusal does (connectrpc's own answer has no details). A large request's repeated
    fields are counted before it is decoded (api/shallow.py), as at the gRPC door."""

    def __init__(self, inner: Codec[Message, M], limits: Limits) -> None:
        self._inner = inner
        self._limits = limits

    def name(self) -> str:
        return self._inner.name()

    def encode(self, message: Message) -> bytes:
        return self._inner.encode(message)

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        if len(data) > counts.SMALL_REQUEST_BYTES:
            try:
                shallow.check(message_class, bytes(data), self._limits)
            except SpoolError as refused:
                raise connect_error(refused) from refused
        try:
            return self._inner.decode(data, message_class)
        except Exception as exc:
            err = InvalidArgument("request", f"cannot be decoded: {str(exc)[:300] or type(exc).__name__}")
            raise connect_error(err) from exc


class _CountedJson(Codec[Message, M]):
    """The JSON codec, with each repeated field's count held to its cap (api/counts.py) between
    json.loads and json_format, which is where a large JSON request would cost the event loop."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message).encode()

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        try:
            tree = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise connect_error(InvalidArgument("request", f"cannot be decoded: {str(exc)[:300]}")) from exc
        message = message_class()
        try:
            counts.check_json(tree, message, self._limits)
        except SpoolError as refused:
            raise connect_error(refused) from refused
        try:
            return json_format.ParseDict(tree, message, ignore_unknown_fields=False)
        except Exception as exc:
            bad = InvalidArgument("request", f"cannot be decoded: {str(exc)[:300] or type(exc).__name__}")
            raise connect_error(bad) from exc


def codecs(limits: Limits) -> list[Codec[Message, Any]]:
    return [_Refusing(google_protobuf_binary_codec(), limits), _CountedJson(limits)]


def snake(name: str) -> str:
    """The generated method name for an RPC name (EnqueueBatch -> enqueue_batch)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _refused(err: SpoolError, ctx: RequestContext[Any, Any]) -> ConnectError:
    """The error connectrpc answers; its Retry-After goes in the context's response headers, which
    connectrpc writes on an error answer too (on a stream, only if nothing was sent yet)."""
    for name, value in retry_after(err).items():
        ctx.response_headers[name] = value
    return connect_error(err)


def _with_call(ctx: RequestContext[Any, Any]) -> calls.HttpCall:
    call = calls.current()
    remaining = ctx.timeout_ms
    call.set_timeout(None if remaining is None else remaining / 1000)
    return call


class _Adapter:
    """The object the generated application calls: one attribute per method of the service."""

    def __init__(self, door: Door, service: ServiceDescriptor) -> None:
        for method in service.methods:
            setattr(self, snake(method.name), _endpoint(door, method))


def _endpoint(door: Door, method: MethodDescriptor) -> Callable[..., Any]:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.server_streaming:

        async def streaming(request: Message, ctx: RequestContext[Any, Any]) -> AsyncIterator[Message]:
            try:
                async for answer in door.stream(path, request, _with_call(ctx)):
                    yield answer
            except SpoolError as err:
                raise _refused(err, ctx) from err

        return streaming

    async def unary(request: Message, ctx: RequestContext[Any, Any]) -> Message:
        try:
            answer: Awaitable[Message] = door.unary(path, request, _with_call(ctx))
            return await answer
        except SpoolError as err:
            raise _refused(err, ctx) from err

    return unary


def application(door: Door, service: ServiceDescriptor, read_max_bytes: int) -> ASGIApp:
    """The generated Connect application of one service, answered by the door."""
    module = importlib.import_module(service.file.name.removesuffix(".proto").replace("/", ".") + "_connect")
    cls = getattr(module, f"{service.name}ASGIApplication")
    app: ASGIApp = cls(_Adapter(door, service), codecs=codecs(door.limits), read_max_bytes=read_max_bytes)
    return app


__all__ = ["ConnectError", "application", "codecs", "snake"]
