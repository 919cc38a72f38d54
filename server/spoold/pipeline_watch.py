"""WatchPipeline's engine: WatchJob's (watch.py), keyed by pipeline. A watched pipeline's steps are
registered as watched jobs (under a server id of this hub's own, so that WatchJob's streams on the
same jobs are not disturbed), so the trigger that wakes WatchJob wakes it too, and any change of a
step re-reads the pipeline once. Steps that appear later (an Ack's follow-ups) are registered when a
read first sees them; the poll of pipeline versions backs up NOTIFY, as it does for jobs."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import timedelta

import asyncpg

from spoold.config import Settings
from spoold.notify import Listener
from spoold.pipelines import Pipeline
from spoold.store.pipeline_watches import PipelineWatchStore
from spoold.store.pipelines import PipelineStore
from spoold.store.watches import WatchStore
from spoold.watch import Hub, Streams, WatchPoller


class PipelineWatchHub(Hub[Pipeline]):
    def __init__(
        self,
        pipelines: PipelineStore,
        store: PipelineWatchStore,
        watches: WatchStore,
        listener: Listener,
        buffer: int,
        streams: Streams,
    ) -> None:
        super().__init__(watches, listener, buffer, streams)
        self._pipelines = pipelines
        self._store = store
        # Each registered step's pipeline: what a NOTIFY about the step wakes.
        self._step_of: dict[int, int] = {}

    async def _read(self, key: int) -> Pipeline:
        p = await self._pipelines.get(key, with_attempts=False)
        new = [s.job.id for s in p.steps if s.job.id not in self._step_of]
        if new:
            self._step_of.update(dict.fromkeys(new, key))
            await self._watches.register(new)
        return p

    def _ends(self, item: Pipeline) -> bool:
        return item.finished

    async def _register(self, keys: Collection[int]) -> None:
        steps = await self._store.step_ids(keys)
        self._step_of.update(steps)
        await self._watches.register(list(steps))

    async def _unregister(self, keys: Collection[int]) -> None:
        gone = set(keys)
        steps = [s for s, p in self._step_of.items() if p in gone]
        for s in steps:
            del self._step_of[s]
        await self._watches.unregister(steps)

    async def _versions(self, keys: Collection[int]) -> dict[int, str]:
        return await self._store.versions(keys)

    def _key_of(self, job_id: int) -> int | None:
        return self._step_of.get(job_id)


class PipelineWatchPoller(WatchPoller):
    name = "pipeline-watch-poller"


def pipeline_hub(
    pool: asyncpg.Pool,
    pipelines: PipelineStore,
    listener: Listener,
    settings: Settings,
    streams: Streams,
    ttl: timedelta,
) -> tuple[PipelineWatchHub, PipelineWatchPoller]:
    """The hub, started, and its poller (for the supervised loops), counted with WatchJob's streams."""
    watches = WatchStore(pool, uuid.uuid4(), ttl)
    hub = PipelineWatchHub(pipelines, PipelineWatchStore(pool), watches, listener, settings.watch_buffer, streams)
    hub.start()
    poll = settings.watch_poll_interval.total_seconds()
    return hub, PipelineWatchPoller(hub, poll, max(1, int(ttl.total_seconds() / 4 / poll)))
