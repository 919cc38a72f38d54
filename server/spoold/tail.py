"""TailJobs' engine: job events from every replica (spool.job_events, written by the jobs triggers
while any server tails), read once per server and fanned out to one bounded mailbox per stream.

A server reads only while it has streams: the first one registers it in spool.tailers (so the
triggers start writing events) and starts it at the newest event; the keep-alive extends the row;
once the last stream is gone the poller deletes it. Reads are woken by NOTIFY 'spool_tail' and
backed by a poll. A transaction that commits after a later one leaves a gap in the numbering for a
moment: the missing numbers are asked for again for GAP_WAIT seconds. A stream that does not read
keeps its latest `buffer` events and counts the ones it lost (Mailbox), so memory stays flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

from spoold.errors import ShuttingDown, SpoolError
from spoold.loops.base import Loop
from spoold.model import JobState
from spoold.notify import TAIL, Listener, Mailbox, Subscription
from spoold.store.tail import JobEvent, TailStore
from spoold.stream_slots import Streams

log = logging.getLogger(__name__)

READ_BATCH = 1000
GAP_WAIT = 10.0
# A jump in the numbering wider than this is not waited for (identity values skipped in bulk).
MAX_GAP = 1000
# Events are deleted after this long: every tailing server has read them by then.
KEEP_EVENTS = timedelta(minutes=1)


@dataclass(frozen=True)
class TailFilter:
    """What one stream asked for; an empty set matches everything."""

    queues: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    states: frozenset[JobState] = frozenset()
    # Lower case.
    error_contains: str = ""

    def matches(self, e: JobEvent) -> bool:
        if self.queues and e.queue not in self.queues:
            return False
        if self.kinds and e.kind not in self.kinds:
            return False
        if self.states and e.state not in self.states:
            return False
        if self.error_contains:
            text = f"{e.error.type}\n{e.error.message}".lower() if e.error else ""
            return self.error_contains in text
        return True


@dataclass(eq=False)
class _Stream:
    want: TailFilter
    sees: Callable[[str], bool]
    mailbox: Mailbox[JobEvent]
    reported: int = 0  # the mailbox's coalesced count when the stream last sent an event


class TailHub:
    def __init__(self, store: TailStore, listener: Listener, buffer: int, streams: Streams | None = None) -> None:
        self._store = store
        self._counted = streams or Streams(0)
        self._listener = listener
        self._buffer = buffer
        self._streams: set[_Stream] = set()
        self._after: int | None = None  # the last seq read; None while not registered
        self._gaps: dict[int, float] = {}  # missing seq -> when to stop asking (loop time)
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._joining = asyncio.Lock()
        self._closing = False
        self._subscription: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._subscription = contextlib.ExitStack()
        self._subscription.enter_context(self._listener.subscribe(TAIL, Subscription(None, lambda _: self._kick())))

    def close(self) -> None:
        """Ends every stream now with ShuttingDown (UNAVAILABLE), so clients reconnect elsewhere."""
        self._closing = True
        for stream in self._streams:
            stream.mailbox.close(ShuttingDown("server shutting down; tail again"), drain_first=False)

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(SpoolError):
            await self._store.unregister()

    @property
    def streams(self) -> int:
        return len(self._streams)

    def mailboxes(self) -> tuple[Mailbox[JobEvent], ...]:
        """The mailboxes of the open streams (for tests and metrics)."""
        return tuple(s.mailbox for s in self._streams)

    async def follow(self, want: TailFilter, sees: Callable[[str], bool]) -> AsyncIterator[tuple[JobEvent, int]]:
        """Each matching event the caller may see, with how many this stream missed before it."""
        if self._closing:
            raise ShuttingDown("server shutting down; tail again")
        with self._counted.held():
            stream = _Stream(want, sees, Mailbox(self._buffer))
            async with self._joining:
                if self._after is None:
                    # Registered first, so every change committed after the end is read recorded.
                    await self._store.register()
                    self._after = await self._store.end()
                self._streams.add(stream)
            try:
                while True:
                    event = await stream.mailbox.get()
                    missed = stream.mailbox.coalesced - stream.reported
                    stream.reported = stream.mailbox.coalesced
                    yield event, missed
            finally:
                self._streams.discard(stream)

    def _kick(self) -> None:
        self._dirty = True
        if self._streams and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._read(), name="tail-read")

    async def _read(self) -> None:
        while self._dirty and self._streams and self._after is not None:
            self._dirty = False
            try:
                events = await self._store.read(self._after, list(self._gaps), READ_BATCH)
            except Exception:
                log.warning("tail: reading job events failed; the poll will retry", exc_info=True)
                self._dirty = True
                return
            self._advance(events)
            for event in events:
                for stream in self._streams:
                    if stream.want.matches(event) and stream.sees(event.queue):
                        stream.mailbox.put(event)
            if len(events) == READ_BATCH:
                self._dirty = True

    def _advance(self, events: list[JobEvent]) -> None:
        """Moves past the events read, remembering the numbers skipped on the way."""
        assert self._after is not None
        now = asyncio.get_running_loop().time()
        self._gaps = {seq: until for seq, until in self._gaps.items() if until > now}
        for event in events:
            self._gaps.pop(event.seq, None)
            if event.seq > self._after:
                if event.seq - self._after - 1 <= MAX_GAP:
                    self._gaps.update(dict.fromkeys(range(self._after + 1, event.seq), now + GAP_WAIT))
                self._after = event.seq

    async def poll_once(self, keep_alive: bool, prune: bool) -> None:
        """Reads what NOTIFY may have missed; keeps this server's tailer row alive while it has
        streams and deletes it once it has none."""
        if not self._streams:
            if self._after is not None and not self._joining.locked():
                # Under the join lock: a stream joining meanwhile registers after this delete, not before it.
                async with self._joining:
                    self._after = None
                    self._gaps.clear()
                    await self._store.unregister()
            return
        if keep_alive:
            await self._store.register()
        if prune:
            await self._store.prune(KEEP_EVENTS)
        self._kick()
        if self._task is not None:
            await asyncio.shield(self._task)


class TailPoller(Loop):
    """Runs the hub's poll every interval, its keep-alive every `keep_alive_every` polls and the
    pruning of old events every `prune_every`."""

    name = "tail-poller"

    def __init__(self, hub: TailHub, interval: float, keep_alive_every: int, prune_every: int) -> None:
        super().__init__(interval)
        self._hub = hub
        self._keep_alive_every = keep_alive_every
        self._prune_every = prune_every
        self._rounds = 0

    async def run_once(self) -> int:
        rounds = self._rounds
        self._rounds += 1
        await self._hub.poll_once(rounds % self._keep_alive_every == 0, rounds % self._prune_every == 0)
        return 0  # never a "full round": always wait the interval
