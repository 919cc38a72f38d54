"""spoold's own log lines: `--log-format json` in a real process gives one JSON object per line,
each call's lines carrying its request id, method, job id, queue, key id and peer; the start-up
says version, addresses, database (password masked), auth and TLS on a line each."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
from pathlib import Path

import grpc

from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub
from spoold import logformat
from spoold.api import calls
from tests.helpers import enqueue_request
from tests.test_spoold_process import free_port


def _with_password(url: str) -> str:
    return re.sub(r"://([^:@/]+)@", r"://\1:s3cret@", url) if "@" in url else url


async def test_json_lines_with_each_calls_fields(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = _with_password(db_url)
    env = {"SPOOL_DATABASE_URL": url, "SPOOL_LOG_LEVEL": "DEBUG", "SPOOL_HTTP_PORT": "0", "PATH": "/usr/bin:/bin"}
    spoold = Path(sys.executable).parent / "spoold"
    proc = await asyncio.create_subprocess_exec(
        str(spoold), "--port", str(port), "--log-format", "json", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[dict[str, str]] = []
    try:
        while not any(e["message"].startswith("TLS: ") for e in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert raw, f"spoold exited: {lines}"
            lines.append(json.loads(raw))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = QueueServiceStub(channel)
            job = (await stub.Enqueue(enqueue_request("emails", {}))).job
            await stub.GetJob(qs.GetJobRequest(job_id=job.id), metadata=(("x-request-id", "req-42"),))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 60)
    lines += [json.loads(line) for line in rest.decode().splitlines()]
    assert proc.returncode == 0

    messages = [e["message"] for e in lines]
    assert any(m.startswith("spoold 0.") for m in messages)
    assert f"spoold serving on 127.0.0.1:{port} (gRPC)" in messages
    (database,) = [m for m in messages if m.startswith("database: ")]
    assert "s3cret" not in database and ("***" in database or url == db_url)
    assert any(m.startswith("auth: ") for m in messages) and "TLS: off (plaintext)" in messages
    (enqueue,) = [e for e in lines if e["message"].startswith("gRPC /spool.v1.QueueService/Enqueue, request ")]
    assert enqueue["queue"] == "emails" and enqueue["method"] == "Enqueue" and enqueue["level"] == "DEBUG"
    assert enqueue["peer"].startswith("ipv4:127.0.0.1:") and enqueue["request_id"]
    (get,) = [e for e in lines if e["message"] == "gRPC /spool.v1.QueueService/GetJob, request req-42"]
    assert (get["request_id"], get["job_id"], get["method"]) == ("req-42", job.id, "GetJob")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", get["time"])


def test_a_text_line_ends_with_the_calls_fields() -> None:
    record = logging.LogRecord("spoold.x", logging.WARNING, __file__, 1, "slow %s", ("ack",), None)
    calls.begin("abc")
    logformat.note_call("/spool.v1.QueueService/Ack", qs.AckRequest(job_id="7"), "ipv4:127.0.0.1:5")
    logformat.CallFilter().filter(record)
    line = logformat.TextFormatter().format(record)
    assert line.endswith("WARNING spoold.x: slow ack [request_id=abc method=Ack job_id=7 peer=ipv4:127.0.0.1:5]")


def test_an_unknown_format_is_refused_naming_the_setting() -> None:
    try:
        logformat.configure("INFO", "xml")
    except ValueError as err:
        assert "SPOOL_LOG_FORMAT/--log-format" in str(err)
    else:
        raise AssertionError("xml was accepted")
