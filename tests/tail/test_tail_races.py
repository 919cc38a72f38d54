"""TailJobs under a racing join: a stream that joins while the poll deletes this server's tailer
row (its last stream having left) still has the row, so its events are recorded."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from spoold.app import App
from spoold.tail import TailFilter
from tests.conftest import wait_until


async def test_a_stream_that_joins_while_the_tailer_row_is_deleted_keeps_it(
    app: App, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = app.tail
    assert hub is not None
    first = hub.follow(TailFilter(), lambda _: True)
    reading = asyncio.ensure_future(anext(first))
    await wait_until(lambda: hub._after is not None)
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    await first.aclose()  # no stream left: the next poll deletes the row

    store = hub._store  # the real TailStore: its delete is held until the next stream has tried to join
    real_unregister, real_register = store.unregister, store.register
    held, release, registered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def unregister() -> None:
        held.set()
        await release.wait()
        await real_unregister()

    async def register() -> None:
        await real_register()
        registered.set()

    monkeypatch.setattr(store, "unregister", unregister)
    monkeypatch.setattr(store, "register", register)
    poll = asyncio.ensure_future(hub.poll_once(keep_alive=False, prune=False))
    await asyncio.wait_for(held.wait(), 10)
    second = hub.follow(TailFilter(), lambda _: True)
    joining = asyncio.ensure_future(anext(second))
    # The join either registered already, or waits for the poll to finish its delete.
    await wait_until(lambda: registered.is_set() or bool(hub._joining._waiters))
    release.set()
    await asyncio.wait_for(poll, 10)
    await asyncio.wait_for(registered.wait(), 10)

    rows = await db.fetchval("SELECT count(*) FROM spool.tailers WHERE server_id = $1", store.server_id)
    assert rows == 1, "the joined stream's tailer row was deleted under it"
    joining.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await joining
    await second.aclose()
