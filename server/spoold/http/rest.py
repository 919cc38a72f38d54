"""The REST routes of the async-API flow: POST a job (202 and its Location), GET it until it is
finished, follow it with Server-Sent Events, requeue or cancel it. Each route is one RPC called
through the door, so validation, keys and errors are the gRPC port's own; only the shapes differ:
the payload and the result are JSON values here, not base64 (views.py)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.errors import InvalidArgument, SpoolError, UnsupportedMediaType
from spoold.http import calls, views
from spoold.http.answers import rest_body
from spoold.http.door import Door

_SERVICE = "/spool.v1.QueueService/"
TERMINAL = frozenset({job_pb2.Job.STATE_SUCCEEDED, job_pb2.Job.STATE_DEAD, job_pb2.Job.STATE_CANCELLED})
# A comment line this often keeps proxies from closing a quiet event stream.
PING_SECONDS = 15


# Where json_format's messages name the field: "Failed to parse maxAttempts field: ..." or
# "... at EnqueueRequest.delay".
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field")
_AT_FIELD = re.compile(r" at \w+(?:\.\w+)*\.(\w+)\W*$")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def json_object(request: Request, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; an empty body is {} where the route allows it."""
    body = await request.body()
    if not body:
        if required:
            raise InvalidArgument("body", "a JSON object is required")
        return {}
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(f"content-type: send application/json, not {media[:60]!r}")
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument("body", f"not valid JSON: {str(exc)[:200] or 'too deeply nested'}") from exc
    if not isinstance(value, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return value


def parse(fields: dict[str, Any], message: Message) -> None:
    """Merges JSON fields (proto JSON names) into the message; a field it lacks or a wrong type is
    INVALID_ARGUMENT naming the field."""
    known = {f.json_name for f in message.DESCRIPTOR.fields} | {f.name for f in message.DESCRIPTOR.fields}
    for name in fields:
        if name not in known:
            raise InvalidArgument(str(name)[:100], "no such field")
    try:
        json_format.ParseDict(fields, message)
    except Exception as exc:  # ParseError, and TypeError/ValueError from values of a wrong kind
        text = str(exc)
        named = _FAILED_FIELD.search(text) or _AT_FIELD.search(text)
        raise InvalidArgument(named.group(1)[:100] if named else "body", text[:300]) from exc


def event_stream(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    """A Server-Sent Events answer: never cached nor buffered by a proxy, a comment line every
    PING_SECONDS so that a quiet stream stays open."""
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return EventSourceResponse(events, ping=PING_SECONDS, headers=headers)


def enqueue_request(queue: str, body: dict[str, Any]) -> qs.EnqueueRequest:
    fields = dict(body)
    if "queue" in fields:
        raise InvalidArgument("queue", "is named by the path, not the body")
    payload = fields.pop("payload", None)
    request = qs.EnqueueRequest(queue=queue)
    parse(fields, request)
    request.payload = views.payload_bytes(payload, request.content_type)
    return request


def routes(door: Door) -> list[BaseRoute]:
    async def enqueue(request: Request) -> Response:
        queue = views.queue_segment(request.path_params["queue"])
        message = enqueue_request(queue, await json_object(request))
        answer = await door.unary(_SERVICE + "Enqueue", message, calls.current())
        assert isinstance(answer, qs.EnqueueResponse)
        job = answer.job
        body = {"jobId": job.id, "status": views.status(job), "deduplicated": answer.deduplicated}
        return JSONResponse(body, 200 if answer.deduplicated else 202, headers={"Location": f"/v1/jobs/{job.id}"})

    async def get_job(request: Request) -> Response:
        message = qs.GetJobRequest(job_id=request.path_params["job_id"])
        answer = await door.unary(_SERVICE + "GetJob", message, calls.current())
        assert isinstance(answer, qs.GetJobResponse)
        return JSONResponse(views.job(answer.job))

    async def requeue(request: Request) -> Response:
        options = qs.RequeueRequest()
        parse(await json_object(request, required=False), options)
        if options.job_ids or options.HasField("filter"):
            raise InvalidArgument("jobIds", "the job is named by the path; POST /v1/jobs/{id}:requeue has no filter")
        options.job_ids.append(request.path_params["job_id"])
        answer = await door.unary(_SERVICE + "Requeue", options, calls.current())
        assert isinstance(answer, qs.RequeueResponse)
        return JSONResponse(views.job(answer.jobs[0]))

    async def cancel(request: Request) -> Response:
        await json_object(request, required=False)  # nothing to say, but what is said must be JSON
        message = qs.CancelJobRequest(job_id=request.path_params["job_id"])
        answer = await door.unary(_SERVICE + "CancelJob", message, calls.current())
        assert isinstance(answer, qs.CancelJobResponse)
        return JSONResponse(views.job(answer.job))

    async def events(request: Request) -> Response:
        # Each event is the job as GET shows it: payload and attempts included.
        message = qs.WatchJobRequest(
            job_id=request.path_params["job_id"], read_mask=FieldMask(paths=["payload", "attempts"])
        )
        answers = door.stream(_SERVICE + "WatchJob", message, calls.current())
        first = await anext(answers)  # a refusal is an ordinary error answer, before the stream starts
        return event_stream(_events(first, answers))

    return [
        Route("/v1/queues/{queue}/jobs", enqueue, methods=["POST"]),
        Route("/v1/jobs/{job_id}:requeue", requeue, methods=["POST"]),
        Route("/v1/jobs/{job_id}:cancel", cancel, methods=["POST"]),
        Route("/v1/jobs/{job_id}/events", events, methods=["GET"]),
        Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
    ]


async def _events(first: Message, rest: AsyncIterator[Message]) -> AsyncIterator[ServerSentEvent]:
    """Each change of the job as a `message` event (data: the job as GET shows it), then an `end`
    event after its terminal state, so that an EventSource closes instead of reconnecting."""
    sequence = 0
    answer = first
    try:
        while True:
            assert isinstance(answer, qs.WatchJobResponse)
            sequence += 1
            yield ServerSentEvent(json.dumps(views.job(answer.job)), id=str(sequence))
            if answer.job.state in TERMINAL:
                yield ServerSentEvent(json.dumps({"status": views.status(answer.job)}), event="end")
                return
            answer = await anext(rest)
    except StopAsyncIteration:
        return
    except SpoolError as err:  # e.g. the server is stopping: say so, then end
        yield ServerSentEvent(json.dumps(rest_body(err)), event="error")
