"""The HTTP door fuzzed as the gRPC port is (test_fuzz.py): every Connect method with Hypothesis
requests in binary and in JSON, raw garbage bodies under each content type, and the REST routes
with garbage bodies and path segments. Whatever arrives: no 5xx (nor a Connect end-of-stream error
that stands for one), /healthz answers afterwards, and a refused request changes no row."""

from __future__ import annotations

import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from spoold.api import counts
from spoold.app import App
from spoold.http.asgi import max_body
from tests.conftest import fresh_database
from tests.fuzz.messages import EDGE_IDS, EDGE_TEXT, Requests, garbage_bodies
from tests.fuzz.test_fuzz import FINGERPRINT, METHODS, WAITING, _seed
from tests.http.conftest import http_settings

pytestmark = pytest.mark.timeout(3600)

# Connect codes a fuzzed request may get; anything else (internal, unknown) is a failure.
REFUSED = {"invalid_argument", "not_found", "failed_precondition", "resource_exhausted", "unimplemented"}
OK_STATUS = {200, 202}
REFUSED_STATUS = {400, 404, 405, 408, 409, 413, 415, 429}
# Fewer examples than the gRPC port's test by default (each may carry megabytes of JSON); the long
# profile runs its full count here too.
EXAMPLES = settings(max_examples=12) if settings.default.max_examples <= 50 else settings()
CONTENT_TYPES = ["application/json", "application/proto", "text/plain", "", "application/json; charset=utf-8"]


@dataclass(frozen=True)
class Target:
    http: httpx.AsyncClient
    db: asyncpg.Connection
    requests: Requests
    bases: dict[str, Message]
    max_body: int

    def around(self, method: MethodDescriptor) -> st.SearchStrategy[Message]:
        base = self.bases.get(method.name)
        return self.requests.around(base) if base is not None else self.requests.of(method.input_type)

    async def check(self, method: str, path: str, body: bytes, headers: dict[str, str], waits: bool = False) -> None:
        """The three properties, for one request."""
        before = str(await self.db.fetchval(FINGERPRINT))
        try:
            answer = await self.http.request(method, path, content=body, headers=headers)
            status, problem = answer.status_code, _stream_error(answer)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            # Over the body limit the server answers 413 from the headers alone and closes the
            # connection without reading the body; a client still sending may see the close first.
            limit = min(self.max_body, counts.SMALL_REQUEST_BYTES) if counts.small_http_body(path) else self.max_body
            assert len(body) > limit, f"{path} closed the connection on {len(body)} bytes"
            status, problem = 413, None
        waited = waits and (status == 504 or problem == "deadline_exceeded")
        assert waited or status in OK_STATUS | REFUSED_STATUS, f"{path} answered {status} to {body[:300]!r}"
        assert waited or problem is None or problem in REFUSED, f"{path} ended with {problem} for {body[:300]!r}"
        if status not in OK_STATUS or problem is not None:
            assert str(await self.db.fetchval(FINGERPRINT)) == before, f"refused {path} changed rows: {body[:300]!r}"
        assert (await self.http.get("/healthz")).status_code == 200


def _stream_error(answer: httpx.Response) -> str | None:
    """The code of a Connect stream's end-of-stream error, if the answer is a stream that has one."""
    if not answer.headers.get("content-type", "").startswith("application/connect+"):
        return None
    data, end = answer.content, None
    while len(data) >= 5:
        flags, size = struct.unpack(">BI", data[:5])
        if flags & 0x02:
            end = json.loads(data[5 : 5 + size] or b"{}")
        data = data[5 + size :]
    error = (end or {}).get("error")
    return str(error["code"]) if error else None


def _connect_headers(method: MethodDescriptor, content_type: str) -> dict[str, str]:
    stream = method.server_streaming and content_type.startswith("application/")
    headers = {"content-type": content_type.replace("application/", "application/connect+") if stream else content_type}
    if method.name in WAITING:
        headers["connect-timeout-ms"] = "500"
    return headers


def _framed(method: MethodDescriptor, body: bytes) -> bytes:
    """A server-streaming method's request is one enveloped message."""
    return struct.pack(">BI", 0, len(body)) + body if method.server_streaming else body


@pytest.fixture(scope="module")
async def target(admin_url: str, template_db: str) -> AsyncIterator[Target]:
    async with fresh_database(admin_url, template_db) as url:
        server_settings = http_settings()
        app = App(server_settings, url)
        await app.start()
        db = await asyncpg.connect(url)
        try:
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}", timeout=60) as http,
            ):
                bases, ids, tokens = await _seed(channel)
                requests = Requests(ids, ["q", "paused", "other"], tokens, int(time.time()))
                yield Target(http, db, requests, bases, max_body(server_settings))
        finally:
            await db.close()
            await app.stop()


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@EXAMPLES
@given(data=st.data())
async def test_fuzzed_connect_requests(target: Target, method: MethodDescriptor, data: st.DataObject) -> None:
    request: Message = data.draw(target.around(method), label="request")
    body, content_type = request.SerializeToString(), "application/proto"
    if data.draw(st.booleans(), label="json"):
        # A value JSON cannot carry (a Duration out of range) is sent as protobuf.
        with contextlib.suppress(json_format.SerializeToJsonError):
            body, content_type = json_format.MessageToJson(request).encode(), "application/json"

    await target.check("POST", _path(method), _framed(method, body), _connect_headers(method, content_type), True)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@EXAMPLES
@given(data=st.data())
async def test_garbage_connect_bodies(target: Target, method: MethodDescriptor, data: st.DataObject) -> None:
    body = data.draw(garbage_bodies(target.around(method)) | st.text(max_size=300).map(str.encode), label="body")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content type")
    await target.check("POST", _path(method), _framed(method, body), _connect_headers(method, content_type), True)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ["payload", "maxAttempts", "delay", "runAt", "priority", "idempotencyKey", "headers", "backoff", "queue"]
_REST_BODIES = (
    st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=12), _JSON_VALUES, max_size=5).map(
        lambda d: json.dumps(d).encode()
    )
    | st.binary(max_size=300)
    | st.text(max_size=300).map(str.encode)
)
_SEGMENTS = st.sampled_from([*EDGE_IDS, *EDGE_TEXT[:9], "1", "2", "3"]).map(lambda s: quote(s, safe=""))


@EXAMPLES
@given(data=st.data())
async def test_garbage_rest_requests(target: Target, data: st.DataObject) -> None:
    segment = data.draw(_SEGMENTS, label="segment")
    method, path = data.draw(
        st.sampled_from(
            [
                ("POST", f"/v1/queues/{segment or 'q'}/jobs"),
                ("GET", f"/v1/jobs/{segment}"),
                ("POST", f"/v1/jobs/{segment}:requeue"),
                ("POST", f"/v1/jobs/{segment}:cancel"),
                ("DELETE", f"/v1/jobs/{segment}"),
            ]
        ),
        label="route",
    )
    body = data.draw(_REST_BODIES, label="body") if method == "POST" else b""
    headers = {"content-type": data.draw(st.sampled_from(CONTENT_TYPES), label="content type")}
    await target.check(method, path, body, headers)
