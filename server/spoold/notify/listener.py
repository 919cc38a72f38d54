"""The process's LISTEN connection. Notifications are hints: subscribers also poll, so a lost
notification, a dropped connection or a pooler that ignores LISTEN costs latency, never a job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

import asyncpg

from spoold.store.database import transient

log = logging.getLogger(__name__)

READY = "spool_ready"  # payload: a queue that got a job ready to run
JOB = "spool_job"  # payload: the id of a watched job that changed (see spool.watched)
KEYS = "spool_api_key"  # payload: the id of an API key that changed (revoked, above all)
TAIL = "spool_tail"  # no payload: job events were written for the tailing servers (spool.job_events)
CANCEL = "spool_cancel"  # payload: JSON {job, queue, worker} of a RUNNING job whose cancel was requested


class Subscription:
    """Woken when a notification on its channel carries one of its keys (or any, if keys is None)."""

    def __init__(self, keys: frozenset[str] | None, on_notify: Callable[[str], None] | None = None) -> None:
        self.keys = keys
        self._event = asyncio.Event()
        self._on_notify = on_notify

    def deliver(self, payload: str | None) -> None:
        """payload None means "anything may have changed" (after a reconnect)."""
        if payload is not None and self.keys is not None and payload not in self.keys:
            return
        if self._on_notify is not None and payload is not None:
            self._on_notify(payload)
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """True if woken within `seconds`; clears the wake-up either way."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()


class Listener:
    def __init__(self, dsn: str, channels: tuple[str, ...] = (READY, JOB, KEYS, TAIL, CANCEL)) -> None:
        self._dsn = dsn
        self._channels = channels
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @contextlib.contextmanager
    def subscribe(self, channel: str, subscription: Subscription) -> Iterator[Subscription]:
        self._subscribers[channel].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[channel].discard(subscription)

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers[channel])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listener")
        # Serve without LISTEN if the first connection is slow: waiters poll meanwhile.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            lost = asyncio.Event()
            try:
                self._conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "spoold-listen"})
                self._conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._channels:
                    await self._conn.add_listener(channel, self._on_notification)
                self.connected.set()
                delay = 0.1
                self._wake_all()  # anything sent while we were away is lost: make waiters look
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except Exception as exc:  # whatever happens, waiters fall back to polling until we are back
                log.warning(
                    "LISTEN connection failed (%s: %s); retrying in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=None if transient(exc) else exc,
                )
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_notification(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for sub in tuple(self._subscribers[channel]):
            sub.deliver(str(payload))

    def _wake_all(self) -> None:
        for subs in self._subscribers.values():
            for sub in tuple(subs):
                sub.deliver(None)
