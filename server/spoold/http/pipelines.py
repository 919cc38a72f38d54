"""The REST routes of pipelines: list them, read one, follow one with Server-Sent Events
(WatchPipeline, the console's Pipeline page). Each route is one RPC called through the door, so
validation, keys and errors are the gRPC port's own. Bodies are the messages' Connect JSON form."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from google.protobuf import json_format
from google.protobuf.message import Message
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from spool.v1 import pipeline_service_pb2 as ps
from spoold.errors import InvalidArgument, SpoolError
from spoold.http import calls
from spoold.http.answers import rest_body
from spoold.http.door import Door
from spoold.http.rest import event_stream

_SERVICE = "/spool.v1.PipelineService/"
_STATES = {k.removeprefix("STATE_").lower(): v for k, v in ps.Pipeline.State.items() if v}
_PAUSED = {"true": True, "false": False}
_PARAMS = frozenset({"state", "name", "paused", "pageSize", "pageToken"})


def list_request(request: Request) -> ps.ListPipelinesRequest:
    """?state=failed&state=cancelled (or state=failed,cancelled) &name=export- &paused=true
    &pageSize=50 &pageToken=..."""
    q = request.query_params
    for name in q:
        if name not in _PARAMS:
            raise InvalidArgument(name[:100], f"no such parameter; the parameters are {', '.join(sorted(_PARAMS))}")
    out = ps.ListPipelinesRequest(name_prefix=q.get("name", ""), page_token=q.get("pageToken", ""))
    for i, state in enumerate(s.strip() for v in q.getlist("state") for s in v.split(",") if s.strip()):
        if state.lower() not in _STATES:
            raise InvalidArgument(f"state[{i}]", f"{state[:40]!r}: one of {', '.join(_STATES)}")
        out.states.append(_STATES[state.lower()])
    if "paused" in q:
        if q["paused"] not in _PAUSED:
            raise InvalidArgument("paused", "true or false")
        out.paused = _PAUSED[q["paused"]]
    if "pageSize" in q:
        if not q["pageSize"].isdigit() or len(q["pageSize"]) > 9:
            raise InvalidArgument("pageSize", "a whole number from 1 to 1000")
        out.page_size = int(q["pageSize"])
    return out


def routes(door: Door) -> list[BaseRoute]:
    async def list_pipelines(request: Request) -> Response:
        answer = await door.unary(_SERVICE + "ListPipelines", list_request(request), calls.current())
        return JSONResponse(json_format.MessageToDict(answer))

    async def get_pipeline(request: Request) -> Response:
        message = ps.GetPipelineRequest(pipeline_id=request.path_params["pipeline_id"])
        answer = await door.unary(_SERVICE + "GetPipeline", message, calls.current())
        assert isinstance(answer, ps.GetPipelineResponse)
        return JSONResponse(json_format.MessageToDict(answer.pipeline))

    async def events(request: Request) -> Response:
        message = ps.WatchPipelineRequest(pipeline_id=request.path_params["pipeline_id"])
        answers = door.stream(_SERVICE + "WatchPipeline", message, calls.current())
        first = await anext(answers)  # a refusal is an ordinary error answer, before the stream starts
        return event_stream(_events(first, answers))

    return [
        Route("/v1/pipelines", list_pipelines, methods=["GET"]),
        Route("/v1/pipelines/{pipeline_id}/events", events, methods=["GET"]),
        Route("/v1/pipelines/{pipeline_id}", get_pipeline, methods=["GET"]),
    ]


async def _events(first: Message, rest: AsyncIterator[Message]) -> AsyncIterator[ServerSentEvent]:
    """Each WatchPipelineResponse as a `message` event, then an `end` event once the stream ends
    (the pipeline is finished), so that an EventSource closes instead of reconnecting."""
    sequence = 0
    answer: Message | None = first
    try:
        while answer is not None:
            sequence += 1
            yield ServerSentEvent(json.dumps(json_format.MessageToDict(answer)), id=str(sequence))
            answer = await anext(rest, None)
        yield ServerSentEvent(json.dumps({"end": True}), event="end")
    except SpoolError as err:  # e.g. the server is stopping: say so, then end
        yield ServerSentEvent(json.dumps(rest_body(err)), event="error")
