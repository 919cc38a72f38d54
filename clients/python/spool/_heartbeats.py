"""Keeps a worker's leases alive: one HeartbeatBatch per tick for every held job, carrying checkpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from spool._retry import UNANSWERED
from spool.client import AsyncClient
from spool.errors import CheckpointRateLimited, LeaseLost, SpoolError, item_error
from spool.job import ActiveJob
from spool.v1 import queue_service_pb2 as qs

log = logging.getLogger("spool.worker")

_MAX_BATCH = 1000


class Heartbeater:
    """Beats held jobs every `interval` seconds; reports lost leases and requested cancellations."""

    def __init__(
        self,
        client: AsyncClient,
        interval: float,
        on_lost: Callable[[ActiveJob], None],
        on_cancel: Callable[[ActiveJob], None],
    ) -> None:
        self._client = client
        self._interval = interval
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        # By lease token: a job leased again by this worker (its lease lost) is beaten apart.
        self._held: dict[str, ActiveJob] = {}
        self._since: dict[str, float] = {}
        # Beats and durable-step saves go one at a time: an older checkpoint in flight in a batch
        # must not land after a step's save and erase the step.
        self._sending = asyncio.Lock()

    def hold(self, job: ActiveJob) -> None:
        self._held[job.lease_token] = job
        self._since[job.lease_token] = asyncio.get_running_loop().time()

    def release(self, job: ActiveJob) -> None:
        """Stops beating the job (its outcome is settled, or its lease is gone)."""
        if self._held.get(job.lease_token) is job:
            del self._held[job.lease_token]
            del self._since[job.lease_token]

    def __len__(self) -> int:
        return len(self._held)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            # Jobs leased or beaten within half an interval can wait for the next tick (throttling).
            now = loop.time()
            due = [j for j in self._held.values() if now - self._since[j.lease_token] >= self._interval / 2]
            for start in range(0, len(due), _MAX_BATCH):
                async with self._sending:
                    await self._beat(due[start : start + _MAX_BATCH], now)

    async def save(self, job: ActiveJob, checkpoint: bytes) -> None:
        """Stores a checkpoint now (a durable step's result) and returns once the server has it;
        raises what the server answered (LeaseLost when the lease is gone). A checkpoint the server
        refuses as too soon after the job's last one is sent again after the delay it names."""
        while True:
            async with self._sending:
                req = _request(job, checkpoint)
                try:
                    resp = await self._client.call(self._client.stub.Heartbeat, req, retry=self._client.retry)
                    break
                except CheckpointRateLimited as err:
                    job.logs.put_back(req.logs)
                    delay = _delay(err)
            await asyncio.sleep(delay)  # outside the lock: the server asked for this pause
        self._beaten(job, None, resp.cancel_requested, asyncio.get_running_loop().time())

    async def _beat(self, jobs: Sequence[ActiveJob], now: float) -> None:
        sent = [j.pending_checkpoint for j in jobs]
        reqs = [_request(j, c) for j, c in zip(jobs, sent, strict=True)]
        try:
            resp = await self._client.call(
                self._client.stub.HeartbeatBatch, qs.HeartbeatBatchRequest(heartbeats=reqs), rpc_timeout=self._interval
            )
        except SpoolError as err:
            if err.code in UNANSWERED:  # no answer to the beat itself: nothing was refused
                log.warning("heartbeat failed, will retry: %s", err)
                for job, req in zip(jobs, reqs, strict=True):
                    job.logs.put_back(req.logs)
                return
            # The batch as a whole was refused (e.g. one checkpoint too large): beat one by one.
            log.warning("heartbeat batch refused, beating one by one: %s", err)
            for job, req in zip(jobs, reqs, strict=True):
                job.logs.put_back(req.logs)
            await self._beat_each(jobs, sent, now)
            return
        limited: list[ActiveJob] = []
        wait = 0.0
        for job, req, checkpoint, result in zip(jobs, reqs, sent, resp.results, strict=True):
            if not result.HasField("error"):
                self._beaten(job, checkpoint, result.heartbeat.cancel_requested, now)
                continue
            e = result.error
            refusal = item_error(e.code, e.reason, e.message, e.retry_delay.ToTimedelta().total_seconds() or None)
            if isinstance(refusal, CheckpointRateLimited):  # nothing stored, the lease not extended: again soon
                job.logs.put_back(req.logs)
                limited.append(job)
                wait = max(wait, _delay(refusal))
            else:
                self._refused(job, refusal)
        if limited:
            await asyncio.sleep(wait)  # the server's own delay for these jobs' checkpoints
            await self._beat([j for j in limited if self._held.get(j.lease_token) is j], now)

    async def _beat_each(self, jobs: Sequence[ActiveJob], sent: Sequence[bytes | None], now: float) -> None:
        for job, checkpoint in zip(jobs, sent, strict=True):
            req = _request(job, checkpoint)
            try:
                resp = await self._client.call(self._client.stub.Heartbeat, req, rpc_timeout=self._interval)
            except CheckpointRateLimited as err:  # kept for the next beat, as is the lease's extension
                job.logs.put_back(req.logs)
                log.info("job %s: checkpoint deferred to the next beat: %s", job.id, err.message)
            except SpoolError as err:
                if err.code in UNANSWERED:
                    job.logs.put_back(req.logs)
                    return
                if checkpoint is not None and job.pending_checkpoint is checkpoint and not isinstance(err, LeaseLost):
                    log.error("job %s: checkpoint refused, dropped: %s", job.id, err)
                    job.pending_checkpoint = None
                self._refused(job, err)
            else:
                self._beaten(job, checkpoint, resp.cancel_requested, now)

    def _beaten(self, job: ActiveJob, checkpoint: bytes | None, cancel_requested: bool, now: float) -> None:
        if job.lease_token in self._since:
            self._since[job.lease_token] = now
        if checkpoint is not None and job.pending_checkpoint is checkpoint:
            job.pending_checkpoint = None  # stored; a newer one set meanwhile waits for the next beat
        if cancel_requested:
            self._on_cancel(job)

    def _refused(self, job: ActiveJob, err: SpoolError) -> None:
        if self._held.get(job.lease_token) is not job:
            return  # released while the beat was in flight: its outcome went out, which ended the lease
        if isinstance(err, LeaseLost):
            log.warning("job %s: lease lost: %s", job.id, err.message)
            self._on_lost(job)
        else:
            log.error("job %s: heartbeat refused: %s", job.id, err)


def _delay(err: SpoolError) -> float:
    """The pause the server asked for (RetryInfo), or a short one when it named none."""
    return err.retry_delay if err.retry_delay is not None else 0.1


def _request(job: ActiveJob, checkpoint: bytes | None) -> qs.HeartbeatRequest:
    # The job's log lines written since the last beat go with it (put back if the beat fails).
    req = qs.HeartbeatRequest(job_id=job.id, lease_token=job.lease_token, logs=job.logs.take())
    if checkpoint is not None:
        req.checkpoint = checkpoint
    return req
