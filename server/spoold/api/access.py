"""Queue patterns, applied by the services for the current caller (the door checked scopes).

A queue named in a request that the key may not use is refused (PERMISSION_DENIED, reason
QUEUE_NOT_ALLOWED). A job in such a queue is answered as if it did not exist (NOT_FOUND,
JOB_NOT_FOUND), so that a key cannot learn what other queues hold. Callers that reach every
queue (admin keys, `*`, calls admitted without a key) skip all of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

from spoold.auth.principal import Principal, principal
from spoold.errors import GlobalKeyNotAllowed, JobNotFound, QueueNotAllowed
from spoold.store.keys import KeyStore
from spoold.store.rows import JobRow

# Job id -> queue, for the fenced calls of restricted keys. A job never changes queue, so an entry
# is never stale; the jobs a server leased are the ones its workers ack, so most lookups hit.
QUEUE_CACHE = 100_000


class _Queues(dict[int, str]):
    """A dict bounded by dropping its oldest entries: entries never go stale, so recency does not
    matter, and a plain dict costs a fraction of an LRU cache on the hot path (a batch of 1,000 acks
    looks up 1,000 ids)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def add(self, pairs: Iterable[tuple[int, str]]) -> None:
        self.update(pairs)
        excess = len(self) - self._limit
        if excess > 0:
            for job_id in list(itertools.islice(self, excess)):
                del self[job_id]


def _refuse(p: Principal, field: str, queue: str) -> QueueNotAllowed:
    return QueueNotAllowed(
        f"{field}: API key {p.key_id} may not use queue {queue[:128]!r}",
        field=field,
        queue=queue[:128],
        key_id=p.key_id or "",
    )


class Access:
    def __init__(self, keys: KeyStore, cached: int = QUEUE_CACHE) -> None:
        self._keys = keys
        self._queue_of = _Queues(cached)

    def queues(self, field: str, names: Iterable[str], indexed: bool = True) -> None:
        """Refuses the call if any named queue is not the caller's."""
        p = principal()
        if p.every_queue:
            return
        for i, name in enumerate(names):
            if not p.allows(name):
                raise _refuse(p, f"{field}[{i}]" if indexed else field, name)

    def enqueue(self, queue: str, concurrency_global: bool, prefix: str = "") -> None:
        """Refuses a job for a queue that is not the caller's, and a global concurrency key from a
        caller restricted to some queues: its jobs would hold slots that queues it may not use share."""
        p = principal()
        if p.every_queue:
            return
        if not p.allows(queue):
            raise _refuse(p, f"{prefix}queue", queue)
        if concurrency_global:
            field = f"{prefix}concurrency_scope"
            raise GlobalKeyNotAllowed(
                f"{field}: API key {p.key_id} is limited to some queues and may not use a global concurrency key",
                field=field,
                key_id=p.key_id or "",
            )

    def like(self) -> list[str] | None:
        """The caller's queue patterns as LIKE patterns, or None when it reaches every queue."""
        p = principal()
        return None if p.every_queue else p.queues.like()

    def sees(self, queue: str) -> bool:
        return principal().allows(queue)

    def seer(self) -> Callable[[str], bool]:
        """sees, for the current caller, usable outside its request's context (a stream's fan-out)."""
        p = principal()
        return (lambda _: True) if p.every_queue else p.allows

    def remember(self, rows: Iterable[JobRow]) -> None:
        """Notes the queues of jobs just handed to a restricted caller (leased), for its acks."""
        if not principal().every_queue:
            self._queue_of.add((row["id"], row["queue"]) for row in rows)

    async def hidden(self, job_ids: Sequence[int]) -> set[int]:
        """The ids, among these, of jobs that do not exist or that the caller may not see."""
        p = principal()
        if p.every_queue:
            return set()
        known = self._queue_of
        unknown = [i for i in job_ids if i not in known]
        if unknown:
            known.add((await self._keys.job_queues(unknown)).items())
        queues = [known.get(i) for i in job_ids]
        allowed = {q for q in set(queues) if q is not None and p.allows(q)}  # usually one queue
        return {i for i, q in zip(job_ids, queues, strict=True) if q not in allowed}

    async def job(self, job_id: int, field: str = "job_id") -> None:
        """JobNotFound unless the caller may see the job."""
        if await self.hidden([job_id]):
            raise JobNotFound(job_id, field=field)
