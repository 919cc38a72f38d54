"""Pipelines worked by real Python Workers: steps retry on their own, fan-out and join, repair."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest

import spool
from spool import step
from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spoold.config import Settings
from tests.client.conftest import serving
from tests.conftest import test_settings as settings_for_tests
from tests.conftest import wait_until

Job = job_pb2.Job
P = ps.Pipeline
FAST = spool.Backoff(kind="fixed", initial=timedelta(milliseconds=20), jitter=False)


@pytest.fixture
def settings() -> Settings:
    return settings_for_tests(reaper_interval=timedelta(milliseconds=100))


def make_worker(client: spool.AsyncClient) -> spool.Worker:
    return spool.Worker(client, concurrency=8, poll_wait=timedelta(seconds=2))


async def wait_pipeline(client: spool.AsyncClient, pipeline_id: str, state: int, within: float = 30) -> ps.Pipeline:
    async def reached() -> bool:
        return (await client.pipelines.get(pipeline_id)).state == state

    await wait_until(reached, within=within)
    return await client.pipelines.get(pipeline_id)


async def test_only_the_failing_step_runs_again(client: spool.AsyncClient) -> None:
    ran: Counter[str] = Counter()
    worker = make_worker(client)

    @worker.handler("extract")
    async def extract(job: spool.ActiveJob) -> dict[str, int]:
        ran["extract"] += 1
        return {"rows": job.json()["rows"]}

    @worker.handler("transform")
    async def transform(job: spool.ActiveJob) -> int:
        ran["transform"] += 1
        return int(job.parents["extract"]["rows"]) * 2

    @worker.handler("enrich")
    async def enrich(job: spool.ActiveJob) -> int:
        ran["enrich"] += 1
        if ran["enrich"] <= 2:
            raise RuntimeError(f"enrichment service down (attempt {job.attempt})")
        return int(job.parents["transform"]) + 1

    @worker.handler("notify")
    async def notify(job: spool.ActiveJob) -> str:
        ran["notify"] += 1
        return f"sent {job.parents['enrich']}"

    p = await client.pipeline(
        "report",
        steps=[
            step("extract", payload={"rows": 20}),
            step("transform", after=["extract"]),
            step("enrich", after=["transform"], max_attempts=3, backoff=FAST),
            step("notify", after=["enrich"]),
        ],
    )
    async with serving(worker):
        done = await wait_pipeline(client, p.id, P.STATE_SUCCEEDED)
    assert ran == {"extract": 1, "transform": 1, "enrich": 3, "notify": 1}
    assert [len(s.job.attempts) for s in done.steps] == [1, 1, 3, 1]
    assert done.steps[3].job.result == b'"sent 41"'


async def test_fan_out_to_100_and_a_join_that_runs_once_with_every_result(client: spool.AsyncClient) -> None:
    joined: list[dict[str, int]] = []
    worker = make_worker(client)

    @worker.handler("split")
    async def split(job: spool.ActiveJob) -> int:
        return 1000

    @worker.handler("part")
    async def part(job: spool.ActiveJob) -> int:
        return int(job.parents["split"]) + int(job.json()["i"])

    @worker.handler("join")
    async def join(job: spool.ActiveJob) -> int:
        joined.append(dict(job.parents))
        return sum(job.parents.values())

    parts = [step(f"part{i}", "part", payload={"i": i}, after=["split"]) for i in range(100)]
    p = await client.pipeline("wide", [step("split"), *parts, step("join", after=[s.name for s in parts])])
    async with serving(worker):
        done = await wait_pipeline(client, p.id, P.STATE_SUCCEEDED)
    assert len(joined) == 1 and joined[0] == {f"part{i}": 1000 + i for i in range(100)}
    assert done.steps[-1].job.result == str(sum(1000 + i for i in range(100))).encode()


async def test_a_dead_step_then_requeue_completes_with_earlier_steps_run_once(client: spool.AsyncClient) -> None:
    ran: Counter[str] = Counter()
    broken = True
    worker = make_worker(client)

    @worker.handler("a")
    async def a(job: spool.ActiveJob) -> int:
        ran["a"] += 1
        return 1

    @worker.handler("b")
    async def b(job: spool.ActiveJob) -> int:
        ran["b"] += 1
        if broken:
            raise spool.Permanent("bad configuration")
        return int(job.parents["a"]) + 1

    @worker.handler("c")
    async def c(job: spool.ActiveJob) -> int:
        ran["c"] += 1
        return int(job.parents["b"]) + 1

    p = await client.pipeline("repair", [step("a"), step("b", after=["a"]), step("c", after=["b"])])
    async with serving(worker):
        failed = await wait_pipeline(client, p.id, P.STATE_FAILED)
        assert [s.job.state for s in failed.steps] == [Job.STATE_SUCCEEDED, Job.STATE_DEAD, Job.STATE_WAITING]
        broken = False
        await client.requeue(failed.steps[1].job.id)
        done = await wait_pipeline(client, p.id, P.STATE_SUCCEEDED)
    assert ran == {"a": 1, "b": 2, "c": 1}
    assert done.steps[2].job.result == b"3"


async def test_a_step_adds_steps_at_run_time_and_a_job_follows_up(client: spool.AsyncClient) -> None:
    joined: list[dict[str, int]] = []
    worker = make_worker(client)

    @worker.handler("plan")
    async def plan(job: spool.ActiveJob) -> int:
        n = int(job.json()["parts"])
        for i in range(n):
            job.add_step(step(f"part{i}", "piece", payload={"i": i}))
        job.add_step(step("join", "gather", after=[f"part{i}" for i in range(n)]))
        job.follow_up("audit", {"planned": n})
        return n

    @worker.handler("piece")
    async def piece(job: spool.ActiveJob) -> int:
        return int(job.json()["i"]) * 10

    @worker.handler("gather")
    async def gather(job: spool.ActiveJob) -> int:
        joined.append(dict(job.parents))
        return sum(job.parents.values())

    @worker.handler("audit")
    async def audit(job: spool.ActiveJob) -> None:
        return None

    p = await client.pipeline("dynamic", [step("plan", payload={"parts": 4})])
    async with serving(worker):
        done = await wait_pipeline(client, p.id, P.STATE_SUCCEEDED)
        audits = [j async for j in client.list(spool.Filter(queues=["audit"]))]
    assert joined == [{f"part{i}": i * 10 for i in range(4)}]
    assert [s.name for s in done.steps] == ["plan", "part0", "part1", "part2", "part3", "join"]
    assert done.steps[-1].job.result == b"60"
    assert len(audits) == 1 and json.loads(audits[0].payload) == {"planned": 4}
