"""Helpers for the pipeline tests: a PipelineService stub, step specs, and finishing leases."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import pipeline_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from tests.helpers import enqueue_request

PStub = pipeline_service_pb2_grpc.PipelineServiceStub


@pytest.fixture
def pipes(channel: grpc.aio.Channel) -> PStub:
    return pipeline_service_pb2_grpc.PipelineServiceStub(channel)


def step(name: str, queue: str = "q", after: tuple[str, ...] = (), payload: object = None, **job: Any) -> ps.StepSpec:
    return ps.StepSpec(name=name, depends_on=list(after), job=enqueue_request(queue, payload or {"step": name}, **job))


def request(*steps: ps.StepSpec, name: str = "export", **fields: Any) -> ps.EnqueuePipelineRequest:
    return ps.EnqueuePipelineRequest(name=name, steps=list(steps), **fields)


def result(value: object) -> bytes:
    return json.dumps(value).encode()


def by_name(p: ps.Pipeline) -> dict[str, ps.PipelineStep]:
    return {s.name: s for s in p.steps}


async def ack(stub: Any, leased: qs.LeasedJob, value: object = None) -> None:
    await stub.Ack(qs.AckRequest(job_id=leased.job.id, lease_token=leased.lease_token, result=result(value)))
