"""Lease with long poll: claim now, or wait for a NOTIFY (or the shared poll) and claim again.

An idle waiter does not poll on its own: one probe per process and poll interval (loops/ready.py)
asks which of the waited queues have a job ready or due, and wakes only those queues' waiters.
A job that becomes due without a NOTIFY (a scheduled run_at passing, a retry's backoff ending, a
reaped lease, a concurrency key freeing) is then claimed within about the poll interval. With
shared=False (SPOOL_LEASE_SHARED_POLL=0) each waiter claims again every poll interval, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from spoold.model import LeaseRequest
from spoold.notify import Listener, Subscription
from spoold.notify.listener import READY
from spoold.store.jobs import JobStore
from spoold.store.rows import JobRow


class Leaser:
    def __init__(self, store: JobStore, listener: Listener, poll_interval: float, shared: bool = True) -> None:
        self._store = store
        self._listener = listener
        self._poll_interval = poll_interval
        self.shared = shared
        self._closing = False
        self._waiting: set[Subscription] = set()
        self._by_queue: dict[str, set[Subscription]] = {}

    async def lease(self, req: LeaseRequest) -> list[JobRow]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.wait.total_seconds()
        # Subscribe before the first claim, so a job enqueued between a claim and the wait still wakes us.
        sub = Subscription(frozenset(req.queues))
        with self._listener.subscribe(READY, sub):
            self._enter(sub)
            try:
                while True:
                    jobs = await self._store.claim(req)
                    remaining = deadline - loop.time()
                    if jobs or remaining <= 0 or self._closing:
                        return jobs
                    # A rate limit holding jobs back: claim again the moment its window opens.
                    reopens = self._store.reopens_in(sub.keys or frozenset())
                    poll = remaining if self.shared else self._poll_interval
                    await sub.wait(min(remaining, poll if reopens is None else min(reopens, poll)))
            finally:
                self._leave(sub)

    async def take(self, req: LeaseRequest) -> list[JobRow]:
        """Leases what is ready now, without waiting; nothing once the server is closing."""
        return [] if self._closing else await self._store.claim(req)

    @property
    def waiting(self) -> int:
        """Long polls waiting now."""
        return len(self._waiting)

    def waited_queues(self) -> list[str]:
        """The queues some long poll waits on now (for the shared probe)."""
        return list(self._by_queue)

    def wake(self, queues: Collection[str]) -> int:
        """Wakes the waiters of these queues (each once, whatever it waits on); how many."""
        woken: set[Subscription] = set()
        for queue in queues:
            woken.update(self._by_queue.get(queue, ()))
        for sub in woken:
            sub.deliver(None)
        return len(woken)

    def close(self) -> None:
        """Ends every long poll now (with whatever it has), so shutdown need not wait them out."""
        self._closing = True
        for sub in tuple(self._waiting):
            sub.deliver(None)

    def _enter(self, sub: Subscription) -> None:
        self._waiting.add(sub)
        for queue in sub.keys or ():
            self._by_queue.setdefault(queue, set()).add(sub)

    def _leave(self, sub: Subscription) -> None:
        self._waiting.discard(sub)
        for queue in sub.keys or ():
            subs = self._by_queue.get(queue)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_queue[queue]
