"""WatchCancels' engine: CancelJob on a RUNNING job notifies 'spool_cancel' with the job's id and
queue and the worker id it is leased under; each replica's listener hands it to that worker's streams.

Nothing is read from the database per stream or per job: a stream costs one bounded mailbox, and a
cancellation one NOTIFY. A lost notification (a dropped LISTEN connection, a full mailbox) costs
only speed: the worker's next heartbeat answers cancel_requested as before.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from spoold.errors import ShuttingDown
from spoold.notify import CANCEL, Listener, Mailbox, Subscription
from spoold.stream_slots import Streams


@dataclass(frozen=True)
class CancelRequested:
    job_id: str
    queue: str


class CancelHub:
    def __init__(self, listener: Listener, buffer: int, streams: Streams | None = None) -> None:
        self._listener = listener
        self._counted = streams or Streams(0)
        self._buffer = buffer
        self._streams: dict[str, set[Mailbox[CancelRequested]]] = defaultdict(set)
        self._closing = False
        self._subscription = contextlib.ExitStack()

    def start(self) -> None:
        self._subscription.enter_context(self._listener.subscribe(CANCEL, Subscription(None, self._on_notify)))

    def close(self) -> None:
        """Ends every stream now with ShuttingDown (UNAVAILABLE): workers reconnect elsewhere."""
        self._closing = True
        self._subscription.close()
        for mailboxes in self._streams.values():
            for mailbox in mailboxes:
                mailbox.close(ShuttingDown("server shutting down; watch again"), drain_first=False)

    def streams(self, worker_id: str) -> int:
        """How many streams follow the worker (for tests and metrics)."""
        return len(self._streams.get(worker_id, ()))

    async def follow(self, worker_id: str) -> AsyncIterator[CancelRequested | None]:
        """None once the stream is registered, then the worker's jobs as their cancellation is
        requested, until the caller leaves."""
        if self._closing:
            raise ShuttingDown("server shutting down; watch again")
        with self._counted.held():
            mailbox: Mailbox[CancelRequested] = Mailbox(self._buffer)
            self._streams[worker_id].add(mailbox)
            try:
                yield None
                while True:
                    yield await mailbox.get()
            finally:
                mailboxes = self._streams[worker_id]
                mailboxes.discard(mailbox)
                if not mailboxes:
                    del self._streams[worker_id]

    def _on_notify(self, payload: str) -> None:
        note = json.loads(payload)
        for mailbox in self._streams.get(note["worker"], ()):
            mailbox.put(CancelRequested(note["job"], note["queue"]))
