"""The HTTP door's front middleware, written once for Connect and REST alike: the request id
(taken from x-request-id when safe, echoed on the answer), the call context, the body limit (413)
and the body's read timeout (408), and a log line per request at DEBUG. Refusals here are answered
in the form the path speaks: Connect error JSON on the Connect paths, AIP-193 error JSON elsewhere."""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spoold.api import calls as api_calls
from spoold.api import counts
from spoold.errors import BodyTimeout, BodyTooLarge, InvalidArgument, SpoolError, UnsupportedMediaType
from spoold.http import calls
from spoold.http.answers import connect_error, connect_response, rest_response

log = logging.getLogger(__name__)


class _Body:
    """The app's receive(): the body counted against the limit and read against the deadline;
    after it, the client's disconnect noted on the call."""

    def __init__(self, receive: Receive, limit: int, timeout: float, connect: bool, call: calls.HttpCall) -> None:
        self._receive = receive
        self._limit = limit
        self._timeout = timeout
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._connect = connect
        self._call = call
        self._read = 0
        self._done = False

    def _refuse(self, err: SpoolError) -> Exception:
        return connect_error(err) if self._connect else err

    async def __call__(self) -> Message:
        if self._done:
            message = await self._receive()
        else:
            try:
                async with asyncio.timeout_at(self._deadline):
                    message = await self._receive()
            except TimeoutError:
                raise self._refuse(BodyTimeout(self._timeout)) from None
        if message["type"] == "http.disconnect":
            self._call.gone = True
        elif message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if self._read > self._limit:
                raise self._refuse(BodyTooLarge(self._limit))
            self._done = not message.get("more_body", False)
        return message


class Front:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        read_timeout: float,
        connect_prefixes: tuple[str, ...],
    ) -> None:
        self.app = app
        self._max_body = max_body
        self._read_timeout = read_timeout
        self._connect_prefixes = connect_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization: list[str] = []
        given = length = content_type = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif key == b"x-request-id":
                given = value.decode("latin-1")
            elif key == b"content-length":
                length = value
            elif key == b"content-type":
                content_type = value
        rid = api_calls.begin(given)
        client = scope.get("client")
        call = calls.HttpCall(f"{client[0]}:{client[1]}" if client else "unknown", authorization)
        call.headers = scope["headers"]
        calls.begin(call)
        status = 0

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        connect = scope["path"].startswith(self._connect_prefixes)
        try:
            refusal = self._refusal(scope, connect, length, content_type)
            if refusal is not None:
                raise refusal
            body = _Body(receive, self._limit(scope["path"]), self._read_timeout, connect, call)
            await self.app(scope, body, answer)
        except SpoolError as exc:
            await self._answer_refusal(exc, connect, status, scope, receive, answer)
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("HTTP %s %s -> %d, request %s", scope["method"], scope["path"][:200], status, rid)

    def _limit(self, path: str) -> int:
        """The door's body limit, or the small one of a request that takes no payload (api/counts.py)."""
        return min(self._max_body, counts.SMALL_REQUEST_BYTES) if counts.small_http_body(path) else self._max_body

    def _refusal(
        self, scope: Scope, connect: bool, length: bytes | None, content_type: bytes | None
    ) -> SpoolError | None:
        """What the request's headers alone refuse, before any of its body is read."""
        if (
            content_type is not None
            and content_type.lower().startswith(b"application/grpc")
            and not (content_type.lower().startswith(b"application/grpc-web"))
        ):
            return UnsupportedMediaType("content-type: gRPC is served on the gRPC port (--port), not this one")
        if length is not None:
            if not length.isdigit():
                return InvalidArgument("content-length", "must be a number of bytes")
            limit = self._limit(scope["path"])
            if int(length) > limit:
                return BodyTooLarge(limit)
        if connect:  # connectrpc reads header values as UTF-8
            for _, value in scope["headers"]:
                try:
                    value.decode()
                except UnicodeDecodeError:
                    return InvalidArgument("headers", "a header value is not UTF-8")
        return None

    async def _answer_refusal(
        self, exc: SpoolError, connect: bool, status: int, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if status:  # the answer had started: nothing more can be said on this connection
            raise exc
        response = connect_response(exc) if connect else rest_response(exc)
        await response(scope, receive, send)
