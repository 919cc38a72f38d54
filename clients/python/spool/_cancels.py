"""Hears cancellations of a worker's running jobs at once, through WatchCancels (one stream per
worker), rather than at the next heartbeat, which still answers cancel_requested as before."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from spool._retry import RetryPolicy
from spool.client import AsyncClient
from spool.v1 import queue_service_pb2 as qs

log = logging.getLogger("spool.worker")

# An older server, or a key that may not: the heartbeats deliver cancellations instead.
_GIVE_UP = frozenset(
    {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
)


class CancelWatcher:
    """Calls `on_cancel(job_id)` for each cancellation the server pushes; reconnects with backoff."""

    def __init__(
        self, client: AsyncClient, worker_id: str, on_cancel: Callable[[str], None], retry: RetryPolicy
    ) -> None:
        self._client = client
        self._worker_id = worker_id
        self._on_cancel = on_cancel
        self._retry = retry

    async def run(self) -> None:
        delays = self._retry.forever().delays()
        req = qs.WatchCancelsRequest(worker_id=self._worker_id)
        while True:
            call = self._client.stub.WatchCancels(req, metadata=self._client.connection.metadata)
            try:
                async for note in call:
                    delays = self._retry.forever().delays()
                    if note.job_id:  # the first message only says the stream is registered
                        self._on_cancel(note.job_id)
            except grpc.aio.AioRpcError as err:
                if err.code() in _GIVE_UP:
                    log.info("cancellations come with heartbeats only: WatchCancels answered %s", err.code().name)
                    return
                log.debug("WatchCancels ended (%s); watching again", err.code().name)
            finally:
                call.cancel()
            await asyncio.sleep(next(delays))
