"""A TCP proxy between spoold and PostgreSQL for the chaos suite: transparent until told otherwise.

- `latency`: seconds added to every chunk, in both directions (order is kept: each direction is
  one pipe that waits before it writes).
- `cut_in_flight()`: closes the connections that are in the middle of a query (the client sent
  bytes that PostgreSQL has not answered yet), so spoold meets a connection that dies mid-query.
- `cut_all()`: closes every open connection.

Upstream is PostgreSQL's unix socket (the embedded server listens on no TCP port) or a TCP address;
a server that is down makes each new connection close at once, as a refused one would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class _Link:
    """One client connection and its upstream; `pending` while a query waits for its answer."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.sent_at = 0.0
        self.answered_at = 0.0

    @property
    def pending(self) -> bool:
        return self.sent_at > self.answered_at

    def close(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                with contextlib.suppress(RuntimeError):  # the loop may be closing
                    w.close()


class ChaosProxy:
    def __init__(self, unix_path: str | None = None, tcp: tuple[str, int] | None = None) -> None:
        assert (unix_path is None) != (tcp is None), "one upstream: a unix socket or a TCP address"
        self.unix_path = unix_path
        self.tcp = tcp
        self.latency = 0.0
        self.port = 0
        self.cuts = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def cut_all(self) -> int:
        links = tuple(self._links)
        for link in links:
            link.close()
        self.cuts += len(links)
        return len(links)

    def cut_in_flight(self) -> int:
        """Closes the connections waiting for PostgreSQL's answer to a query; how many."""
        links = [link for link in self._links if link.pending]
        for link in links:
            link.close()
        self.cuts += len(links)
        return len(links)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path)
        assert self.tcp is not None
        return await asyncio.open_connection(*self.tcp)

    async def _pipe(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            while data := await reader.read(65536):
                if up:
                    link.sent_at = time.monotonic()
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
                if not up:
                    link.answered_at = time.monotonic()
        link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self._links.add(link)
        try:
            up_reader, link.upstream = await self._open_upstream()
            await asyncio.gather(
                self._pipe(link, reader, link.upstream, True), self._pipe(link, up_reader, writer, False)
            )
        except OSError:
            pass
        finally:
            link.close()
            self._links.discard(link)
