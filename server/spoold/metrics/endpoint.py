"""GET /metrics on the HTTP port, in Prometheus' text format.

Who may scrape: by default, whoever may call a `read` method of every queue, checked by the same
Gate as every RPC (so on loopback under --auth auto, and with --auth off, anyone; elsewhere a key
with the read or admin scope whose queue patterns cover every queue, since the metrics name them
all). --metrics-public opens it to anyone who reaches the port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spoold.auth.gate import Gate
from spoold.auth.scopes import METRICS
from spoold.errors import PermissionDenied, SpoolError
from spoold.http.answers import rest_response

Render = Callable[[], Awaitable[tuple[bytes, str]]]


def route(render: Render, gate: Gate, public: bool) -> Route:
    async def metrics(request: Request) -> Response:
        if not public:
            try:
                principal = await gate.admit(METRICS, request.headers.getlist("authorization"))
                if not principal.every_queue:
                    raise PermissionDenied(
                        f"API key {principal.key_id} may read only some queues; /metrics shows every queue"
                    )
            except SpoolError as err:
                return rest_response(err)
        body, content_type = await render()
        return Response(body, media_type=content_type)

    return Route(METRICS, metrics, methods=["GET"])
