"""The HTTP door's one ASGI application: the REST routes, /healthz and /readyz, Connect for every
service, and room for what mounts later beside them (the web console, /metrics): pass them as
`extra` routes (a Route or a Mount); they sit behind the same front middleware and CORS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from spoold.api.errors import failure
from spoold.config import Settings
from spoold.errors import MethodNotAllowed, RouteNotFound, SpoolError
from spoold.http import connect, pipelines, rest
from spoold.http.answers import rest_response
from spoold.http.cookies import CookieAuth
from spoold.http.door import Door
from spoold.http.front import Front

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
# Headers a browser may send and read across origins (when CORS is on).
CORS_ALLOW = ["authorization", "content-type", "x-request-id", "connect-protocol-version", "connect-timeout-ms"]
CORS_EXPOSE = ["x-request-id", "location", "retry-after", "grpc-status", "grpc-message"]


def max_body(settings: Settings) -> int:
    """The largest request body: set, or the largest batch in base64 inside JSON, plus 64 KiB."""
    if settings.http_max_body_bytes:
        return settings.http_max_body_bytes
    largest = max(settings.limits.max_payload_bytes, settings.limits.max_batch_bytes)
    return largest * 4 // 3 + 64 * 1024


def cors_origins(settings: Settings) -> list[str]:
    return [o.strip() for o in settings.http_cors_origins.split(",") if o.strip()]


def _probe(check: Check) -> Callable[[Request], Awaitable[Response]]:
    async def probe(request: Request) -> Response:
        ok = await check()
        return JSONResponse({"status": "SERVING" if ok else "NOT_SERVING"}, 200 if ok else 503)

    return probe


async def _spool_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpoolError)
    return rest_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        err: SpoolError = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path[:200]}")
        return rest_response(err, headers=dict(exc.headers or {}))
    if exc.status_code == 404:
        return rest_response(RouteNotFound(f"no route {request.url.path[:200]!r} (docs/http.md lists them)"))
    return rest_response(failure(exc, f"HTTP {request.method}"))


async def _bug(request: Request, exc: Exception) -> Response:
    return rest_response(failure(exc, f"HTTP {request.method} {request.url.path[:200]}"))


def build(door: Door, settings: Settings, live: Check, ready: Check, extra: Sequence[BaseRoute] = ()) -> ASGIApp:
    """live: the process serves (/healthz); ready: it serves and its database answers (/readyz)."""
    limit = max_body(settings)
    routes: list[BaseRoute] = [
        Route("/healthz", _probe(live), methods=["GET"]),
        Route("/readyz", _probe(ready), methods=["GET"]),
        *rest.routes(door),
        *pipelines.routes(door),
        *(Mount(f"/{s.full_name}", app=connect.application(door, s, limit)) for s in door.services),
        *extra,
    ]
    handlers = {SpoolError: _spool_error, HTTPException: _http_error, Exception: _bug}
    app: ASGIApp = CookieAuth(Starlette(routes=routes, exception_handlers=handlers))
    prefixes = tuple(f"/{s.full_name}/" for s in door.services)
    read_timeout = settings.http_read_timeout.total_seconds()
    app = Front(app, max_body=limit, read_timeout=read_timeout, connect_prefixes=prefixes)
    origins = cors_origins(settings)
    if origins:  # outermost, so that a preflight is answered without a key
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=CORS_ALLOW,
            expose_headers=CORS_EXPOSE,
        )
    return app
