"""A TCP proxy between spoold and PostgreSQL, to make database faults happen for real.

- `hold_close`: when PostgreSQL closes a connection, its last bytes (a terminated backend's FATAL
  error) are passed on at once but the client's socket stays open until `release()`: the moment
  a pooled connection has been killed but its socket not closed yet.
- `refuse`: new connections are closed as soon as they open, as by a database that is down.
- `cut()`: closes every open connection now.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit


class _Link:
    """One client connection and its upstream."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_server: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        if from_server:
            self.proxy.server_closed.set()
        if self.proxy.hold_close:
            await self.proxy.released.wait()
        self.close()

    def close(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                w.close()


class FaultProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        assert parts.hostname and parts.port, "the proxy needs a TCP database URL"
        self._target_url = target_url
        self._target = (parts.hostname, parts.port)
        self.hold_close = False
        self.refuse = False
        self.released = asyncio.Event()
        self.released.set()
        self.server_closed = asyncio.Event()  # set when PostgreSQL closed a connection
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The target URL, through the proxy."""
        parts = urlsplit(self._target_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def hold(self) -> None:
        """From now on, connections PostgreSQL closes stay open on the client's side until release()."""
        self.hold_close = True
        self.released.clear()
        self.server_closed.clear()

    def release(self) -> None:
        """Closes the held connections and holds no more."""
        self.hold_close = False
        self.released.set()

    def cut(self) -> None:
        for link in tuple(self._links):
            link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        link = _Link(self, writer)
        self._links.add(link)
        try:
            up_reader, link.upstream = await asyncio.open_connection(*self._target)
            await asyncio.gather(link.pipe(reader, link.upstream, False), link.pipe(up_reader, writer, True))
        except OSError:
            pass
        finally:
            link.close()
            self._links.discard(link)


@contextlib.asynccontextmanager
async def fault_proxy(target_url: str) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(target_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
