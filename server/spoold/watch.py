"""WatchJob's engine (and WatchPipeline's, pipeline_watch.py): each watched job is re-read once
per change (woken by NOTIFY 'spool_job', backed by a poll of row versions) and the result fanned
out to one bounded mailbox per stream.

A stream that does not read keeps only its latest few snapshots (Mailbox), and a burst of
changes costs one re-read at a time per job, so neither memory nor database load grows with
the number of changes. Reads of one job are serialised, so every stream sees its states in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from spoold.errors import JobNotFound, PipelineNotFound, ShuttingDown, SpoolError, Unavailable
from spoold.loops.base import Loop
from spoold.model import Job
from spoold.notify import JOB, Listener, Mailbox, Subscription
from spoold.store.jobs import JobStore
from spoold.store.watches import WatchStore
from spoold.stream_slots import Streams as Streams  # re-exported: pipeline_watch.py

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(eq=False)
class _Watched(Generic[T]):
    """One job (or pipeline) watched by this process, whatever the number of streams on it."""

    job_id: int
    mailboxes: set[Mailbox[T]] = field(default_factory=set)
    # Streams that joined since the last read: owed the current state even if it did not change.
    fresh: set[Mailbox[T]] = field(default_factory=set)
    last: T | None = None
    # Row version seen by the last poll; None forces the next poll to re-read.
    version: str | None = None
    dirty: bool = False
    task: asyncio.Task[None] | None = None


class Hub(Generic[T]):
    """The engine; a subclass says what is read for a key, when a stream ends, and which rows of
    spool.watched stand for the key (the hooks below)."""

    def __init__(self, watches: WatchStore, listener: Listener, buffer: int, streams: Streams) -> None:
        self._counted = streams
        self._watches = watches
        self._listener = listener
        self._buffer = buffer
        self._entries: dict[int, _Watched[T]] = {}
        self._left: set[int] = set()
        self._closing = False
        self._subscription: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._subscription = contextlib.ExitStack()
        self._subscription.enter_context(self._listener.subscribe(JOB, Subscription(None, self._on_notify)))

    def close(self) -> None:
        """Ends every stream now with ShuttingDown (UNAVAILABLE), so clients reconnect elsewhere."""
        self._closing = True
        for entry in self._entries.values():
            for mailbox in entry.mailboxes:
                mailbox.close(ShuttingDown("server shutting down; watch again"), drain_first=False)

    async def stop(self) -> None:
        """After close() and once the streams are gone: forget this server's watches."""
        if self._subscription is not None:
            self._subscription.close()
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(SpoolError):
            await self._watches.unregister_all()

    @property
    def streams(self) -> int:
        """Streams that wait in this process, of every kind (SPOOL_MAX_WATCHERS bounds them: stream_slots.py)."""
        return self._counted.count

    @property
    def counted(self) -> Streams:
        return self._counted

    # The hooks.
    async def _read(self, key: int) -> T:
        raise NotImplementedError

    def _ends(self, item: T) -> bool:
        raise NotImplementedError

    async def _register(self, keys: Collection[int]) -> None:
        await self._watches.register(keys)

    async def _unregister(self, keys: Collection[int]) -> None:
        await self._watches.unregister(keys)

    async def _versions(self, keys: Collection[int]) -> dict[int, str]:
        return await self._watches.versions(keys)

    def _key_of(self, job_id: int) -> int | None:
        """The key a NOTIFY about this job wakes."""
        return job_id

    def mailboxes(self, job_id: int) -> tuple[Mailbox[T], ...]:
        """The mailboxes of the streams on a job (for tests and metrics)."""
        entry = self._entries.get(job_id)
        return tuple(entry.mailboxes) if entry else ()

    async def follow(self, job_id: int) -> AsyncIterator[T]:
        """The job (pipeline) now, then each change, ending after a terminal state."""
        if self._closing:
            raise ShuttingDown("server shutting down; watch again")
        with self._counted.held():
            mailbox: Mailbox[T] = Mailbox(self._buffer)
            # Closed with this stream, not when collected: the job is left (and unregistered) at once.
            async with contextlib.aclosing(self._follow(job_id, mailbox)) as items:
                async for item in items:
                    yield item

    async def _follow(self, job_id: int, mailbox: Mailbox[T]) -> AsyncGenerator[T, None]:
        entry = await self._join(job_id, mailbox)
        if self._closing:  # close() ran while we joined
            mailbox.close(ShuttingDown("server shutting down; watch again"), drain_first=False)
        try:
            while True:
                item = await mailbox.get()
                yield item
                if self._ends(item):
                    return
        finally:
            self._leave(entry, mailbox)

    async def _join(self, job_id: int, mailbox: Mailbox[T]) -> _Watched[T]:
        while True:
            entry = self._entries.get(job_id)
            if entry is not None:
                break
            entry = self._entries[job_id] = _Watched[T](job_id)
            try:
                # Registered before the first read, so a change committed after that read notifies.
                await self._register([job_id])
            except BaseException:
                if not entry.mailboxes and self._entries.get(job_id) is entry:
                    self._entries.pop(job_id, None)
                raise
            # Streams that joined this entry meanwhile may all have left, and it is gone: joining
            # it now would follow an entry that no notification and no poll reaches. Join afresh.
            if self._entries.get(job_id) is entry:
                break
        entry.mailboxes.add(mailbox)
        entry.fresh.add(mailbox)
        self._kick(entry)
        return entry

    def _leave(self, entry: _Watched[T], mailbox: Mailbox[T]) -> None:
        entry.mailboxes.discard(mailbox)
        entry.fresh.discard(mailbox)
        if entry.mailboxes or self._entries.get(entry.job_id) is not entry:
            return
        del self._entries[entry.job_id]
        if entry.task is not None:
            entry.task.cancel()
        # Unregistered in batches by the poller, which first checks nobody watches it again.
        self._left.add(entry.job_id)

    def _on_notify(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            key = self._key_of(int(payload))
            entry = self._entries.get(key) if key is not None else None
            if entry is not None:
                self._kick(entry)

    def _kick(self, entry: _Watched[T]) -> None:
        entry.dirty = True
        if entry.task is None or entry.task.done():
            entry.task = asyncio.create_task(self._refresh(entry), name=f"watch-{entry.job_id}")

    async def _refresh(self, entry: _Watched[T]) -> None:
        while entry.dirty and entry.mailboxes:
            entry.dirty = False
            try:
                job = await self._read(entry.job_id)
            except (JobNotFound, PipelineNotFound) as exc:
                self._end(entry, exc)
                return
            except Unavailable as exc:
                log.warning("watch %d: %s; the poll will retry", entry.job_id, exc)
                entry.version = None
                return
            except Exception:
                log.exception("watch %d: re-reading the job failed; the poll will retry", entry.job_id)
                entry.version = None
                return
            changed = job != entry.last
            entry.last = job
            for mailbox in entry.mailboxes:
                if changed or mailbox in entry.fresh:
                    mailbox.put(job)
            entry.fresh.clear()

    def _end(self, entry: _Watched[T], error: SpoolError) -> None:
        for mailbox in entry.mailboxes:
            mailbox.close(error, drain_first=True)

    async def poll_once(self) -> None:
        """Re-reads the watched jobs whose row changed since the last poll (a lost NOTIFY costs
        one interval), and unregisters jobs no longer watched."""
        left = {i for i in self._left if i not in self._entries}
        self._left.clear()
        if left:
            await self._unregister(left)
            # A stream that joined one of them while the delete ran may have registered just before
            # it, and lost its row: register those again, or only the keep-alive would restore them.
            back = [i for i in left if i in self._entries]
            if back:
                await self._register(back)
        entries = list(self._entries.values())
        if not entries:
            return
        versions = await self._versions([e.job_id for e in entries])
        for entry in entries:
            version = versions.get(entry.job_id)
            if version != entry.version or version is None:
                entry.version = version
                self._kick(entry)

    async def keep_alive(self) -> None:
        """Extends this server's rows in spool.watched (re-creating any lost) and drops dead servers'."""
        if self._entries:
            await self._register(list(self._entries))
        await self._watches.purge_expired()


class WatchHub(Hub[Job]):
    """WatchJob's hub: a key is a job id, its row in spool.watched is its own."""

    def __init__(
        self, jobs: JobStore, watches: WatchStore, listener: Listener, buffer: int, max_streams: int = 1000
    ) -> None:
        super().__init__(watches, listener, buffer, Streams(max_streams))
        self._jobs = jobs

    async def _read(self, key: int) -> Job:
        return await self._jobs.get(key)

    def _ends(self, item: Job) -> bool:
        return item.state.terminal


class WatchPoller(Loop):
    """Runs the hub's poll every interval and its keep-alive every `keep_alive_every` polls."""

    name = "watch-poller"

    def __init__(self, hub: Hub[Any], interval: float, keep_alive_every: int) -> None:
        super().__init__(interval)
        self._hub = hub
        self._keep_alive_every = keep_alive_every
        self._rounds = 0

    async def run_once(self) -> int:
        if self._rounds % self._keep_alive_every == 0:
            await self._hub.keep_alive()
        self._rounds += 1
        await self._hub.poll_once()
        return 0  # never a "full round": always wait the interval
