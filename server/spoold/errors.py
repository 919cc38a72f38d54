"""Domain errors. api/errors.py maps each to a status code, and every door (gRPC, Connect, REST)
answers that code in its own form; nothing here knows a transport."""

from __future__ import annotations


class SpoolError(Exception):
    """Base of the errors a caller can act on; `reason` is the machine-readable ErrorInfo reason."""

    reason = "ERROR"
    # Seconds after which the same call may succeed (a google.rpc.RetryInfo); None: not said.
    retry_delay: float | None = None

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata


class InvalidArgument(SpoolError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.field = field


class JobNotFound(SpoolError):
    reason = "JOB_NOT_FOUND"

    def __init__(self, job_id: int, field: str = "job_id") -> None:
        super().__init__(f"{field}: job {job_id} not found", job_id=str(job_id), field=field)


class PipelineNotFound(SpoolError):
    reason = "PIPELINE_NOT_FOUND"

    def __init__(self, pipeline_id: int, field: str = "pipeline_id") -> None:
        super().__init__(f"{field}: pipeline {pipeline_id} not found", pipeline_id=str(pipeline_id), field=field)


class QueueNotFound(SpoolError):
    """The queue has neither jobs nor settings."""

    reason = "QUEUE_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name!r} not found", queue=name)


class QueueNotEmpty(SpoolError):
    """DeleteQueue of a queue that still has jobs (with force: unfinished ones)."""

    reason = "QUEUE_NOT_EMPTY"

    def __init__(self, name: str, message: str, jobs: int) -> None:
        super().__init__(f"queue {name!r} {message}", queue=name, jobs=str(jobs))


class ScheduleNotFound(SpoolError):
    reason = "SCHEDULE_NOT_FOUND"

    def __init__(self, name: str, field: str = "name") -> None:
        super().__init__(f"{field}: schedule {name!r} not found", schedule=name, field=field)


class ScheduleExists(InvalidArgument):
    """CreateSchedule with a name that is taken (UpdateSchedule with allow_missing upserts)."""

    reason = "SCHEDULE_EXISTS"

    def __init__(self, name: str, field: str = "schedule.name") -> None:
        super().__init__(field, f"a schedule named {name!r} exists (UpdateSchedule changes it)")


class StepExists(InvalidArgument):
    """A step named like one its pipeline has (a follow-up step, or a write the unique index on
    (pipeline_id, step_name) refused)."""

    reason = "STEP_EXISTS"

    def __init__(self, name: str | None, field: str = "step_name") -> None:
        what = f"step {name!r}" if name is not None else "a step of that name"
        super().__init__(field, f"{what} exists in the pipeline")
        self.step_name = name


class LeaseLost(SpoolError):
    """The lease token is stale: the lease expired, or the job was re-leased, finished or cancelled."""

    reason = "LEASE_LOST"


class WrongState(SpoolError):
    """The job's state does not allow the transition."""

    reason = "WRONG_STATE"


class PayloadTooLarge(SpoolError):
    reason = "PAYLOAD_TOO_LARGE"


class BatchTooLarge(SpoolError):
    reason = "BATCH_TOO_LARGE"


class LimitReached(SpoolError):
    """A limit on what the server holds was reached (queues, watchers): RESOURCE_EXHAUSTED with
    the limit's own reason, and a retry delay where waiting frees room (a stream ending does; a
    queue limit is not mended by waiting)."""

    def __init__(self, reason: str, message: str, retry_delay: float | None = None, **metadata: str) -> None:
        super().__init__(message, **metadata)
        self.reason = reason
        self.retry_delay = retry_delay


class CheckpointRateLimited(SpoolError):
    """A job's checkpoint came sooner than SPOOL_CHECKPOINT_MIN_INTERVAL after its last one:
    RESOURCE_EXHAUSTED with a RetryInfo; the same checkpoint may be sent again after the delay."""

    reason = "CHECKPOINT_RATE_LIMITED"

    def __init__(self, job_id: int, retry_delay: float, field: str = "checkpoint") -> None:
        super().__init__(
            f"{field}: job {job_id} checkpointed less than the minimum interval ago; retry in {retry_delay:.3f}s",
            job_id=str(job_id),
            field=field,
        )
        self.retry_delay = retry_delay


class Unavailable(SpoolError):
    """The database cannot be reached; the call may be retried."""

    reason = "DATABASE_UNAVAILABLE"
    # A database restarting or failing over, a pool busy, a server still starting: a second is
    # about what each of these takes to change, and what spoold's own start-up retries begin near.
    retry_delay: float | None = 1.0


class Conflict(Unavailable):
    """The database rolled the statement back (deadlock, serialization failure): nothing was
    written, and the same call may simply be sent again."""

    reason = "TRANSIENT_CONFLICT"
    # Nothing is down: the same call sent again at once almost always succeeds.
    retry_delay: float | None = 0.1


class ShuttingDown(Unavailable):
    """This server is stopping; the call may be retried (against another replica)."""

    reason = "SHUTTING_DOWN"


class SearchTimeout(SpoolError):
    """A search (ListJobs, Requeue by filter, queue stats) ran past SPOOL_SEARCH_TIMEOUT and was
    cancelled: nothing was changed. A narrower filter (a queue, a state, a time range) answers sooner."""

    reason = "SEARCH_TIMEOUT"


class SearchesBusy(SpoolError):
    """Every search connection stayed busy for SPOOL_SEARCH_WAIT: searches are many, or slow. The
    hot path (Enqueue, Lease, Heartbeat, Ack) has its own connections and is not affected. Retry later."""

    reason = "SEARCHES_BUSY"
    # The caller has waited SPOOL_SEARCH_WAIT already; a search ends within SPOOL_SEARCH_TIMEOUT.
    retry_delay: float | None = 1.0


class Unauthenticated(SpoolError):
    """The call carries no usable API key."""

    reason = "UNAUTHENTICATED"


class ApiKeyMissing(Unauthenticated):
    reason = "API_KEY_MISSING"


class ApiKeyMalformed(Unauthenticated):
    reason = "API_KEY_MALFORMED"


class ApiKeyInvalid(Unauthenticated):
    """No key has this id, or the secret is not the key's: the two are not told apart."""

    reason = "API_KEY_INVALID"


class ApiKeyRevoked(Unauthenticated):
    reason = "API_KEY_REVOKED"


class ApiKeyExpired(Unauthenticated):
    reason = "API_KEY_EXPIRED"


class PermissionDenied(SpoolError):
    """The key is valid but may not make this call."""

    reason = "PERMISSION_DENIED"


class ScopeMissing(PermissionDenied):
    reason = "SCOPE_MISSING"


class QueueNotAllowed(PermissionDenied):
    reason = "QUEUE_NOT_ALLOWED"


class GlobalKeyNotAllowed(PermissionDenied):
    """A key restricted to some queues asked for a global concurrency key, whose slots are shared
    with queues it may not use."""

    reason = "GLOBAL_KEY_NOT_ALLOWED"


class CsrfTokenInvalid(PermissionDenied):
    """A state-changing request signed in by the console's cookie without the matching CSRF token."""

    reason = "CSRF_TOKEN_INVALID"


class BulkOperationNotFound(SpoolError):
    reason = "BULK_OPERATION_NOT_FOUND"

    def __init__(self, operation_id: str, field: str = "id") -> None:
        super().__init__(f"{field}: no bulk operation {operation_id[:40]!r}", id=operation_id[:40], field=field)


class KeyNotFound(SpoolError):
    reason = "API_KEY_NOT_FOUND"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"id: no API key {key_id[:40]!r}", key_id=key_id[:40], field="id")


class Internal(SpoolError):
    """A bug or an unforeseen failure, logged with the request id that the answer names."""

    reason = "INTERNAL"

    def __init__(self, request_id: str) -> None:
        super().__init__(f"internal error (request {request_id})", request_id=request_id)


class BodyTooLarge(SpoolError):
    """A request body (HTTP) or message (gRPC) over the limit of its door or of its method
    (api/counts.py): refused before any of it is decoded."""

    reason = "BODY_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the limit of {limit} bytes", limit=str(limit))


class BodyTimeout(SpoolError):
    """An HTTP request body that did not arrive in full in time."""

    reason = "BODY_TIMEOUT"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s")


class UnsupportedMediaType(SpoolError):
    reason = "UNSUPPORTED_MEDIA_TYPE"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="content-type")


class RouteNotFound(SpoolError):
    """No HTTP route has this path."""

    reason = "ROUTE_NOT_FOUND"


class MethodNotAllowed(SpoolError):
    """The HTTP route exists, but not for this HTTP method."""

    reason = "METHOD_NOT_ALLOWED"


class StartupError(Exception):
    """spoold cannot start as configured; the message names the setting (flag and variable) to change."""
