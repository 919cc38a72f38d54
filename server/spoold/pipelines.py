"""Pipelines as domain values, and the rules a pipeline's DAG must follow (docs/pipelines.md)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from spoold.errors import InvalidArgument
from spoold.model import Job, JobState, NewJob

# The most steps one pipeline may have (the on_failure step not counted).
MAX_STEPS = 10_000


class PipelineState(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class NewStep:
    name: str
    depends_on: tuple[str, ...]
    job: NewJob


@dataclass(frozen=True)
class NewPipeline:
    """A validated EnqueuePipeline: the steps in an order where each parent comes before its children."""

    name: str
    steps: tuple[NewStep, ...]
    idempotency_key: str | None = None
    on_failure: NewStep | None = None


@dataclass(frozen=True)
class Step:
    name: str
    depends_on: tuple[str, ...]
    job: Job
    on_failure: bool = False


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    state: PipelineState
    idempotency_key: str | None
    paused: bool
    created_at: datetime
    steps: tuple[Step, ...]
    # The steps (the on_failure step not counted) and how many succeeded: ListPipelines has the
    # counts without the steps.
    step_count: int = 0
    succeeded_steps: int = 0

    @property
    def finished(self) -> bool:
        """Final, and no step is left to run (the on_failure step after a failure, a cancelled
        pipeline's steps that were running): where WatchPipeline ends."""
        return self.state is not PipelineState.RUNNING and not any(
            s.job.state in (JobState.PENDING, JobState.RUNNING) for s in self.steps
        )


@dataclass(frozen=True)
class PipelineFilter:
    states: tuple[PipelineState, ...] = ()
    name_prefix: str = ""
    paused: bool | None = None


@dataclass(frozen=True)
class PipelinePage:
    """A page of ListPipelines: newest first, after the pipeline `after_id` (0: from the newest)."""

    filter: PipelineFilter
    size: int
    after_id: int = 0


@dataclass(frozen=True)
class StepRetry:
    """Fix and resume: a failed step runs again (with downstream, its descendants too), with a new
    payload when content_type is set."""

    job_id: int
    downstream: bool = False
    payload: bytes | None = None
    content_type: str | None = None


def ordered(steps: Sequence[NewStep], field: str = "steps") -> tuple[NewStep, ...]:
    """The steps with every parent before its children, else InvalidArgument naming the step: a
    duplicate name, an unknown parent, or a cycle. The given order is kept where it is one already."""
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        if s.name in index:
            twice = f"step {s.name!r} is named twice (steps {index[s.name]} and {i})"
            raise InvalidArgument(f"{field}[{i}].name", twice)
        index[s.name] = i
    for i, s in enumerate(steps):
        for p in s.depends_on:
            if p not in index:
                raise InvalidArgument(f"{field}[{i}].depends_on", f"step {s.name!r} depends on unknown step {p!r}")
            if p == s.name:
                raise InvalidArgument(f"{field}[{i}].depends_on", f"step {s.name!r} depends on itself")
    done: set[str] = set()
    out: list[NewStep] = []
    while len(out) < len(steps):
        ready = [s for s in steps if s.name not in done and all(p in done for p in s.depends_on)]
        if not ready:
            name = _in_cycle(steps, done)
            raise InvalidArgument(f"{field}[{index[name]}].depends_on", f"step {name!r} is in a dependency cycle")
        out.extend(ready)
        done.update(s.name for s in ready)
    return tuple(out)


def _in_cycle(steps: Sequence[NewStep], done: set[str]) -> str:
    """A step on a cycle among the steps not done: follow unfinished parents until one repeats."""
    parents = {s.name: [p for p in s.depends_on if p not in done] for s in steps if s.name not in done}
    name = next(iter(parents))
    seen: list[str] = []
    while name not in seen:
        seen.append(name)
        name = parents[name][0]
    return name
