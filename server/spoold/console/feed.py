"""Queue stats pushed to every open console: one query per interval for all of them.

N consoles open on the Queues page do not cost N times the queries: this loop asks AdminService's
ListQueues (the same servicer code as every door) once per interval while anyone listens, and hands
the answer to each listener's one-slot mailbox, filtered by the queues that listener's key may see
(Principal.allows, the rule ListQueues itself applies). A slow listener misses intermediate
snapshots, never grows memory. Nobody listening: no query at all."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from spool.v1 import admin_service_pb2 as adm
from spoold.api.calls import CallContext
from spoold.auth.principal import ANONYMOUS, Principal, current
from spoold.loops.base import Loop

ListQueues = Callable[[adm.ListQueuesRequest, CallContext], Awaitable[adm.ListQueuesResponse]]
GetActivity = Callable[[adm.GetQueueActivityRequest, CallContext], Awaitable[adm.GetQueueActivityResponse]]
# Pages of queues read per snapshot at most (1,000 each).
MAX_PAGES = 10
# The per-minute activity changes once a minute: it is read every this many snapshots.
ACTIVITY_EVERY = 10


class _LoopCall:
    """The call context of the loop's own ListQueues: nobody waits on it but the loop."""

    def peer(self) -> str:
        return "console-feed"

    def time_remaining(self) -> float | None:
        return None

    def cancelled(self) -> bool:
        return False


@dataclass(eq=False)
class Listener:
    principal: Principal
    box: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=1))

    def offer(self, queues: list[tuple[str, dict[str, Any]]], activity: dict[str, Any]) -> None:
        mine = [a for a in activity.get("queues", ()) if self.principal.allows(a["queue"])]
        text = json.dumps(
            {
                "queues": [q for name, q in queues if self.principal.allows(name)],
                "activity": {"start": activity.get("start"), "queues": mine},
            }
        )
        if self.box.full():  # coalesce: only the newest snapshot matters
            self.box.get_nowait()
        self.box.put_nowait(text)


class QueueFeed(Loop):
    name = "console-feed"

    def __init__(self, list_queues: ListQueues, get_activity: GetActivity, interval: float) -> None:
        """list_queues, get_activity: AdminService's own ListQueues and GetQueueActivity."""
        super().__init__(interval)
        self._list_queues = list_queues
        self._get_activity = get_activity
        self._activity: dict[str, Any] = {}
        self._activity_due = 0  # snapshots until the activity is read again
        self._listeners: dict[int, Listener] = {}
        self._ids = itertools.count()
        self.published = 0  # snapshots fetched, for tests and the bench

    @property
    def listening(self) -> int:
        return len(self._listeners)

    async def run_once(self) -> int:
        if not self._listeners:
            return 0
        token = current.set(ANONYMOUS)  # every queue: each listener's own filter follows
        try:
            found = await self._every_queue()
            if self._activity_due <= 0:
                activity = await self._get_activity(adm.GetQueueActivityRequest(), _LoopCall())
                self._activity = json_format.MessageToDict(activity)
                self._activity_due = ACTIVITY_EVERY
            self._activity_due -= 1
        finally:
            current.reset(token)
        queues = [(q.name, json_format.MessageToDict(q)) for q in found]
        for listener in list(self._listeners.values()):
            listener.offer(queues, self._activity)
        self.published += 1
        return 0  # never "more waiting": the next snapshot is due an interval from now

    async def _every_queue(self) -> list[adm.Queue]:
        """Every page of ListQueues (a page holds up to 1,000 queues)."""
        found: list[adm.Queue] = []
        token = ""
        for _ in range(MAX_PAGES):
            answer = await self._list_queues(adm.ListQueuesRequest(page_token=token), _LoopCall())
            found.extend(answer.queues)
            token = answer.next_page_token
            if not token:
                break
        return found

    async def follow(self, principal: Principal) -> AsyncIterator[str]:
        """The snapshots for one listener (JSON text), as they come, until the caller stops."""
        key = next(self._ids)
        listener = Listener(principal)
        self._listeners[key] = listener
        try:
            while True:
                yield await listener.box.get()
        finally:
            del self._listeners[key]
