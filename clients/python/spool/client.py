"""AsyncClient (grpc.aio) and Client, its blocking twin over a plain gRPC channel, for QueueService."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

import grpc

from spool._config import Connection
from spool._convert import ORDERS, EnqueueOptions, Filter, batch_requests, duration, enqueue_request
from spool._retry import DEFAULT_RETRY, NO_RETRY, RETRYABLE, RetryPolicy
from spool._tracing import send_span
from spool.errors import from_rpc_error
from spool.pipelines import AsyncPipelines, Pipeline, Pipelines, Step
from spool.schedules import AsyncSchedules, Schedules
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.admin_service_pb2_grpc import AdminServiceStub
from spool.v1.queue_service_pb2_grpc import QueueServiceStub

if TYPE_CHECKING:  # the async stub types exist only in the generated .pyi files
    from spool.v1.admin_service_pb2_grpc import AdminServiceAsyncStub
    from spool.v1.queue_service_pb2_grpc import QueueServiceAsyncStub

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Job = job_pb2.Job
Queue = adm.Queue

DEFAULT_TIMEOUT = 30.0
_TERMINAL = frozenset({Job.STATE_SUCCEEDED, Job.STATE_DEAD, Job.STATE_CANCELLED})


def _list_request(where: Filter | None, order: str, page_size: int, token: str) -> qs.ListJobsRequest:
    req = qs.ListJobsRequest(order=ORDERS[order], page_size=page_size, page_token=token)
    if where is not None:
        req.filter.CopyFrom(where.to_proto())
    return req


def _requeue_request(
    ids: Sequence[str], where: Filter | None, include_succeeded: bool, limit: int, everything: bool = False
) -> qs.RequeueRequest:
    req = qs.RequeueRequest(job_ids=list(ids), include_succeeded=include_succeeded, limit=limit, all=everything)
    if where is not None:
        req.filter.CopyFrom(where.to_proto())
    return req


def _update_request(
    name: str, defaults: adm.QueueDefaults, mask: Sequence[str], rate_limit: job_pb2.RateLimit | None
) -> adm.UpdateQueueRequest:
    req = adm.UpdateQueueRequest(name=name, defaults=defaults, rate_limit=rate_limit)
    if mask:
        req.update_mask.paths.extend(mask)
    return req


class AsyncClient:
    """QueueService over grpc.aio. Methods raise spool.errors.SpoolError subclasses.

    UNAVAILABLE is retried with `retry` (capped exponential backoff, full jitter) for calls that are
    safe to repeat; Enqueue is one of them because it always carries an idempotency key.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float | None = DEFAULT_TIMEOUT,
        insecure: bool | None = None,
    ) -> None:
        self.connection = Connection.resolve(
            address,
            tls=tls,
            root_certificates=root_certificates,
            certificate_chain=certificate_chain,
            private_key=private_key,
            token=token,
            metadata=metadata,
            insecure=insecure,
        )
        self.retry = retry
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: QueueServiceAsyncStub | None = None
        self._admin: AdminServiceAsyncStub | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        # Opened on first use: a grpc.aio channel belongs to the event loop running when it is made,
        # so a client built before asyncio.run() (e.g. for Worker.run()) must not make it earlier.
        if self._channel is None:
            self._channel = self.connection.aio_channel()
        return self._channel

    @property
    def stub(self) -> QueueServiceAsyncStub:
        if self._stub is None:
            self._stub = QueueServiceStub(self.channel)
        return self._stub

    @property
    def admin(self) -> AdminServiceAsyncStub:
        if self._admin is None:
            self._admin = AdminServiceStub(self.channel)
        return self._admin

    @property
    def schedules(self) -> AsyncSchedules:
        """Create, list, change, pause, trigger and delete schedules (docs/schedules.md)."""
        return AsyncSchedules(self)

    @property
    def pipelines(self) -> AsyncPipelines:
        """Create, read and cancel pipelines (docs/pipelines.md)."""
        return AsyncPipelines(self)

    async def pipeline(self, name: str, steps: Iterable[Step], **options: Any) -> Pipeline:
        """Creates a pipeline of these steps in one transaction (pipelines.create)."""
        return await self.pipelines.create(name, steps, **options)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = self._admin = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        retry: RetryPolicy | None = None,
        rpc_timeout: float | None = DEFAULT_TIMEOUT,
        trace: Mapping[str, str] | None = None,
    ) -> Resp:
        """One unary call with the client's metadata (and `trace`, the call's trace context);
        UNAVAILABLE retried when `retry` is given."""
        delays = (retry or NO_RETRY).delays()
        metadata = (*self.connection.metadata, *trace.items()) if trace else self.connection.metadata
        while True:
            try:
                return await method(request, metadata=metadata, timeout=rpc_timeout)
            except grpc.aio.AioRpcError as err:
                delay = next(delays, None) if err.code() in RETRYABLE else None
                if delay is None:
                    raise from_rpc_error(err) from err
            await asyncio.sleep(delay)

    async def enqueue(self, queue: str, payload: Any, **options: Unpack[EnqueueOptions]) -> Job:
        """Creates a job; `payload` is bytes or anything json.dumps accepts. Within an
        OpenTelemetry span, the job's headers carry its trace context (docs/observability.md)."""
        req = enqueue_request(queue, payload, **options)
        with send_span(queue) as context:
            req.headers.update(context or {})
            answer = await self.call(self.stub.Enqueue, req, retry=self.retry, rpc_timeout=self.timeout, trace=context)
            return answer.job

    async def enqueue_many(
        self, queue: str, payloads: Iterable[Any], **options: Unpack[EnqueueOptions]
    ) -> builtins.list[Job]:
        """Creates one job per payload in one transaction, all or nothing."""
        req = qs.EnqueueBatchRequest(jobs=batch_requests(queue, payloads, options))
        with send_span(queue, len(req.jobs)) as context:
            for job in req.jobs if context else ():
                job.headers.update(context or {})
            resp = await self.call(
                self.stub.EnqueueBatch, req, retry=self.retry, rpc_timeout=self.timeout, trace=context
            )
        return [r.job for r in resp.results]

    async def get(self, job_id: str, *, include_logs: bool = False) -> Job:
        """The job with its attempts; with include_logs, each attempt's log lines (Attempt.logs)."""
        req = qs.GetJobRequest(job_id=job_id, include_logs=include_logs)
        return (await self.call(self.stub.GetJob, req, retry=self.retry, rpc_timeout=self.timeout)).job

    async def list(
        self, where: Filter | None = None, *, order: str = "newest", page_size: int = 100
    ) -> AsyncIterator[Job]:
        """Every matching job, fetching pages as the iteration goes; order is "newest" or "oldest"."""
        token = ""
        while True:
            req = _list_request(where, order, page_size, token)
            resp = await self.call(self.stub.ListJobs, req, retry=self.retry, rpc_timeout=self.timeout)
            for job in resp.jobs:
                yield job
            token = resp.next_page_token
            if not token:
                return

    async def watch(self, job_id: str, *, include: Sequence[str] = ()) -> AsyncIterator[Job]:
        """The job now, then each change, ending after a terminal state; reconnects on UNAVAILABLE.
        The snapshots leave out the payload and the attempts unless `include` names them
        ("payload", "attempts")."""
        last: Job | None = None
        async for resp in self.stream(self.stub.WatchJob, _watch_request(job_id, include)):
            if resp.job != last:  # a reconnect starts with the snapshot already seen
                last = resp.job
                yield resp.job

    async def stream(
        self, method: grpc.aio.UnaryStreamMultiCallable[Req, Resp], request: Req, *, reopen_on_end: bool = False
    ) -> AsyncIterator[Resp]:
        """A server stream's responses with the client's metadata, opened again after UNAVAILABLE
        (with `retry`'s backoff, reset by each response) and, with reopen_on_end, after it ends."""
        delays = self.retry.delays()
        while True:
            call = method(request, metadata=self.connection.metadata)
            try:
                async for resp in call:
                    delays = self.retry.delays()
                    yield resp
                if not reopen_on_end:
                    return
                continue
            except grpc.aio.AioRpcError as err:
                delay = next(delays, None) if err.code() in RETRYABLE else None
                if delay is None:
                    raise from_rpc_error(err) from err
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    async def cancel(self, job_id: str) -> Job:
        """PENDING ends CANCELLED now; a RUNNING job's worker is told by its next heartbeat."""
        req = qs.CancelJobRequest(job_id=job_id)
        return (await self.call(self.stub.CancelJob, req, retry=self.retry, rpc_timeout=self.timeout)).job

    async def requeue(self, *job_ids: str, include_succeeded: bool = False) -> builtins.list[Job]:
        """Puts DEAD or CANCELLED (or SUCCEEDED, when asked) jobs back to PENDING with fresh attempts."""
        req = _requeue_request(job_ids, None, include_succeeded, 0)
        return builtins.list((await self.call(self.stub.Requeue, req, rpc_timeout=self.timeout)).jobs)

    async def requeue_matching(
        self, where: Filter, *, include_succeeded: bool = False, limit: int = 1000, everything: bool = False
    ) -> builtins.list[Job]:
        """Requeues at most `limit` matching jobs; call again until it returns none. A filter that
        sets nothing (every finished job of every queue) is refused unless `everything` is set."""
        req = _requeue_request((), where, include_succeeded, limit, everything)
        return builtins.list((await self.call(self.stub.Requeue, req, rpc_timeout=self.timeout)).jobs)

    async def queues(self) -> builtins.list[Queue]:
        """Every queue, by name, with its stats by derived status (read page by page)."""
        found: builtins.list[Queue] = []
        token = ""
        while True:
            req = adm.ListQueuesRequest(page_token=token)
            resp = await self.call(self.admin.ListQueues, req, retry=self.retry, rpc_timeout=self.timeout)
            found += resp.queues
            token = resp.next_page_token
            if not token:
                return found

    async def queue(self, name: str) -> Queue:
        """One queue with its settings and stats."""
        req = adm.GetQueueRequest(name=name)
        return (await self.call(self.admin.GetQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    async def pause(self, name: str) -> Queue:
        """Stops leasing the queue's jobs; enqueue still works and running jobs finish."""
        req = adm.PauseQueueRequest(name=name)
        return (await self.call(self.admin.PauseQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    async def resume(self, name: str) -> Queue:
        """Leases the queue's jobs again."""
        req = adm.ResumeQueueRequest(name=name)
        return (await self.call(self.admin.ResumeQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    async def update_queue(
        self,
        name: str,
        defaults: adm.QueueDefaults,
        mask: Sequence[str] = (),
        *,
        rate_limit: job_pb2.RateLimit | None = None,
    ) -> Queue:
        """Writes the queue's job defaults: the fields in `mask`, or without one, those set in `defaults`;
        and its rate limit, if given or if `mask` names "rate_limit" (then None removes it)."""
        req = _update_request(name, defaults, mask, rate_limit)
        return (await self.call(self.admin.UpdateQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    async def delete_queue(self, name: str, *, force: bool = False) -> int:
        """Deletes the queue's settings, and with `force` its finished jobs; returns how many jobs went.
        Raises QueueNotEmpty while it has jobs (with force: PENDING or RUNNING ones)."""
        req = adm.DeleteQueueRequest(name=name, force=force)
        return (await self.call(self.admin.DeleteQueue, req, rpc_timeout=self.timeout)).deleted_jobs

    async def lease(
        self,
        queues: Sequence[str],
        *,
        max_jobs: int = 1,
        wait: timedelta = timedelta(0),
        lease_duration: timedelta | None = None,
        worker_id: str = "",
        retry: RetryPolicy | None = None,
    ) -> builtins.list[qs.LeasedJob]:
        """Claims up to max_jobs ready jobs, waiting up to `wait` for one (long poll)."""
        req = qs.LeaseRequest(queues=list(queues), max_jobs=max_jobs, worker_id=worker_id, wait=duration(wait))
        if lease_duration is not None:
            req.lease_duration.CopyFrom(duration(lease_duration))
        timeout = wait.total_seconds() + (self.timeout or DEFAULT_TIMEOUT)
        return builtins.list((await self.call(self.stub.Lease, req, retry=retry, rpc_timeout=timeout)).jobs)


class Client:
    """The blocking twin of AsyncClient, over a plain (thread-safe) gRPC channel: for scripts and web handlers."""

    def __init__(
        self,
        address: str | None = None,
        *,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: float | None = DEFAULT_TIMEOUT,
        insecure: bool | None = None,
    ) -> None:
        self.connection = Connection.resolve(
            address,
            tls=tls,
            root_certificates=root_certificates,
            certificate_chain=certificate_chain,
            private_key=private_key,
            token=token,
            metadata=metadata,
            insecure=insecure,
        )
        self.channel = self.connection.sync_channel()
        self.stub = QueueServiceStub(self.channel)
        self.admin = AdminServiceStub(self.channel)
        self.retry = retry
        self.timeout = timeout
        # Create, list, change, pause, trigger and delete schedules (docs/schedules.md).
        self.schedules = Schedules(self)
        # Create, read and cancel pipelines (docs/pipelines.md).
        self.pipelines = Pipelines(self)

    def pipeline(self, name: str, steps: Iterable[Step], **options: Any) -> Pipeline:
        """Creates a pipeline of these steps in one transaction (pipelines.create)."""
        return self.pipelines.create(name, steps, **options)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        retry: RetryPolicy | None = None,
        rpc_timeout: float | None = DEFAULT_TIMEOUT,
        trace: Mapping[str, str] | None = None,
    ) -> Resp:
        """One unary call with the client's metadata (and `trace`, the call's trace context);
        UNAVAILABLE retried when `retry` is given."""
        delays = (retry or NO_RETRY).delays()
        metadata = (*self.connection.metadata, *trace.items()) if trace else self.connection.metadata
        while True:
            try:
                return method(request, metadata=metadata, timeout=rpc_timeout)
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.Call) else None
                delay = next(delays, None) if code in RETRYABLE else None
                if delay is None:
                    raise from_rpc_error(err) from err
            time.sleep(delay)

    def enqueue(self, queue: str, payload: Any, **options: Unpack[EnqueueOptions]) -> Job:
        """Creates a job; `payload` is bytes or anything json.dumps accepts. Within an
        OpenTelemetry span, the job's headers carry its trace context (docs/observability.md)."""
        req = enqueue_request(queue, payload, **options)
        with send_span(queue) as context:
            req.headers.update(context or {})
            return self.call(self.stub.Enqueue, req, retry=self.retry, rpc_timeout=self.timeout, trace=context).job

    def enqueue_many(
        self, queue: str, payloads: Iterable[Any], **options: Unpack[EnqueueOptions]
    ) -> builtins.list[Job]:
        """Creates one job per payload in one transaction, all or nothing."""
        req = qs.EnqueueBatchRequest(jobs=batch_requests(queue, payloads, options))
        with send_span(queue, len(req.jobs)) as context:
            for job in req.jobs if context else ():
                job.headers.update(context or {})
            resp = self.call(self.stub.EnqueueBatch, req, retry=self.retry, rpc_timeout=self.timeout, trace=context)
        return [r.job for r in resp.results]

    def get(self, job_id: str, *, include_logs: bool = False) -> Job:
        """The job with its attempts; with include_logs, each attempt's log lines (Attempt.logs)."""
        req = qs.GetJobRequest(job_id=job_id, include_logs=include_logs)
        return self.call(self.stub.GetJob, req, retry=self.retry, rpc_timeout=self.timeout).job

    def list(self, where: Filter | None = None, *, order: str = "newest", page_size: int = 100) -> Iterator[Job]:
        """Every matching job, fetching pages as the iteration goes; order is "newest" or "oldest"."""
        token = ""
        while True:
            req = _list_request(where, order, page_size, token)
            resp = self.call(self.stub.ListJobs, req, retry=self.retry, rpc_timeout=self.timeout)
            yield from resp.jobs
            token = resp.next_page_token
            if not token:
                return

    def watch(self, job_id: str, *, include: Sequence[str] = ()) -> Iterator[Job]:
        """The job now, then each change, ending after a terminal state; reconnects on UNAVAILABLE."""
        last: Job | None = None
        for resp in self.stream(self.stub.WatchJob, _watch_request(job_id, include)):
            if resp.job != last:  # a reconnect starts with the snapshot already seen
                last = resp.job
                yield resp.job

    def tail(
        self,
        queues: Sequence[str] = (),
        kinds: Sequence[str] = (),
        *,
        error_contains: str = "",
    ) -> Iterator[qs.TailJobsResponse]:
        """Job events as they happen, on every replica (never ends; reconnects on UNAVAILABLE).
        kinds: enqueued, started, succeeded, failed, dead, cancelled, pending, waiting."""
        # The server never ends a tail on its own; if it does, tail again.
        yield from self.stream(self.stub.TailJobs, tail_request(queues, kinds, error_contains), reopen_on_end=True)

    def stream(
        self, method: grpc.UnaryStreamMultiCallable[Req, Resp], request: Req, *, reopen_on_end: bool = False
    ) -> Iterator[Resp]:
        """A server stream's responses with the client's metadata, opened again after UNAVAILABLE
        (with `retry`'s backoff, reset by each response) and, with reopen_on_end, after it ends."""
        delays = self.retry.delays()
        while True:
            call = method(request, metadata=self.connection.metadata)
            try:
                for resp in call:
                    delays = self.retry.delays()
                    yield resp
                if not reopen_on_end:
                    return
                continue
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.Call) else None
                delay = next(delays, None) if code in RETRYABLE else None
                if delay is None:
                    raise from_rpc_error(err) from err
            finally:
                call.cancel()
            time.sleep(delay)

    def cancel(self, job_id: str) -> Job:
        """PENDING ends CANCELLED now; a RUNNING job's worker is told by its next heartbeat."""
        req = qs.CancelJobRequest(job_id=job_id)
        return self.call(self.stub.CancelJob, req, retry=self.retry, rpc_timeout=self.timeout).job

    def requeue(self, *job_ids: str, include_succeeded: bool = False) -> builtins.list[Job]:
        """Puts DEAD or CANCELLED (or SUCCEEDED, when asked) jobs back to PENDING with fresh attempts."""
        req = _requeue_request(job_ids, None, include_succeeded, 0)
        return builtins.list(self.call(self.stub.Requeue, req, rpc_timeout=self.timeout).jobs)

    def requeue_matching(
        self, where: Filter, *, include_succeeded: bool = False, limit: int = 1000, everything: bool = False
    ) -> builtins.list[Job]:
        """Requeues at most `limit` matching jobs; call again until it returns none. A filter that
        sets nothing (every finished job of every queue) is refused unless `everything` is set."""
        req = _requeue_request((), where, include_succeeded, limit, everything)
        return builtins.list(self.call(self.stub.Requeue, req, rpc_timeout=self.timeout).jobs)

    def queues(self) -> builtins.list[Queue]:
        """Every queue, by name, with its stats by derived status (read page by page)."""
        found: builtins.list[Queue] = []
        token = ""
        while True:
            req = adm.ListQueuesRequest(page_token=token)
            resp = self.call(self.admin.ListQueues, req, retry=self.retry, rpc_timeout=self.timeout)
            found += resp.queues
            token = resp.next_page_token
            if not token:
                return found

    def queue(self, name: str) -> Queue:
        """One queue with its settings and stats."""
        req = adm.GetQueueRequest(name=name)
        return (self.call(self.admin.GetQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    def pause(self, name: str) -> Queue:
        """Stops leasing the queue's jobs; enqueue still works and running jobs finish."""
        req = adm.PauseQueueRequest(name=name)
        return (self.call(self.admin.PauseQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    def resume(self, name: str) -> Queue:
        """Leases the queue's jobs again."""
        req = adm.ResumeQueueRequest(name=name)
        return (self.call(self.admin.ResumeQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    def update_queue(
        self,
        name: str,
        defaults: adm.QueueDefaults,
        mask: Sequence[str] = (),
        *,
        rate_limit: job_pb2.RateLimit | None = None,
    ) -> Queue:
        """Writes the queue's job defaults: the fields in `mask`, or without one, those set in `defaults`;
        and its rate limit, if given or if `mask` names "rate_limit" (then None removes it)."""
        req = _update_request(name, defaults, mask, rate_limit)
        return (self.call(self.admin.UpdateQueue, req, retry=self.retry, rpc_timeout=self.timeout)).queue

    def delete_queue(self, name: str, *, force: bool = False) -> int:
        """Deletes the queue's settings, and with `force` its finished jobs; returns how many jobs went.
        Raises QueueNotEmpty while it has jobs (with force: PENDING or RUNNING ones)."""
        req = adm.DeleteQueueRequest(name=name, force=force)
        return self.call(self.admin.DeleteQueue, req, rpc_timeout=self.timeout).deleted_jobs

    def create_api_key(
        self, name: str, scopes: Sequence[str], queues: Sequence[str] = (), *, expires_in: timedelta | None = None
    ) -> tuple[adm.ApiKey, str]:
        """Makes an API key (admin only); returns it and its text, which is never shown again."""
        req = adm.CreateApiKeyRequest(name=name, scopes=list(scopes), queues=list(queues))
        if expires_in is not None:
            req.expires_in.CopyFrom(duration(expires_in))
        made = self.call(self.admin.CreateApiKey, req, rpc_timeout=self.timeout)
        return made.api_key, made.key

    def api_keys(self, *, include_revoked: bool = False) -> builtins.list[adm.ApiKey]:
        req = adm.ListApiKeysRequest(include_revoked=include_revoked)
        return builtins.list(self.call(self.admin.ListApiKeys, req, rpc_timeout=self.timeout).api_keys)

    def revoke_api_key(self, key_id: str) -> adm.ApiKey:
        """Revokes a key; every server refuses it within seconds. Revoking it again changes nothing."""
        req = adm.RevokeApiKeyRequest(id=key_id)
        return self.call(self.admin.RevokeApiKey, req, rpc_timeout=self.timeout).api_key


def is_terminal(job: Job) -> bool:
    return job.state in _TERMINAL


def tail_request(queues: Sequence[str], kinds: Sequence[str], error_contains: str) -> qs.TailJobsRequest:
    """The TailJobs request for these event kinds, by name ("dead", "failed", ...)."""
    try:
        values = [qs.JobEvent.Kind.Value(f"KIND_{k.upper()}") for k in kinds]
    except ValueError as err:
        raise ValueError(f"not an event kind: {err}") from err
    return qs.TailJobsRequest(queues=queues, kinds=values, error_contains=error_contains)


def _watch_request(job_id: str, include: Sequence[str]) -> qs.WatchJobRequest:
    req = qs.WatchJobRequest(job_id=job_id)
    req.read_mask.paths.extend(include)
    return req
