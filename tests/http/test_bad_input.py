"""Every kind of bad input of the HTTP door, most with the real curl binary: each gets its status
code and ErrorInfo reason (and the field, where there is one), writes nothing, and leaves the
server serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import asyncpg
import pytest

from spoold.app import App
from spoold.config import Settings
from tests.http.conftest import Answer, curl, fingerprint, http_settings, needs_curl

pytestmark = needs_curl
JSON = ("-H", "Content-Type: application/json")
ENQUEUE = "/spool.v1.QueueService/Enqueue"


@pytest.fixture
def settings() -> Settings:
    return http_settings(
        http_max_body_bytes=64 * 1024,
        http_read_timeout=timedelta(seconds=1),
        http_header_timeout=timedelta(seconds=1),
    )


@pytest.fixture
async def untouched(app: App, base: str, db: asyncpg.Connection) -> AsyncIterator[None]:
    """Around a test of refusals: no row changes, and the server still answers."""
    before = await fingerprint(db)
    yield
    assert await fingerprint(db) == before
    assert (await curl(f"{base}/readyz")).status == 200


async def refused(call: Awaitable[Answer], status: int, reason: str, field: str | None = None) -> Answer:
    answer = await call
    assert answer.status == status, answer
    assert answer.reason == reason, answer
    if field is not None:
        assert answer.field == field, answer
    assert answer.headers["x-request-id"]
    return answer


@pytest.mark.usefixtures("untouched")
async def test_malformed_json(base: str) -> None:
    await refused(curl(*JSON, "-d", '{"payload": {', f"{base}/v1/queues/q/jobs"), 400, "INVALID_ARGUMENT", "body")
    connect = await curl(*JSON, "-d", '{"queue": "q",', base + ENQUEUE)
    assert (connect.status, connect.json()["code"], connect.reason) == (400, "invalid_argument", "INVALID_ARGUMENT")


@pytest.mark.usefixtures("untouched")
async def test_valid_json_of_the_wrong_type(base: str) -> None:
    url = f"{base}/v1/queues/q/jobs"
    await refused(curl(*JSON, "-d", '{"maxAttempts": "many"}', url), 400, "INVALID_ARGUMENT", "maxAttempts")
    await refused(curl(*JSON, "-d", '{"delay": 30}', url), 400, "INVALID_ARGUMENT", "delay")
    await refused(curl(*JSON, "-d", '["a", "list"]', url), 400, "INVALID_ARGUMENT", "body")
    await refused(curl(*JSON, "-d", '{"payload": NaN}', url), 400, "INVALID_ARGUMENT", "body")
    connect = await curl(*JSON, "-d", '{"queue": 5}', base + ENQUEUE)
    assert (connect.status, connect.json()["code"]) == (400, "invalid_argument")


@pytest.mark.usefixtures("untouched")
async def test_unknown_fields_are_refused(base: str) -> None:
    body = '{"payload": {}, "maxAttempt": 3}'
    await refused(curl(*JSON, "-d", body, f"{base}/v1/queues/q/jobs"), 400, "INVALID_ARGUMENT", "maxAttempt")
    connect = await curl(*JSON, "-d", '{"queue": "q", "maxAttempt": 3}', base + ENQUEUE)
    assert (connect.status, connect.reason) == (400, "INVALID_ARGUMENT")
    assert "maxAttempt" in connect.json()["message"]


@pytest.mark.usefixtures("untouched")
async def test_a_wrong_or_missing_content_type(base: str) -> None:
    url = f"{base}/v1/queues/q/jobs"
    await refused(curl("-H", "Content-Type: text/plain", "-d", "{}", url), 415, "UNSUPPORTED_MEDIA_TYPE")
    await refused(curl("-H", "Content-Type:", "-d", "{}", url), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert (await curl("-H", "Content-Type: text/plain", "-d", "{}", base + ENQUEUE)).status == 415
    grpc = await curl("-H", "Content-Type: application/grpc", "-d", "x", base + ENQUEUE)
    assert (grpc.status, grpc.json()["code"]) == (415, "invalid_argument")


@pytest.mark.usefixtures("untouched")
async def test_an_empty_body(base: str) -> None:
    await refused(curl(*JSON, "-X", "POST", f"{base}/v1/queues/q/jobs"), 400, "INVALID_ARGUMENT", "body")
    connect = await curl(*JSON, "-X", "POST", base + ENQUEUE)
    assert (connect.status, connect.reason) == (400, "INVALID_ARGUMENT")


@pytest.mark.usefixtures("untouched")
async def test_a_body_over_the_limit(base: str) -> None:
    big = b'{"payload": "' + b"x" * 100_000 + b'"}'
    url = f"{base}/v1/queues/q/jobs"
    await refused(curl(*JSON, "--data-binary", "@-", url, stdin=big), 413, "BODY_TOO_LARGE")
    chunked = ("-H", "Transfer-Encoding: chunked", "--data-binary", "@-")
    await refused(curl(*JSON, *chunked, url, stdin=big), 413, "BODY_TOO_LARGE")
    connect = await curl(*JSON, *chunked, base + ENQUEUE, stdin=big)
    # Connect says resource_exhausted with the status its protocol gives that code (429)
    assert (connect.status, connect.json()["code"], connect.reason) == (429, "resource_exhausted", "BODY_TOO_LARGE")


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(
    ("queue", "status", "reason"),
    [
        ("a/b", 404, "ROUTE_NOT_FOUND"),
        ("a%2Fb", 404, "ROUTE_NOT_FOUND"),
        ("..", 400, "INVALID_ARGUMENT"),
        ("a%00b", 400, "INVALID_ARGUMENT"),
        ("q" * 10_000, 400, "INVALID_ARGUMENT"),
    ],
    ids=["slash", "encoded-slash", "dot-dot", "nul", "10000-chars"],
)
async def test_a_bad_queue_name_in_the_path(base: str, queue: str, status: int, reason: str) -> None:
    url = f"{base}/v1/queues/{queue}/jobs"
    answer = await refused(curl("--path-as-is", *JSON, "-d", '{"payload": {}}', url), status, reason)
    if status == 400:
        assert answer.field == "queue"


@pytest.mark.usefixtures("untouched")
async def test_a_job_id_that_is_not_a_number(base: str) -> None:
    await refused(curl(f"{base}/v1/jobs/abc"), 400, "INVALID_ARGUMENT", "job_id")
    await refused(curl(f"{base}/v1/jobs/1.5/events"), 400, "INVALID_ARGUMENT", "job_id")
    await refused(curl("-X", "POST", f"{base}/v1/jobs/-3:cancel"), 400, "INVALID_ARGUMENT", "job_id")
    await refused(curl(f"{base}/v1/jobs/999999"), 404, "JOB_NOT_FOUND", "job_id")


@pytest.mark.usefixtures("untouched")
async def test_a_method_that_is_not_allowed(base: str) -> None:
    answer = await refused(curl("-X", "DELETE", f"{base}/v1/jobs/1"), 405, "METHOD_NOT_ALLOWED")
    assert "GET" in answer.headers["allow"]
    await refused(curl(f"{base}/v1/queues/q/jobs"), 405, "METHOD_NOT_ALLOWED")
    assert (await curl(base + ENQUEUE)).status == 405  # Connect: a GET of a method with effects


@pytest.mark.usefixtures("untouched")
async def test_a_client_that_sends_half_a_body_and_stops(app: App, base: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.http_port)
    head = "POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    writer.write(head.encode() + b'{"payload": ')
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 30)  # the read timeout (1 s here) ends the wait
    assert answer.startswith(b"HTTP/1.1 408") and b"BODY_TIMEOUT" in answer
    writer.close()


@pytest.mark.usefixtures("untouched")
async def test_a_client_that_sends_half_its_headers_and_stops(app: App) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(4096), 30) == b""  # closed by the header timeout (1 s here)
    writer.close()


async def test_no_authorization_header_when_keys_are_required(db_url: str, db: asyncpg.Connection) -> None:
    app = App(http_settings(auth="required"), db_url)
    await app.start()
    try:
        base = f"http://127.0.0.1:{app.http_port}"
        before = await fingerprint(db)
        await refused(curl(*JSON, "-d", '{"payload": {}}', f"{base}/v1/queues/q/jobs"), 401, "API_KEY_MISSING")
        await refused(curl(f"{base}/v1/jobs/1"), 401, "API_KEY_MISSING")
        connect = await curl(*JSON, "-d", '{"queue": "q"}', base + ENQUEUE)
        assert (connect.status, connect.json()["code"], connect.reason) == (401, "unauthenticated", "API_KEY_MISSING")
        bad = await curl(*JSON, "-H", "Authorization: Bearer junk", "-d", '{"payload": {}}', f"{base}/v1/queues/q/jobs")
        assert (bad.status, bad.reason) == (401, "API_KEY_MALFORMED")
        assert await fingerprint(db) == before
        assert (await curl(f"{base}/healthz")).status == 200  # probes need no key
    finally:
        await app.stop()
