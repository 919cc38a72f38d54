"""spool.v1.PipelineService: validate, call the pipeline store, convert back. No SQL here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from spool.v1 import pipeline_service_pb2 as ps
from spoold.api import pipeline_convert as pc
from spoold.api import validate as v
from spoold.api.access import Access
from spoold.api.calls import CallContext as Context
from spoold.api.errors import stream, unary
from spoold.config import Settings
from spoold.errors import PipelineNotFound, ShuttingDown
from spoold.pipeline_watch import PipelineWatchHub
from spoold.pipelines import Pipeline, Step
from spoold.queue_limit import QueueLimit
from spoold.store.pipelines import PipelineStore


class PipelineService:
    def __init__(
        self,
        store: PipelineStore,
        settings: Settings,
        access: Access,
        queue_limit: QueueLimit | None = None,
        hub: PipelineWatchHub | None = None,
    ) -> None:
        self._hub = hub
        self._store = store
        self._settings = settings
        self._access = access
        self._queue_limit = queue_limit

    @unary
    async def EnqueuePipeline(self, request: ps.EnqueuePipelineRequest, context: Context) -> ps.EnqueuePipelineResponse:
        new = pc.new_pipeline(request, self._settings, datetime.now(UTC))
        for field, queue in pc.queues(new).items():
            self._access.queues(field, [queue], indexed=False)
        if self._queue_limit is not None:
            await self._queue_limit.admit(pc.queues(new).values(), "steps.job.queue")
        pipeline, deduplicated = await self._store.enqueue(new)
        return ps.EnqueuePipelineResponse(pipeline=pc.pipeline_proto(pipeline), deduplicated=deduplicated)

    @unary
    async def GetPipeline(self, request: ps.GetPipelineRequest, context: Context) -> ps.GetPipelineResponse:
        pipeline_id = v.positive_id("pipeline_id", request.pipeline_id)
        return ps.GetPipelineResponse(pipeline=pc.pipeline_proto(self._visible(await self._store.get(pipeline_id))))

    @unary
    async def CancelPipeline(self, request: ps.CancelPipelineRequest, context: Context) -> ps.CancelPipelineResponse:
        pipeline_id = v.positive_id("pipeline_id", request.pipeline_id)
        self._visible(await self._store.get(pipeline_id))
        return ps.CancelPipelineResponse(pipeline=pc.pipeline_proto(await self._store.cancel(pipeline_id)))

    @unary
    async def PausePipeline(self, request: ps.PausePipelineRequest, context: Context) -> ps.PausePipelineResponse:
        pipeline_id = v.positive_id("pipeline_id", request.pipeline_id)
        self._visible(await self._store.get(pipeline_id))
        return ps.PausePipelineResponse(pipeline=pc.pipeline_proto(await self._store.pause(pipeline_id, True)))

    @unary
    async def ResumePipeline(self, request: ps.ResumePipelineRequest, context: Context) -> ps.ResumePipelineResponse:
        pipeline_id = v.positive_id("pipeline_id", request.pipeline_id)
        self._visible(await self._store.get(pipeline_id))
        return ps.ResumePipelineResponse(pipeline=pc.pipeline_proto(await self._store.pause(pipeline_id, False)))

    @unary
    async def RetryStep(self, request: ps.RetryStepRequest, context: Context) -> ps.RetryStepResponse:
        retry = pc.step_retry(request, self._settings)
        await self._access.job(retry.job_id)
        return ps.RetryStepResponse(pipeline=pc.pipeline_proto(self._visible(await self._store.retry(retry))))

    @unary
    async def ListPipelines(self, request: ps.ListPipelinesRequest, context: Context) -> ps.ListPipelinesResponse:
        page = pc.pipeline_page(request)
        found, more = await self._store.list(page, self._access.like())
        return ps.ListPipelinesResponse(
            pipelines=[pc.pipeline_proto(p) for p in found], next_page_token=pc.next_pipelines_token(page, found, more)
        )

    @stream
    async def WatchPipeline(
        self, request: ps.WatchPipelineRequest, context: Context
    ) -> AsyncIterator[ps.WatchPipelineResponse]:
        pipeline_id = v.positive_id("pipeline_id", request.pipeline_id)
        self._visible(await self._store.get(pipeline_id, with_attempts=False))
        if self._hub is None:
            raise ShuttingDown("this server does not serve WatchPipeline")
        sent: dict[str, Step] | None = None
        async for p in self._hub.follow(pipeline_id):
            # A follow-up step in a queue the key may not read hides the pipeline from then on.
            yield pc.watch_response(self._visible(p), sent, datetime.now(UTC))
            sent = {s.name: s for s in p.steps}

    def _visible(self, p: Pipeline) -> Pipeline:
        """A caller sees a pipeline when it may see every step's queue; else it does not exist."""
        if not all(self._access.sees(s.job.queue) for s in p.steps):
            raise PipelineNotFound(p.id)
        return p
