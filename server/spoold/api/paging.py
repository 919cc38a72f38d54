"""Pages of ListQueues and of a job's attempts (sizes checked, tokens sealed by api/page_token.py),
and what WatchJob's snapshots carry."""

from __future__ import annotations

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import queue_service_pb2 as qs
from spoold.api import page_token
from spoold.api import validate as v
from spoold.errors import InvalidArgument
from spoold.model import AttemptPage, Job

DEFAULT_SIZE = 100
QUEUES_DEFAULT_SIZE = 1000
MAX_SIZE = 1000
_ATTEMPTS, _QUEUES = "attempts", "queues"


def _size(field: str, given: int, default: int) -> int:
    return v.in_range(field, given, 1, MAX_SIZE) if given else default


def attempt_page(req: qs.GetJobRequest, job_id: int) -> AttemptPage:
    size = _size("attempts_page_size", req.attempts_page_size, DEFAULT_SIZE)
    if not req.attempts_page_token:
        return AttemptPage(size)
    before = page_token.unseal(req.attempts_page_token, _ATTEMPTS, str(job_id), "attempts_page_token")
    if not before.isdigit():
        raise InvalidArgument("attempts_page_token", "malformed page token")
    return AttemptPage(size, int(before))


def next_attempts_token(job: Job) -> str:
    """The token for the attempts older than those the job carries; empty when there are none."""
    if not job.more_attempts or not job.attempts:
        return ""
    return page_token.seal(_ATTEMPTS, str(job.id), str(job.attempts[0].lease_token))


WATCH_FIELDS = ("payload", "attempts")


def watch_mask(req: qs.WatchJobRequest) -> tuple[bool, bool]:
    """Whether WatchJob's snapshots carry (payload, attempts): only if its read_mask asks."""
    paths = list(req.read_mask.paths)
    if len(paths) > len(WATCH_FIELDS) * 2:
        raise InvalidArgument("read_mask.paths", f"at most {len(WATCH_FIELDS) * 2} paths")
    for i, path in enumerate(paths):
        if path not in WATCH_FIELDS:
            raise InvalidArgument(f"read_mask.paths[{i}]", f"{path[:200]!r}: must be one of {', '.join(WATCH_FIELDS)}")
    return "payload" in paths, "attempts" in paths


def queue_page(req: adm.ListQueuesRequest) -> tuple[int, str]:
    """(page size, the name the previous page ended at, or "" from the start)."""
    size = _size("page_size", req.page_size, QUEUES_DEFAULT_SIZE)
    after = page_token.unseal(req.page_token, _QUEUES, "", "page_token") if req.page_token else ""
    return size, after


def next_queues_token(names: list[str], more: bool) -> str:
    return page_token.seal(_QUEUES, "", names[-1]) if more and names else ""
