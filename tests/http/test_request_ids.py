"""A caller's x-request-id reaches spoold's log lines only when it is made of [A-Za-z0-9._-] and at
most 100 characters; anything else (a newline that would forge a log line, an escape sequence, a
very long id) is replaced by an id of spoold's own, on both doors. The requests go out over raw
HTTP/2 without header validation, as a hostile client would send them: the real clients refuse
to send a newline in a header at all."""

from __future__ import annotations

import asyncio
import logging
import re
import struct

import h2.config
import h2.connection
import h2.events
import pytest

from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests.http.conftest import Answer, curl, needs_curl

FORGED = "abc\nCRITICAL spoold: forged line"
ESCAPE = "abc\x1b[2J\x1b[31mred"
NEL = "abc\x85CRITICAL spoold: forged line"  # obs-text, which HTTP/1.1 lets through
OWN = re.compile(r"[0-9a-f]{32}")


async def h2_request(port: int, path: str, headers: list[tuple[str, str]], body: bytes) -> dict[str, str]:
    """One POST over cleartext HTTP/2 with headers sent as they are; the answer's headers and
    trailers merged (empty if the server reset the stream)."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    base = [(":method", "POST"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"), (":path", path)]
    conn.send_headers(stream, [*base, *headers])
    conn.send_data(stream, body, end_stream=True)
    writer.write(conn.data_to_send())
    answer: dict[str, str] = {}
    try:
        async with asyncio.timeout(10):
            while True:
                data = await reader.read(65536)
                if not data:
                    return answer
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                        answer.update((_text(k), _text(v)) for k, v in event.headers)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        return answer
                writer.write(conn.data_to_send())
    finally:
        writer.close()


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def assert_unforged(caplog: pytest.LogCaptureFixture, given: str) -> list[str]:
    """No log line holds the caller's id or a line break; returns the request ids logged."""
    lines = [r.getMessage() for r in caplog.records]
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x85" not in line and "\x1b" not in line, line
        assert "forged" not in line and given not in line, line
    return [m.group(1) for line in lines if (m := re.search(r"request (\S+)", line))]


@pytest.mark.parametrize("given", [FORGED, ESCAPE, "a" * 101, "id with spaces", "a:b"])
async def test_a_grpc_request_id_cannot_forge_a_log_line(
    app: App, caplog: pytest.LogCaptureFixture, given: str
) -> None:
    headers = [("content-type", "application/grpc"), ("te", "trailers"), ("x-request-id", given)]
    request = grpc_frame(qs.ListJobsRequest(page_size=1).SerializeToString())
    with caplog.at_level(logging.DEBUG, logger="spoold"):
        answer = await h2_request(app.port, "/spool.v1.QueueService/ListJobs", headers, request)
    # grpc-core may refuse the header itself; if it lets it through, spoold replaced the id.
    assert answer.get("grpc-status", "0") in ("0", "13"), answer
    logged = assert_unforged(caplog, given)
    if answer.get("grpc-status") == "0":
        assert logged and all(OWN.fullmatch(rid) for rid in logged)


async def test_a_safe_grpc_request_id_is_kept(app: App, caplog: pytest.LogCaptureFixture) -> None:
    headers = [("content-type", "application/grpc"), ("te", "trailers"), ("x-request-id", "Trace_1.2-3")]
    request = grpc_frame(qs.ListJobsRequest(page_size=1).SerializeToString())
    with caplog.at_level(logging.DEBUG, logger="spoold"):
        answer = await h2_request(app.port, "/spool.v1.QueueService/ListJobs", headers, request)
    assert answer.get("grpc-status") == "0", answer
    assert "Trace_1.2-3" in assert_unforged(caplog, "forged")


@needs_curl
@pytest.mark.parametrize("given", [FORGED, ESCAPE, NEL, "a" * 101, "a:b"])
async def test_an_http_request_id_cannot_forge_a_log_line(
    app: App, caplog: pytest.LogCaptureFixture, given: str
) -> None:
    assert app.http_port is not None
    headers = [("content-type", "application/json"), ("x-request-id", given)]
    with caplog.at_level(logging.DEBUG, logger="spoold"):
        answer = await h2_request(app.http_port, "/spool.v1.QueueService/ListJobs", headers, b"{}")
        if "\n" not in given:  # HTTP/1.1 cannot carry a newline in a header; the rest it can
            plain = await list_jobs_over_curl(app, given)
            assert plain.status == 200 and OWN.fullmatch(plain.headers["x-request-id"]), plain
    if answer:  # hypercorn may refuse the header itself; if it lets it through, spoold replaced the id.
        assert answer[":status"] == "200" and OWN.fullmatch(answer["x-request-id"]), answer
    logged = assert_unforged(caplog, given)
    assert all(OWN.fullmatch(rid) for rid in logged)
    assert logged or not answer, "spoold answered without logging the call"


@needs_curl
async def test_a_safe_http_request_id_is_echoed(app: App) -> None:
    answer = await list_jobs_over_curl(app, "Trace_1.2-3")
    assert answer.status == 200 and answer.headers["x-request-id"] == "Trace_1.2-3"


async def list_jobs_over_curl(app: App, request_id: str) -> Answer:
    url = f"http://127.0.0.1:{app.http_port}/spool.v1.QueueService/ListJobs"
    return await curl("-H", "Content-Type: application/json", "-H", f"x-request-id: {request_id}", "-d", "{}", url)
