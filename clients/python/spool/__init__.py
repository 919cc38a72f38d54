"""Spool: a durable job queue over gRPC. Client and AsyncClient call it; Worker runs handlers for its jobs.

`spool.v1` holds the generated API; `spool.cli` is the `spool` command line (the `cli` extra:
`pip install 'spool-client[cli]'`), which importing `spool` leaves out.
"""

from spool._convert import Backoff, EnqueueOptions, Filter, RateLimit, job_status, payload_json
from spool._retry import RetryPolicy
from spool.client import AsyncClient, Client, Job, Queue, is_terminal
from spool.errors import (
    CheckpointRateLimited,
    InvalidArgument,
    JobNotFound,
    LeaseLost,
    NotFound,
    QueueNotEmpty,
    QueueNotFound,
    ResourceExhausted,
    SpoolError,
    Unavailable,
    WrongState,
)
from spool.job import ActiveJob, Permanent, Retry
from spool.pipelines import Pipeline, Step, step
from spool.schedules import ScheduleSpec
from spool.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ActiveJob",
    "AsyncClient",
    "Backoff",
    "CheckpointRateLimited",
    "Client",
    "EnqueueOptions",
    "Filter",
    "InvalidArgument",
    "Job",
    "JobNotFound",
    "LeaseLost",
    "NotFound",
    "Permanent",
    "Pipeline",
    "Queue",
    "QueueNotEmpty",
    "QueueNotFound",
    "RateLimit",
    "ResourceExhausted",
    "Retry",
    "RetryPolicy",
    "ScheduleSpec",
    "SpoolError",
    "Step",
    "Unavailable",
    "Worker",
    "WrongState",
    "is_terminal",
    "job_status",
    "payload_json",
    "step",
]
