"""spool.v1.QueueService: validate, call the domain, convert back. No SQL here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.message import Message

from spool.v1 import queue_service_pb2 as qs
from spoold import model
from spoold.api import convert, paging, search, tail_convert
from spoold.api import validate as v
from spoold.api.access import Access
from spoold.api.calls import CallContext as Context
from spoold.api.errors import code_of, retry_delay, stream, unary
from spoold.api.pipeline_convert import add_parents, with_follow_ups
from spoold.cancels import CancelHub
from spoold.checkpoint_limit import CheckpointLimit
from spoold.config import Settings
from spoold.errors import CheckpointRateLimited, InvalidArgument, JobNotFound, ShuttingDown, SpoolError
from spoold.leasing import Leaser
from spoold.model import Job, JobError, JobFilter, LeaseRequest
from spoold.queue_limit import QueueLimit
from spoold.store.followups import ack_with_follow_ups
from spoold.store.jobs import JobStore
from spoold.store.pipelines import parents_of
from spoold.store.rows import JobRow
from spoold.store.search import SearchStore
from spoold.tail import TailHub
from spoold.watch import WatchHub

log = logging.getLogger(__name__)
_Leased = RepeatedCompositeFieldContainer[qs.LeasedJob]


def _item_error(err: SpoolError) -> qs.ItemError:
    return qs.ItemError(
        code=code_of(err).value[0], reason=err.reason, message=err.message, retry_delay=retry_delay(err)
    )


class QueueService:
    def __init__(
        self,
        store: JobStore,
        leaser: Leaser,
        settings: Settings,
        access: Access,
        searches: SearchStore,
        hub: WatchHub | None = None,
        queue_limit: QueueLimit | None = None,
        tail: TailHub | None = None,
        cancels: CancelHub | None = None,
    ) -> None:
        self._store = store
        self._queue_limit = queue_limit
        self._tail = tail
        self._access = access
        self._hub = hub
        self._search = searches
        self._cancels = cancels
        self._leaser = leaser
        self._settings = settings
        self._limits = settings.limits
        self._checkpoints = CheckpointLimit(settings.checkpoint_min_interval.total_seconds())

    @unary
    async def Enqueue(self, request: qs.EnqueueRequest, context: Context) -> qs.EnqueueResponse:
        new = convert.new_job(request, self._settings, datetime.now(UTC))
        self._access.enqueue(new.queue, new.concurrency_global)
        if self._queue_limit is not None:
            await self._queue_limit.admit([new.queue])
        (result,) = await self._store.enqueue([new])
        return convert.enqueue_response(result)

    @unary
    async def EnqueueBatch(self, request: qs.EnqueueBatchRequest, context: Context) -> qs.EnqueueBatchResponse:
        convert.batch_size("jobs", len(request.jobs), self._limits)
        convert.batch_bytes("jobs", request, self._limits)
        if not request.jobs:
            raise InvalidArgument("jobs", "at least one job is required")
        now = datetime.now(UTC)
        news = [convert.new_job(j, self._settings, now, prefix=f"jobs[{i}].") for i, j in enumerate(request.jobs)]
        for i, new in enumerate(news):
            self._access.enqueue(new.queue, new.concurrency_global, prefix=f"jobs[{i}].")
        out = qs.EnqueueBatchResponse()
        if self._queue_limit is not None:
            await self._queue_limit.admit([n.queue for n in news], "jobs.queue")
        convert.add_enqueued(out.results, await self._store.enqueue(news))
        return out

    @unary
    async def Lease(self, request: qs.LeaseRequest, context: Context) -> qs.LeaseResponse:
        lease = convert.lease_request(request, self._limits)
        self._access.queues("queues", lease.queues)
        jobs = await self._leaser.lease(lease)
        out = qs.LeaseResponse()
        await self._add_leased(out.jobs, jobs)
        self._access.remember(self._sendable(out, out.jobs, jobs))
        return out

    async def _add_leased(self, into: RepeatedCompositeFieldContainer[qs.LeasedJob], jobs: list[JobRow]) -> None:
        """The leased jobs into a response, pipeline steps with their parents' outcomes."""
        found = await parents_of(self._store.pool, jobs)
        if not found:
            convert.add_leased(into, jobs)
            return
        convert.add_leased(into, jobs, lambda row, leased: add_parents(leased.parents, found[row["id"]]))

    @unary
    async def Heartbeat(self, request: qs.HeartbeatRequest, context: Context) -> qs.HeartbeatResponse:
        beat = convert.heartbeat(request, self._limits)
        await self._access.job(beat.job_id)
        if (limited := self._checkpoint_limited(beat)) is not None:
            raise limited
        (result,) = await self._store.heartbeat([beat])
        if isinstance(result, SpoolError):
            raise result
        return qs.HeartbeatResponse(
            lease_expires_at=convert.ts(result.lease_expires_at), cancel_requested=result.cancel_requested
        )

    @unary
    async def HeartbeatBatch(self, request: qs.HeartbeatBatchRequest, context: Context) -> qs.HeartbeatBatchResponse:
        convert.batch_size("heartbeats", len(request.heartbeats), self._limits)
        beats = [convert.heartbeat(h, self._limits, f"heartbeats[{i}].") for i, h in enumerate(request.heartbeats)]
        hidden = await self._access.hidden([b.job_id for b in beats])
        refused: dict[int, SpoolError] = {i: JobNotFound(b.job_id) for i, b in enumerate(beats) if b.job_id in hidden}
        for i, beat in enumerate(beats):
            if i not in refused and (limited := self._checkpoint_limited(beat, f"heartbeats[{i}].")) is not None:
                refused[i] = limited
        allowed = [b for i, b in enumerate(beats) if i not in refused]
        answers = iter(await self._store.heartbeat(allowed) if allowed else [])
        out = qs.HeartbeatBatchResponse()
        for i, beat in enumerate(beats):
            result = refused[i] if i in refused else next(answers)
            item = out.results.add(job_id=str(beat.job_id))
            if isinstance(result, SpoolError):
                item.error.CopyFrom(_item_error(result))
            else:
                item.heartbeat.lease_expires_at.FromDatetime(result.lease_expires_at)
                item.heartbeat.cancel_requested = result.cancel_requested
        return out

    def _checkpoint_limited(self, beat: model.Heartbeat, prefix: str = "") -> CheckpointRateLimited | None:
        """A beat carrying a checkpoint sooner than the job's minimum interval allows: the refusal."""
        if not beat.set_checkpoint:
            return None
        wait = self._checkpoints.admit(beat.job_id)
        return None if wait is None else CheckpointRateLimited(beat.job_id, wait, f"{prefix}checkpoint")

    @unary
    async def Ack(self, request: qs.AckRequest, context: Context) -> qs.AckResponse:
        ack = with_follow_ups(request, convert.ack(request, self._limits), self._settings)
        lease = convert.next_lease(request, self._limits)
        self._access.queues("next.queues", lease.queues if lease else ())
        self._follow_up_queues(ack)
        await self._access.job(ack.job_id)
        await self._admit_follow_ups(ack)
        created: list[JobRow] = []
        result: Job | SpoolError
        if ack.follow_ups:
            result, created = await ack_with_follow_ups(self._store, ack)
        else:
            (result,) = await self._store.ack([ack])
        if isinstance(result, SpoolError):
            raise result
        out = convert.ack_response(result, [])
        convert.add_rows(out.follow_ups, created)
        leased = await self._lease_next(lease, out)
        await self._add_leased(out.next, leased)
        self._access.remember(self._sendable(out, out.next, leased))
        return out

    @unary
    async def AckBatch(self, request: qs.AckBatchRequest, context: Context) -> qs.AckBatchResponse:
        convert.batch_size("acks", len(request.acks), self._limits)
        acks = [
            with_follow_ups(a, convert.ack(a, self._limits, f"acks[{i}]."), self._settings, f"acks[{i}].")
            for i, a in enumerate(request.acks)
        ]
        lease = convert.next_lease(request, self._limits)
        self._access.queues("next.queues", lease.queues if lease else ())
        for ack in acks:
            self._follow_up_queues(ack)
        hidden = await self._access.hidden([a.job_id for a in acks])
        allowed = [a for a in acks if a.job_id not in hidden and not a.follow_ups]
        errors = iter(await self._store.ack_only(allowed) if allowed else [])
        out = qs.AckBatchResponse()
        for i, ack in enumerate(acks):
            if ack.job_id in hidden:
                error: SpoolError | None = JobNotFound(ack.job_id)
            elif ack.follow_ups:
                error = await self._ack_one_with_follow_ups(ack, f"acks[{i}].")
            else:
                error = next(errors)
            item = out.results.add(job_id=str(ack.job_id))
            if error is not None:
                item.error.CopyFrom(_item_error(error))
        leased = await self._lease_next(lease, out)
        await self._add_leased(out.next, leased)
        self._access.remember(self._sendable(out, out.next, leased))
        return out

    async def _ack_one_with_follow_ups(self, ack: model.Ack, prefix: str) -> SpoolError | None:
        """An AckBatch item with follow-ups: its own transaction; its refusal is the item's error."""
        try:
            await self._admit_follow_ups(ack, prefix)
            await ack_with_follow_ups(self._store, ack)
        except SpoolError as err:
            return err
        return None

    async def _admit_follow_ups(self, ack: model.Ack, prefix: str = "") -> None:
        """The follow-ups' new queues count against SPOOL_MAX_QUEUES as an Enqueue's would; a refusal
        refuses the ack too (nothing of it is applied)."""
        if self._queue_limit is not None and ack.follow_ups:
            await self._queue_limit.admit([f.job.queue for f in ack.follow_ups], f"{prefix}follow_ups.job.queue")

    def _follow_up_queues(self, ack: model.Ack) -> None:
        for i, f in enumerate(ack.follow_ups):
            self._access.queues(f"follow_ups[{i}].job.queue", [f.job.queue], indexed=False)

    async def _lease_next(self, lease: LeaseRequest | None, answer: Message) -> list[JobRow]:
        """The jobs an Ack asked for after its acks, within what its answer has left of the byte
        budget. The acks are done whatever happens here, so a failure leases nothing rather than
        failing the call: the worker then leases with Lease."""
        if lease is None:
            return []
        room = max(self._limits.lease_answer_bytes - answer.ByteSize(), 0)
        try:
            return await self._leaser.take(replace(lease, max_bytes=room))
        except Exception:
            log.warning("leasing after an ack failed; the ack stands", exc_info=True)
            return []

    def _sendable(self, answer: Message, leased: _Leased, jobs: list[JobRow]) -> list[JobRow]:
        """The claimed jobs the answer can carry. The claim kept them within the byte budget, by
        its own count; should the answer still be over the message limit, the jobs at its end are
        taken out of it and released, without spending an attempt, rather than lost with it."""
        over = answer.ByteSize() - self._limits.max_message_bytes
        keep = len(jobs)
        while over > 0 and keep > 0:
            keep -= 1
            over -= leased[keep].ByteSize() + 10  # and its tag and length
        if keep < len(jobs):
            del leased[keep:]
            why = JobError("AnswerTooLarge", "the answer that carried this job was over the message limit")
            self._store.give_back(jobs[keep:], why)
        return jobs[:keep]

    @unary
    async def Nack(self, request: qs.NackRequest, context: Context) -> qs.NackResponse:
        nack = convert.nack(request, self._limits)
        await self._access.job(nack.job_id)
        job = await self._store.nack(nack)
        return qs.NackResponse(job=convert.job_proto(job))

    @unary
    async def Requeue(self, request: qs.RequeueRequest, context: Context) -> qs.RequeueResponse:
        if request.HasField("filter") or request.all:
            return await self._requeue_matching(request)
        if not request.job_ids:
            raise InvalidArgument("job_ids", "at least one job id is required")
        convert.batch_size("job_ids", len(request.job_ids), self._limits)
        ids = [v.positive_id(f"job_ids[{i}]", j) for i, j in enumerate(request.job_ids)]
        jobs = await self._store.requeue(list(dict.fromkeys(ids)), request.include_succeeded)
        return qs.RequeueResponse(jobs=[convert.job_proto(j) for j in jobs])

    @unary
    async def CancelJob(self, request: qs.CancelJobRequest, context: Context) -> qs.CancelJobResponse:
        job = await self._store.cancel(v.positive_id("job_id", request.job_id))
        return qs.CancelJobResponse(job=convert.job_proto(job))

    @unary
    async def GetJob(self, request: qs.GetJobRequest, context: Context) -> qs.GetJobResponse:
        job_id = v.positive_id("job_id", request.job_id)
        page = paging.attempt_page(request, job_id)
        job = await self._store.get(job_id, with_logs=request.include_logs, page=page)
        if not self._access.sees(job.queue):
            raise JobNotFound(job_id)
        return qs.GetJobResponse(job=convert.job_proto(job), next_attempts_page_token=paging.next_attempts_token(job))

    async def _requeue_matching(self, request: qs.RequeueRequest) -> qs.RequeueResponse:
        if request.job_ids:
            raise InvalidArgument("filter", "set job_ids or filter, not both")
        f = search.job_filter(request.filter, self._limits)
        if f == JobFilter() and not request.all:
            raise InvalidArgument(
                "filter",
                "an empty filter matches every finished job of every queue: narrow it, or set all to requeue them all",
            )
        limit = search.requeue_limit(request.limit)
        jobs = await self._search.requeue(f, request.include_succeeded, limit)
        return qs.RequeueResponse(jobs=[convert.job_proto(j) for j in jobs])

    @unary
    async def ListJobs(self, request: qs.ListJobsRequest, context: Context) -> qs.ListJobsResponse:
        page = search.job_page(request, self._limits)
        jobs, more = await self._search.search(page, self._access.like())
        token = search.next_page_token(page, jobs[-1].id) if more and jobs else ""
        return qs.ListJobsResponse(jobs=[convert.job_proto(j) for j in jobs], next_page_token=token)

    @stream
    async def WatchJob(self, request: qs.WatchJobRequest, context: Context) -> AsyncIterator[qs.WatchJobResponse]:
        job_id = v.positive_id("job_id", request.job_id)
        await self._access.job(job_id)
        if self._hub is None:
            raise ShuttingDown("this server does not serve WatchJob")
        payload, attempts = paging.watch_mask(request)
        async for job in self._hub.follow(job_id):
            shown = replace(job, payload=job.payload if payload else b"", attempts=job.attempts if attempts else ())
            yield qs.WatchJobResponse(job=convert.job_proto(shown), observed_at=convert.ts(datetime.now(UTC)))

    @stream
    async def TailJobs(self, request: qs.TailJobsRequest, context: Context) -> AsyncIterator[qs.TailJobsResponse]:
        want = tail_convert.tail_filter(request, self._limits)
        self._access.queues("queues", sorted(want.queues))
        if self._tail is None:
            raise ShuttingDown("this server does not serve TailJobs")
        async for event, missed in self._tail.follow(want, self._access.seer()):
            yield tail_convert.tail_response(event, missed)

    @stream
    async def WatchCancels(
        self, request: qs.WatchCancelsRequest, context: Context
    ) -> AsyncIterator[qs.WatchCancelsResponse]:
        worker_id = v.text("worker_id", request.worker_id, self._limits.max_key_length, required=True)
        if self._cancels is None:
            raise ShuttingDown("this server does not serve WatchCancels")
        async for cancel in self._cancels.follow(worker_id):
            if cancel is None:
                yield qs.WatchCancelsResponse()  # registered: what is cancelled from now on is heard
            elif self._access.sees(cancel.queue):
                yield qs.WatchCancelsResponse(job_id=cancel.job_id)
