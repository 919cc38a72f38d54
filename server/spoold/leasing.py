"""Lease with long poll: claim now, or wait for a NOTIFY (or the poll interval) and claim again."""

from __future__ import annotations

import asyncio

from spoold.model import LeaseRequest
from spoold.notify import Listener, Subscription
from spoold.notify.listener import READY
from spoold.store.jobs import JobStore
from spoold.store.rows import JobRow


class Leaser:
    def __init__(self, store: JobStore, listener: Listener, poll_interval: float) -> None:
        self._store = store
        self._listener = listener
        self._poll_interval = poll_interval
        self._closing = False
        self._waiting: set[Subscription] = set()

    async def lease(self, req: LeaseRequest) -> list[JobRow]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.wait.total_seconds()
        # Subscribe before the first claim, so a job enqueued between a claim and the wait still wakes us.
        sub = Subscription(frozenset(req.queues))
        with self._listener.subscribe(READY, sub):
            self._waiting.add(sub)
            try:
                while True:
                    jobs = await self._store.claim(req)
                    remaining = deadline - loop.time()
                    if jobs or remaining <= 0 or self._closing:
                        return jobs
                    # A rate limit holding jobs back: claim again the moment its window opens.
                    reopens = self._store.reopens_in(sub.keys or frozenset())
                    poll = self._poll_interval if reopens is None else min(reopens, self._poll_interval)
                    await sub.wait(min(remaining, poll))
            finally:
                self._waiting.discard(sub)

    async def take(self, req: LeaseRequest) -> list[JobRow]:
        """Leases what is ready now, without waiting; nothing once the server is closing."""
        return [] if self._closing else await self._store.claim(req)

    def close(self) -> None:
        """Ends every long poll now (with whatever it has), so shutdown need not wait them out."""
        self._closing = True
        for sub in tuple(self._waiting):
            sub.deliver(None)
