"""Reports how attempts ended: Acks coalesced into AckBatch, Nacks one by one; both survive outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc

from spool._retry import UNANSWERED, RetryPolicy
from spool.client import AsyncClient
from spool.errors import LeaseLost, SpoolError, item_error
from spool.job import ActiveJob, nack_request
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs

log = logging.getLogger("spool.worker")

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_MAX_BATCH = 1000
IN_FLIGHT = 2
_RESULT_REFUSALS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED})


class ResultRefused(Exception):
    """The server refused the Ack's result (invalid, or over the size limit); the attempt is failed instead."""


class Reporter:
    """Sends outcomes until the server has them. Each call returns once its outcome is answered, so
    the Worker can keep a job's slot until then (backpressure).

    Each AckBatch also asks for the next jobs (`refill`, given how many acks it carries), and hands
    what it gets to `start`, with the jobs it acked, before its acks are answered: the slots the
    acked jobs free are filled in the same call, one call per batch in a steady run instead of an
    AckBatch and a Lease."""

    def __init__(
        self,
        client: AsyncClient,
        retry: RetryPolicy,
        refill: Callable[[int], qs.LeaseRequest | None] = lambda _: None,
        start: Callable[[Sequence[qs.LeasedJob], Sequence[ActiveJob]], None] = lambda _, __: None,
    ) -> None:
        self._client = client
        self._retry = retry
        self._refill = refill
        self._start = start
        self._acks: asyncio.Queue[tuple[ActiveJob, qs.AckRequest, asyncio.Future[None]]] = asyncio.Queue()

    async def ack(self, job: ActiveJob, req: qs.AckRequest) -> None:
        """Sends the Ack with the next AckBatch; returns once it is answered (or failed over to a Nack)."""
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.put_nowait((job, req, answered))
        await answered

    async def run(self) -> None:
        """Sends queued Acks without pause, up to IN_FLIGHT batches at a time: whatever arrives while
        they are in flight goes in the next."""
        sending: set[asyncio.Task[None]] = set()
        try:
            while True:
                first = await self._acks.get()
                while True:
                    for task in [t for t in sending if t.done()]:
                        sending.discard(task)
                        task.result()  # a failure here is a bug: let the Worker say so
                    if len(sending) < IN_FLIGHT:
                        break
                    await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                batch = [first]
                while not self._acks.empty() and len(batch) < _MAX_BATCH:
                    batch.append(self._acks.get_nowait())
                sending.add(asyncio.create_task(self._send_batch(batch)))
        finally:
            for task in sending:
                task.cancel()

    async def _send_batch(self, batch: Sequence[tuple[ActiveJob, qs.AckRequest, asyncio.Future[None]]]) -> None:
        try:
            await self._send_acks([(job, req) for job, req, _ in batch])
        finally:
            for _, _, answered in batch:
                if not answered.done():  # its waiter may have been cancelled (shutdown)
                    answered.set_result(None)

    async def _send_acks(self, batch: Sequence[tuple[ActiveJob, qs.AckRequest]]) -> None:
        req = qs.AckBatchRequest(acks=[r for _, r in batch], next=self._refill(len(batch)))
        tries = [0]
        try:
            resp = await self._call(self._client.stub.AckBatch, req, tries)
        except SpoolError as err:
            # Refused as a whole (e.g. one result too large): ack one by one so the rest go through.
            log.warning("ack batch refused, acking one by one: %s", err)
            for job, one in batch:
                await self._ack_one(job, one)
            return
        if resp.next:
            acked = [job for (job, _), result in zip(batch, resp.results, strict=True) if not result.HasField("error")]
            self._start(resp.next, acked)
        for (job, one), result in zip(batch, resp.results, strict=True):
            if not result.HasField("error"):
                continue
            refusal = item_error(result.error.code, result.error.reason, result.error.message)
            if refusal.code in UNANSWERED:  # this item's fate is unknown: ask again, on its own
                await self._ack_one(job, one)
            else:
                await self._refused(job, refusal, repeated=tries[0] > 1)

    async def _ack_one(self, job: ActiveJob, req: qs.AckRequest) -> None:
        tries = [0]
        try:
            await self._call(self._client.stub.Ack, req, tries)
        except SpoolError as err:
            await self._refused(job, err, repeated=tries[0] > 1)

    async def _refused(self, job: ActiveJob, err: SpoolError, *, repeated: bool) -> None:
        """An Ack answered with a refusal. Only a refused result fails the attempt (with a Nack): any
        other answer leaves the job to whoever holds it now, or to the reaper. A repeated Ack refused
        LEASE_LOST may have landed on an earlier try, its answer lost: then the job is done."""
        if isinstance(err, LeaseLost):
            if repeated and await self._landed(job):
                log.info("job %s: ack already recorded (its first answer was lost)", job.id)
            else:
                log.warning("job %s: ack refused, lease lost: %s", job.id, err.message)
        elif result_refused(err):
            log.warning("job %s: result refused, failing the attempt: %s", job.id, err)
            await self.nack(job, ResultRefused(str(err)))
        else:
            log.error("job %s: ack refused; the lease will expire: %s", job.id, err)

    async def _landed(self, job: ActiveJob) -> bool:
        """Whether this attempt's Ack is recorded: a repeated Ack that had landed is answered LEASE_LOST."""
        try:
            found = await self._call(self._client.stub.GetJob, qs.GetJobRequest(job_id=job.id))
        except SpoolError:
            return False
        return found.job.state == job_pb2.Job.STATE_SUCCEEDED and found.job.attempt == job.attempt

    async def nack(self, job: ActiveJob, exc: BaseException, *, release: bool = False) -> None:
        """Fails the attempt with `exc` (type, message, traceback); Retry/Permanent choose what follows.
        With release the job is handed back unfinished and the attempt is not counted."""
        req = nack_request(job, exc, release=release)
        try:
            await self._call(self._client.stub.Nack, req)
        except LeaseLost as err:
            log.warning("job %s: nack refused, lease lost: %s", job.id, err.message)
        except SpoolError as err:
            if not req.HasField("checkpoint"):
                log.error("job %s: nack refused; the lease will expire: %s", job.id, err)
            else:  # most likely the checkpoint itself: keep the failure, drop the progress
                log.error("job %s: nack refused, retrying without the checkpoint: %s", job.id, err)
                job.pending_checkpoint = None
                await self.nack(job, exc, release=release)

    async def _call(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], req: Req, tries: list[int] | None = None
    ) -> Resp:
        """Repeats the call until the server answers it (see UNANSWERED), with capped, jittered
        backoff; counts the tries in tries[0]."""
        delays = self._retry.delays()
        while True:
            if tries is not None:
                tries[0] += 1
            try:
                return await self._client.call(method, req, rpc_timeout=self._client.timeout)
            except SpoolError as err:
                delay = next(delays, None) if err.code in UNANSWERED else None
                if delay is None:
                    raise
                log.warning("%s failed, retrying in %.1fs: %s", type(req).__name__, delay, err)
            if isinstance(req, qs.AckBatchRequest):
                # The jobs the first try asked for may be leased already, its answer lost: ask for none.
                req.ClearField("next")
            await asyncio.sleep(delay)


def result_refused(err: SpoolError) -> bool:
    """Whether the server refused an Ack's result for good (invalid, or over the size limit)."""
    field = err.metadata.get("field", "")
    return err.code in _RESULT_REFUSALS and (field.endswith("result") or field.endswith("result_content_type"))
