"""PipelineService messages to validated domain values, and pipelines back to proto."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
from google.protobuf.internal.containers import MessageMap

from spool.v1 import job_pb2
from spool.v1 import pipeline_service_pb2 as ps
from spool.v1 import queue_service_pb2 as qs
from spoold.api import convert, page_token
from spoold.api import validate as v
from spoold.config import Settings
from spoold.errors import InvalidArgument
from spoold.model import JSON, Ack, FollowUp, JobState, is_json
from spoold.pipelines import (
    MAX_STEPS,
    NewPipeline,
    NewStep,
    Pipeline,
    PipelineFilter,
    PipelinePage,
    PipelineState,
    Step,
    StepRetry,
    ordered,
)
from spoold.store import rows

# The most jobs one Ack may create.
MAX_FOLLOW_UPS = 1000

_STATES = {
    PipelineState.RUNNING: ps.Pipeline.STATE_RUNNING,
    PipelineState.SUCCEEDED: ps.Pipeline.STATE_SUCCEEDED,
    PipelineState.FAILED: ps.Pipeline.STATE_FAILED,
    PipelineState.CANCELLED: ps.Pipeline.STATE_CANCELLED,
}
_STATE_OF = {number: state for state, number in _STATES.items()}
LIST_DEFAULT_SIZE = 100
LIST_MAX_SIZE = 1000
_LISTING = "pipelines"


def _step(spec: ps.StepSpec, settings: Settings, now: datetime, prefix: str) -> NewStep:
    name = v.text(f"{prefix}name", spec.name, 128)
    if not name:
        raise InvalidArgument(f"{prefix}name", "required: every step has a name")
    if not spec.HasField("job"):
        raise InvalidArgument(f"{prefix}job", f"required: step {name!r} needs its job (at least a queue)")
    if spec.job.idempotency_key:
        raise InvalidArgument(
            f"{prefix}job.idempotency_key", f"step {name!r}: a step has none; the pipeline's key covers its steps"
        )
    depends_on = tuple(v.text(f"{prefix}depends_on[{i}]", d, 128) for i, d in enumerate(spec.depends_on))
    job = convert.new_job(spec.job, settings, now, prefix=f"{prefix}job.")
    return NewStep(name, tuple(dict.fromkeys(depends_on)), job)


def new_pipeline(req: ps.EnqueuePipelineRequest, settings: Settings, now: datetime) -> NewPipeline:
    name = v.text("name", req.name, 128)
    if not name:
        raise InvalidArgument("name", "required: what the pipeline is, e.g. 'export'")
    if not req.steps:
        raise InvalidArgument("steps", "at least one step is required")
    if len(req.steps) > MAX_STEPS:
        raise InvalidArgument("steps", f"{len(req.steps)} steps; a pipeline has at most {MAX_STEPS:,}")
    steps = ordered([_step(s, settings, now, f"steps[{i}].") for i, s in enumerate(req.steps)])
    on_failure = None
    if req.HasField("on_failure"):
        on_failure = _step(req.on_failure, settings, now, "on_failure.")
        if on_failure.depends_on:
            raise InvalidArgument("on_failure.depends_on", "must be empty: the failed step is its parent")
        if any(s.name == on_failure.name for s in steps):
            raise InvalidArgument("on_failure.name", f"step {on_failure.name!r} is named twice")
    key = v.text("idempotency_key", req.idempotency_key, settings.limits.max_key_length) or None
    return NewPipeline(name, steps, key, on_failure)


def pipeline_proto(p: Pipeline) -> ps.Pipeline:
    out = ps.Pipeline(
        id=str(p.id),
        name=p.name,
        state=_STATES[p.state],
        idempotency_key=p.idempotency_key or "",
        paused=p.paused,
        created_at=convert.ts(p.created_at),
        step_count=p.step_count,
        succeeded_steps=p.succeeded_steps,
    )
    for s in p.steps:
        out.steps.add(name=s.name, depends_on=s.depends_on, job=convert.job_proto(s.job), on_failure=s.on_failure)
    return out


def watch_response(p: Pipeline, sent: Mapping[str, Step] | None, now: datetime) -> ps.WatchPipelineResponse:
    """Every step in the first answer (sent is None); after it, the steps that differ from those
    sent, so a reader that fell behind (its mailbox coalesced) still gets every step's latest state."""
    if sent is None:
        return ps.WatchPipelineResponse(pipeline=pipeline_proto(p), snapshot=True, observed_at=convert.ts(now))
    changed = tuple(s for s in p.steps if sent.get(s.name) != s)
    return ps.WatchPipelineResponse(pipeline=pipeline_proto(replace(p, steps=changed)), observed_at=convert.ts(now))


def pipeline_page(req: ps.ListPipelinesRequest) -> PipelinePage:
    """ListPipelines' page: its size, filter, and where the previous page (its token) ended."""
    size = v.in_range("page_size", req.page_size, 1, LIST_MAX_SIZE) if req.page_size else LIST_DEFAULT_SIZE
    states = []
    for i, number in enumerate(req.states):
        if number not in _STATE_OF:
            raise InvalidArgument(
                f"states[{i}]", "must be STATE_RUNNING, STATE_SUCCEEDED, STATE_FAILED or STATE_CANCELLED"
            )
        states.append(_STATE_OF[number])
    prefix = v.text("name_prefix", req.name_prefix, 128)
    f = PipelineFilter(tuple(dict.fromkeys(states)), prefix, req.paused if req.HasField("paused") else None)
    if not req.page_token:
        return PipelinePage(f, size)
    after = page_token.unseal(req.page_token, _LISTING, _digest(f), "page_token")
    if not after.isdigit() or not 0 < int(after) < 2**63:
        raise InvalidArgument("page_token", "malformed page token")
    return PipelinePage(f, size, int(after))


def next_pipelines_token(page: PipelinePage, found: Sequence[Pipeline], more: bool) -> str:
    return page_token.seal(_LISTING, _digest(page.filter), str(found[-1].id)) if more and found else ""


def _digest(f: PipelineFilter) -> str:
    """Equal for equal filters, whatever the order of the states: a token works with its own filter only."""
    doc = {"states": sorted(s.value for s in f.states), "prefix": f.name_prefix, "paused": f.paused}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def add_parents(into: MessageMap[str, job_pb2.StepOutcome], parents: Sequence[asyncpg.Record]) -> None:
    """A claimed step's LeasedJob.parents, from parents_of's rows."""
    for r in parents:
        out = into[r["step_name"]]
        out.job_id = str(r["id"])
        out.state = convert.state_proto(JobState(r["state"]))
        if r["result"] is not None:
            out.result = r["result"]
        out.result_content_type = r["result_content_type"] or ""
        error = convert.error_proto(rows.error(r))
        if error is not None:
            out.error.CopyFrom(error)


def queues(p: NewPipeline) -> Mapping[str, str]:
    """Each step's queue, by the field that names it, for the caller's access check."""
    named = {f"steps[{i}].job.queue": s.job.queue for i, s in enumerate(p.steps)}
    if p.on_failure is not None:
        named["on_failure.job.queue"] = p.on_failure.job.queue
    return named


def with_follow_ups(req: qs.AckRequest, ack: Ack, settings: Settings, prefix: str = "") -> Ack:
    """The Ack with the follow-ups its request carries, validated as Enqueue and EnqueuePipeline are."""
    if not req.follow_ups:
        return ack
    if len(req.follow_ups) > MAX_FOLLOW_UPS:
        raise InvalidArgument(f"{prefix}follow_ups", f"{len(req.follow_ups)} follow-ups; at most {MAX_FOLLOW_UPS:,}")
    now = datetime.now(UTC)
    out = []
    for i, f in enumerate(req.follow_ups):
        at = f"{prefix}follow_ups[{i}]."
        if not f.HasField("job"):
            raise InvalidArgument(f"{at}job", "required: at least a queue")
        name = v.text(f"{at}step_name", f.step_name, 128) or None
        if name is None and f.depends_on:
            raise InvalidArgument(f"{at}depends_on", "only a step (with step_name) depends on steps")
        if name is not None and f.job.idempotency_key:
            raise InvalidArgument(f"{at}job.idempotency_key", f"step {name!r}: a step has none")
        depends_on = tuple(dict.fromkeys(v.text(f"{at}depends_on[{j}]", d, 128) for j, d in enumerate(f.depends_on)))
        out.append(FollowUp(convert.new_job(f.job, settings, now, prefix=f"{at}job."), name, depends_on))
    return replace(ack, follow_ups=tuple(out))


def step_retry(req: ps.RetryStepRequest, settings: Settings) -> StepRetry:
    job_id = v.positive_id("job_id", req.job_id)
    if req.mode not in ps.RetryStepRequest.Mode.values():
        raise InvalidArgument("mode", f"unknown mode {req.mode}")
    downstream = req.mode == ps.RetryStepRequest.MODE_DOWNSTREAM
    if not req.HasField("payload"):
        if req.content_type:
            raise InvalidArgument("content_type", "only with a new payload")
        return StepRetry(job_id, downstream)
    content_type = v.text("content_type", req.content_type, 255) or JSON
    payload = v.blob("payload", req.payload, settings.limits)
    if is_json(content_type):
        payload = v.json_document("payload", payload, settings.limits).encode()
    return StepRetry(job_id, downstream, payload, content_type)
