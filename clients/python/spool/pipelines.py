"""Pipelines from Python: `step(...)` describes a step, and client.pipelines (or client.pipeline)
creates, reads and cancels pipelines on the server (PipelineService). See docs/pipelines.md.

    client.pipeline("export", steps=[
        step("extract", payload={"report": 7}),
        step("render", after=["extract"]),
        step("upload", after=["render"], max_attempts=5),
    ])
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

from spool._convert import EnqueueOptions, decode_json, encode, job_request, new_idempotency_key
from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1.pipeline_service_pb2_grpc import PipelineServiceStub

if TYPE_CHECKING:
    from spool.client import AsyncClient, Client

Pipeline = ps.Pipeline


@dataclass(frozen=True)
class Step:
    """One step: a job on `queue` (by default the step's name) that runs after the steps named in `after`."""

    name: str
    queue: str
    payload: Any = None
    after: tuple[str, ...] = ()
    options: EnqueueOptions = field(default_factory=lambda: EnqueueOptions())

    def to_proto(self) -> ps.StepSpec:
        job = job_request(self.queue, {} if self.payload is None else self.payload, **self.options)
        return ps.StepSpec(name=self.name, depends_on=list(self.after), job=job)


def step(
    name: str,
    queue: str | None = None,
    *,
    payload: Any = None,
    after: Iterable[str] = (),
    **options: Unpack[EnqueueOptions],
) -> Step:
    """A step named `name` on `queue` (default: its name), after the steps in `after`, with
    Client.enqueue's options (retry policy, timeouts, priority, keys; no idempotency key)."""
    return Step(name, queue or name, payload, tuple(after), options)


def pipeline_request(
    name: str, steps: Iterable[Step], *, idempotency_key: str | None = None, on_failure: Step | None = None
) -> ps.EnqueuePipelineRequest:
    """With a generated idempotency key when none is given, so a retried call finds the first pipeline."""
    req = ps.EnqueuePipelineRequest(
        name=name, steps=[s.to_proto() for s in steps], idempotency_key=idempotency_key or new_idempotency_key()
    )
    if on_failure is not None:
        req.on_failure.CopyFrom(on_failure.to_proto())
    return req


def retry_request(job_id: str, payload: Any, downstream: bool) -> ps.RetryStepRequest:
    """RetryStep: the step alone or with its downstream; `payload` (unless KEEP_PAYLOAD) replaces its payload."""
    mode = ps.RetryStepRequest.MODE_DOWNSTREAM if downstream else ps.RetryStepRequest.MODE_FAILED_ONLY
    req = ps.RetryStepRequest(job_id=job_id, mode=mode)
    if payload is not KEEP_PAYLOAD:
        req.payload, req.content_type = encode(payload)
    return req


KEEP_PAYLOAD: Any = object()


def results(outcomes: Mapping[str, job_pb2.StepOutcome]) -> dict[str, Any]:
    """The parents' results by step name: decoded JSON, bytes as they are, None for no result."""
    out: dict[str, Any] = {}
    for name, o in outcomes.items():
        if o.result_content_type.split(";")[0].strip().endswith("json"):
            out[name] = decode_json(o.result)
        else:
            out[name] = o.result or None
    return out


_STATE_NAMES = {k.removeprefix("STATE_").lower(): v for k, v in ps.Pipeline.State.items() if v}


def list_request(
    states: Sequence[str], name_prefix: str, paused: bool | None, page_size: int, token: str
) -> ps.ListPipelinesRequest:
    """ListPipelines' request; states by name ("running", "succeeded", "failed", "cancelled")."""
    unknown = [s for s in states if s.lower() not in _STATE_NAMES]
    if unknown:
        raise ValueError(f"unknown pipeline state {unknown[0]!r}; the states are {', '.join(_STATE_NAMES)}")
    req = ps.ListPipelinesRequest(
        states=[_STATE_NAMES[s.lower()] for s in states], name_prefix=name_prefix, page_size=page_size, page_token=token
    )
    if paused is not None:
        req.paused = paused
    return req


def merged(current: Pipeline | None, resp: ps.WatchPipelineResponse) -> Pipeline:
    """The pipeline as it is after a WatchPipeline answer: a snapshot replaces it, a change updates
    the steps it names (and adds the new ones) and the pipeline's own fields."""
    if resp.snapshot or current is None:
        return resp.pipeline
    out = Pipeline()
    out.CopyFrom(resp.pipeline)
    changed = {s.name: s for s in resp.pipeline.steps}
    del out.steps[:]
    for s in current.steps:
        out.steps.append(changed.pop(s.name, s))
    out.steps.extend(changed.values())
    return out


class Pipelines:
    """client.pipelines on the blocking Client."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._stub = PipelineServiceStub(client.channel)

    def _call(self, method: Any, request: Any) -> Any:
        c = self._client
        return c.call(method, request, retry=c.retry, rpc_timeout=c.timeout)

    def create(
        self, name: str, steps: Iterable[Step], *, idempotency_key: str | None = None, on_failure: Step | None = None
    ) -> Pipeline:
        req = pipeline_request(name, steps, idempotency_key=idempotency_key, on_failure=on_failure)
        return self._call(self._stub.EnqueuePipeline, req).pipeline  # type: ignore[no-any-return]

    def get(self, pipeline_id: str) -> Pipeline:
        return self._call(self._stub.GetPipeline, ps.GetPipelineRequest(pipeline_id=pipeline_id)).pipeline  # type: ignore[no-any-return]

    def cancel(self, pipeline_id: str) -> Pipeline:
        return self._call(self._stub.CancelPipeline, ps.CancelPipelineRequest(pipeline_id=pipeline_id)).pipeline  # type: ignore[no-any-return]

    def retry(self, job_id: str, payload: Any = KEEP_PAYLOAD, *, downstream: bool = False) -> Pipeline:
        """Fix and resume: the failed step runs again (with `payload` if given); with downstream,
        the steps after it run again too. Finished steps keep their results."""
        return self._call(self._stub.RetryStep, retry_request(job_id, payload, downstream)).pipeline  # type: ignore[no-any-return]

    def pause(self, pipeline_id: str) -> Pipeline:
        return self._call(self._stub.PausePipeline, ps.PausePipelineRequest(pipeline_id=pipeline_id)).pipeline  # type: ignore[no-any-return]

    def resume(self, pipeline_id: str) -> Pipeline:
        return self._call(self._stub.ResumePipeline, ps.ResumePipelineRequest(pipeline_id=pipeline_id)).pipeline  # type: ignore[no-any-return]

    def list(
        self, states: Sequence[str] = (), *, name_prefix: str = "", paused: bool | None = None, page_size: int = 100
    ) -> Iterator[Pipeline]:
        """Every matching pipeline (without its steps), newest first, fetching pages as it goes."""
        token = ""
        while True:
            resp = self._call(self._stub.ListPipelines, list_request(states, name_prefix, paused, page_size, token))
            yield from resp.pipelines
            token = resp.next_page_token
            if not token:
                return

    def watch(self, pipeline_id: str) -> Iterator[Pipeline]:
        """The pipeline now, then again after each change of its steps, every step in each; ends once
        it is finished. Reconnects on UNAVAILABLE (the new stream starts with a snapshot)."""
        current: Pipeline | None = None
        for resp in self._client.stream(self._stub.WatchPipeline, ps.WatchPipelineRequest(pipeline_id=pipeline_id)):
            current = merged(current, resp)
            yield current


class AsyncPipelines:
    """client.pipelines on the AsyncClient."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._stub = PipelineServiceStub(client.channel)

    async def _call(self, method: Any, request: Any) -> Any:
        c = self._client
        return await c.call(method, request, retry=c.retry, rpc_timeout=c.timeout)

    async def create(
        self, name: str, steps: Iterable[Step], *, idempotency_key: str | None = None, on_failure: Step | None = None
    ) -> Pipeline:
        req = pipeline_request(name, steps, idempotency_key=idempotency_key, on_failure=on_failure)
        return (await self._call(self._stub.EnqueuePipeline, req)).pipeline  # type: ignore[no-any-return]

    async def get(self, pipeline_id: str) -> Pipeline:
        req = ps.GetPipelineRequest(pipeline_id=pipeline_id)
        return (await self._call(self._stub.GetPipeline, req)).pipeline  # type: ignore[no-any-return]

    async def cancel(self, pipeline_id: str) -> Pipeline:
        req = ps.CancelPipelineRequest(pipeline_id=pipeline_id)
        return (await self._call(self._stub.CancelPipeline, req)).pipeline  # type: ignore[no-any-return]

    async def retry(self, job_id: str, payload: Any = KEEP_PAYLOAD, *, downstream: bool = False) -> Pipeline:
        """As Pipelines.retry."""
        req = retry_request(job_id, payload, downstream)
        return (await self._call(self._stub.RetryStep, req)).pipeline  # type: ignore[no-any-return]

    async def pause(self, pipeline_id: str) -> Pipeline:
        req = ps.PausePipelineRequest(pipeline_id=pipeline_id)
        return (await self._call(self._stub.PausePipeline, req)).pipeline  # type: ignore[no-any-return]

    async def resume(self, pipeline_id: str) -> Pipeline:
        req = ps.ResumePipelineRequest(pipeline_id=pipeline_id)
        return (await self._call(self._stub.ResumePipeline, req)).pipeline  # type: ignore[no-any-return]

    async def list(
        self, states: Sequence[str] = (), *, name_prefix: str = "", paused: bool | None = None, page_size: int = 100
    ) -> AsyncIterator[Pipeline]:
        """As Pipelines.list."""
        token = ""
        while True:
            req = list_request(states, name_prefix, paused, page_size, token)
            resp = await self._call(self._stub.ListPipelines, req)
            for p in resp.pipelines:
                yield p
            token = resp.next_page_token
            if not token:
                return

    async def watch(self, pipeline_id: str) -> AsyncIterator[Pipeline]:
        """As Pipelines.watch."""
        current: Pipeline | None = None
        req = ps.WatchPipelineRequest(pipeline_id=pipeline_id)
        async for resp in self._client.stream(self._stub.WatchPipeline, req):
            current = merged(current, resp)
            yield current
