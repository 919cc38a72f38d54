"""The web console's sign-in cookie, accepted as the Authorization header is, for every route.

The console keeps its API key in an HttpOnly, SameSite=Strict cookie (spool_session). A request
that carries no Authorization header but that cookie is admitted with the cookie's key, through the
same gate as any other call. A state-changing request (anything but GET, HEAD and OPTIONS) signed
in that way must also carry the double-submit CSRF token: the header x-spool-csrf equal to the
spool_csrf cookie, which only a page of this origin can read. Without it: PERMISSION_DENIED,
reason CSRF_TOKEN_INVALID, before any service code runs."""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

from spoold.errors import CsrfTokenInvalid
from spoold.http import calls

SESSION = "spool_session"
CSRF = "spool_csrf"
CSRF_HEADER = "x-spool-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Signing in and out handle their own cookies (the key comes in the body).
EXEMPT = frozenset({"/console/session"})


def read(scope: Scope) -> tuple[dict[str, str], str | None]:
    """The request's cookies, and its CSRF header."""
    jar: dict[str, str] = {}
    token = None
    for key, value in scope["headers"]:
        if key == b"cookie":
            try:
                parsed: SimpleCookie = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                continue  # a cookie we cannot read is one we did not set
            jar.update({name: morsel.value for name, morsel in parsed.items()})
        elif key == CSRF_HEADER.encode():
            token = value.decode("latin-1")
    return jar, token


class CookieAuth:
    """Sits inside the front middleware (http/front.py), which answers its refusals in the form
    the path speaks (Connect or REST)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self._admit(scope)
        await self.app(scope, receive, send)

    @staticmethod
    def _admit(scope: Scope) -> None:
        call = calls.current()
        if call.authorization:
            return  # an explicit header wins; it is not ambient, so it needs no CSRF token
        jar, token = read(scope)
        key = jar.get(SESSION)
        if not key:
            return
        if scope["method"] not in SAFE_METHODS and scope["path"] not in EXEMPT:
            expected = jar.get(CSRF, "")
            if not expected or token is None or not hmac.compare_digest(expected.encode(), token.encode()):
                raise CsrfTokenInvalid(
                    f"this request is signed in by the console's cookie: send the {CSRF_HEADER} header "
                    f"with the value of the {CSRF} cookie"
                )
        call.authorization.append(f"Bearer {key}")
