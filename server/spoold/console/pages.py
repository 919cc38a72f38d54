"""The console's page and assets, served from the package (no CDN, nothing built), and its one
pushed stream: the queue stats (feed.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from spoold.auth.gate import Gate
from spoold.auth.scopes import CONSOLE_QUEUES
from spoold.console.feed import QueueFeed
from spoold.errors import SpoolError
from spoold.http import calls
from spoold.http.answers import rest_body
from spoold.http.rest import event_stream

STATIC = resources.files("spoold.console") / "static"
# Scripts, styles and connections of this origin only: a payload that slipped past escaping could
# still not run script or load anything.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await super().__call__(scope, receive, headed)


def routes(gate: Gate, feed: QueueFeed) -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), headers=HEADERS, media_type="text/html; charset=utf-8")

    async def queues(request: Request) -> Response:
        authorization = list(calls.current().authorization)
        await gate.admit(CONSOLE_QUEUES, authorization)  # refused: an ordinary error answer
        return event_stream(_snapshots(gate, feed, authorization))

    return [
        Route("/", index, methods=["GET"]),
        Route("/console/feed/queues", queues, methods=["GET"]),
        Mount("/console/static", app=_Assets(directory=str(STATIC))),
    ]


async def _snapshots(gate: Gate, feed: QueueFeed, authorization: list[str]) -> AsyncIterator[ServerSentEvent]:
    """Each snapshot as a `message` event. The key is checked again before each one (the check is
    cached), so a key revoked or expired while the page is open stops the stream with an `error`
    event that the page turns into the sign-in form."""
    who = await gate.admit(CONSOLE_QUEUES, authorization)
    async for snapshot in feed.follow(who):
        try:
            await gate.admit(CONSOLE_QUEUES, authorization)
        except SpoolError as err:
            yield ServerSentEvent(json.dumps(rest_body(err)), event="error")
            return
        yield ServerSentEvent(snapshot)
