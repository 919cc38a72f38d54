"""Signing in to the web console: the API key is checked by the gate, as on every call, then kept
in an HttpOnly, SameSite=Strict cookie (so no script can read it) beside a CSRF token that the
page sends back in a header on every POST (http/cookies.py checks it)."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from spoold.auth.gate import Gate, Mode
from spoold.auth.principal import Principal
from spoold.auth.scopes import CONSOLE_SESSION, Scope
from spoold.config import Settings
from spoold.errors import InvalidArgument
from spoold.http import calls
from spoold.http.cookies import CSRF, SESSION
from spoold.http.rest import json_object

PATH = "/console/session"


def describe(gate: Gate, who: Principal) -> dict[str, Any]:
    """What the page needs to know of its caller: which buttons work."""
    return {
        "mode": gate.mode.value,
        "signedIn": who.key_id is not None,
        "keyId": who.key_id,
        "scopes": sorted(s.value for s in who.scopes),
        "canAct": who.has(Scope.ADMIN),
        "canEnqueue": who.has(Scope.ENQUEUE),
    }


def routes(gate: Gate, settings: Settings) -> list[BaseRoute]:
    secure = settings.tls_cert is not None

    async def whoami(request: Request) -> Response:
        who = await gate.admit(CONSOLE_SESSION, calls.current().authorization)
        return JSONResponse(describe(gate, who), headers={"Cache-Control": "no-store"})

    async def sign_in(request: Request) -> Response:
        body = await json_object(request)
        key = body.get("key")
        if not isinstance(key, str) or not key.strip():
            raise InvalidArgument("key", "an API key (spool_...) is required")
        who = await gate.admit(CONSOLE_SESSION, [f"Bearer {key.strip()}"])
        response = JSONResponse(describe(gate, who), headers={"Cache-Control": "no-store"})
        if gate.mode is not Mode.OFF:  # the key was verified: it is a cookie-safe spool_<id>_<secret>
            response.set_cookie(SESSION, key.strip(), httponly=True, samesite="strict", secure=secure, path="/")
            response.set_cookie(CSRF, secrets.token_urlsafe(32), samesite="strict", secure=secure, path="/")
        return response

    async def sign_out(request: Request) -> Response:
        response = JSONResponse({"signedIn": False}, headers={"Cache-Control": "no-store"})
        for name in (SESSION, CSRF):
            response.delete_cookie(name, path="/", samesite="strict", secure=secure)
        return response

    return [
        Route(PATH, whoami, methods=["GET"]),
        Route(PATH, sign_in, methods=["POST"]),
        Route(PATH, sign_out, methods=["DELETE"]),
    ]
