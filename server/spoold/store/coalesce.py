"""Group commit: calls that arrive while a statement is running go together into the next one.

A busy server answers many small Lease and Ack calls at once. Run one by one, each costs a
statement, a commit and a WAL flush; gathered, a single statement does the work of all of them.
Nothing waits for a batch to fill: a call arriving at an idle coalescer is sent at once, and
batches form only from what piles up while the previous statement runs, so an idle server
answers as fast as before and a busy one does less work per job.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

Flush = Callable[[list[Item]], Awaitable[Sequence[Result]]]


class Coalescer(Generic[Item, Result]):
    """Runs `flush` over the items of many callers at once; each caller gets its own items' results.

    `flush` takes a list of items and returns one result per item, in order. At most `in_flight`
    flushes run at a time; a flush takes whole calls, in arrival order, up to `max_items` items (a
    larger call goes alone). If a flush raises, every call in it gets the exception, except the
    exceptions in `isolate`, which one call's bad input can cause: then each call is flushed again
    on its own, so that only the call at fault fails. A call of `alone_from` items or more is
    already a batch: it is flushed at once, on its own, beside whatever else is running. A call
    whose caller went away while its flush ran hands its results to `unanswered`, if given (a
    claim nobody received can then be given back).
    """

    def __init__(
        self,
        flush: Flush[Item, Result],
        max_items: int,
        in_flight: int = 1,
        on_idle: Callable[[], None] | None = None,
        isolate: tuple[type[Exception], ...] = (),
        alone_from: int | None = None,
        unanswered: Callable[[Sequence[Result]], None] | None = None,
    ) -> None:
        self._flush = flush
        self._max_items = max_items
        self._in_flight = in_flight
        self._on_idle = on_idle
        self._isolate = isolate
        self._alone_from = alone_from
        self._unanswered = unanswered
        self._running: set[asyncio.Task[None]] = set()
        self._waiting: deque[tuple[Sequence[Item], asyncio.Future[Sequence[Result]]]] = deque()

    @property
    def queued(self) -> int:
        """Calls waiting for a flush to start."""
        return sum(1 for _, answer in self._waiting if not answer.done())

    async def submit(self, items: Sequence[Item]) -> Sequence[Result]:
        if self._alone_from is not None and len(items) >= self._alone_from:
            return await self._flush(list(items))
        answer: asyncio.Future[Sequence[Result]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, answer))
        if len(self._running) < self._in_flight:
            self._start()
        return await answer

    def _start(self) -> None:
        calls: list[tuple[Sequence[Item], asyncio.Future[Sequence[Result]]]] = []
        size = 0
        while self._waiting:
            items, answer = self._waiting[0]
            if answer.done():  # its caller went away while it waited (a cancelled RPC): skip it
                self._waiting.popleft()
                continue
            if calls and size + len(items) > self._max_items:
                break
            calls.append(self._waiting.popleft())
            size += len(items)
        if not calls:
            if not self._running and self._on_idle is not None:
                self._on_idle()
            return
        task = asyncio.create_task(self._run(calls))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._waiting and len(self._running) < self._in_flight:
            self._start()
        elif not self._running and not self._waiting and self._on_idle is not None:
            self._on_idle()

    async def _run(self, calls: list[tuple[Sequence[Item], asyncio.Future[Sequence[Result]]]]) -> None:
        items = [item for call, _ in calls for item in call]
        try:
            results = await self._flush(items)
        except asyncio.CancelledError:
            for _, answer in calls:
                answer.cancel()
            raise
        except Exception as exc:
            if len(calls) > 1 and isinstance(exc, self._isolate):
                for one in calls:
                    await self._run([one])
                return
            for _, answer in calls:
                if not answer.done():
                    answer.set_exception(exc)
            return
        start = 0
        for call, answer in calls:
            mine = results[start : start + len(call)]
            if not answer.done():
                answer.set_result(mine)
            elif self._unanswered is not None:  # its caller went away (a cancelled RPC) meanwhile
                self._unanswered(mine)
            start += len(call)


Key = TypeVar("Key", bound=Hashable)


class KeyedCoalescer(Generic[Key, Item, Result]):
    """One Coalescer per key (e.g. per set of queues), dropped again once idle."""

    def __init__(
        self,
        flush: Callable[[Key, list[Item]], Awaitable[Sequence[Result]]],
        max_items: int,
        unanswered: Callable[[Sequence[Result]], None] | None = None,
    ) -> None:
        self._flush = flush
        self._max_items = max_items
        self._unanswered = unanswered
        self._by_key: dict[Key, Coalescer[Item, Result]] = {}

    async def submit(self, key: Key, items: Sequence[Item]) -> Sequence[Result]:
        coalescer = self._by_key.get(key)
        if coalescer is None:
            coalescer = self._by_key[key] = self._coalescer(key)
        return await coalescer.submit(items)

    def _coalescer(self, key: Key) -> Coalescer[Item, Result]:
        def flush(batch: list[Item]) -> Awaitable[Sequence[Result]]:
            return self._flush(key, batch)

        def forget() -> None:
            if self._by_key.get(key) is coalescer:
                del self._by_key[key]

        coalescer = Coalescer(flush, self._max_items, on_idle=forget, unanswered=self._unanswered)
        return coalescer

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def queued(self) -> int:
        return sum(c.queued for c in self._by_key.values())
