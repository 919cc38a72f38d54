"""The HTTP port: hypercorn serving the door's ASGI app in spoold's own event loop, on a socket
spoold binds itself (so that a port in use is one line naming --http-port, and never shared), with
the gRPC port's TLS files. hypercorn closes a connection whose request headers take longer than
--http-header-timeout (its keep-alive timeout covers the wait for a request's headers)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp

from spoold import listening
from spoold.config import Settings
from spoold.errors import StartupError

log = logging.getLogger(__name__)
FLAG = "--http-port/SPOOL_HTTP_PORT"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (no SO_REUSEPORT: never shared with another process)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise StartupError(f"--host/SPOOL_HOST: cannot resolve {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise listening.bind_error(host, port, exc, FLAG) from exc
    return sock


def config(settings: Settings, sock: socket.socket) -> Config:
    c = Config()
    c.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here
    c.keep_alive_timeout = settings.http_header_timeout.total_seconds()
    c.graceful_timeout = settings.shutdown_grace.total_seconds()
    c.accesslog = None
    quiet = logging.getLogger("spoold.http.hypercorn")
    quiet.setLevel(logging.WARNING)  # not its "Running on ..." line: spoold says where it serves
    c.errorlog = quiet
    c.include_server_header = False
    if settings.tls_cert is not None and settings.tls_key is not None:
        c.certfile, c.keyfile = str(settings.tls_cert), str(settings.tls_key)
        if settings.tls_client_ca is not None:
            c.ca_certs = str(settings.tls_client_ca)
            c.verify_mode = ssl.CERT_REQUIRED
    return c


class HttpServer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._socket: socket.socket | None = bind(settings.host, settings.http_port)
        self.port: int = self._socket.getsockname()[1]
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, app: ASGIApp) -> None:
        assert self._socket is not None
        c = config(self._settings, self._socket)
        self._socket = None
        self._task = asyncio.create_task(serve(app, c, shutdown_trigger=self._stopping.wait), name="http")  # type: ignore[arg-type]

    def close(self) -> None:
        """Gives the port back when the server never started."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def stop(self) -> None:
        """Stops taking connections and lets requests in flight finish within the shutdown grace."""
        self.close()
        if self._task is not None:
            self._stopping.set()
            await self._task
