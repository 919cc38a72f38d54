"""An HTTP-serving spoold for the HTTP door's tests, and the real curl binary to call it with."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from google.rpc import error_details_pb2

from spoold.app import App
from spoold.config import Settings
from tests.conftest import test_settings
from tests.test_spoold_process import free_port

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed (.ci/run installs it)")

# The rows a refused call must leave as they were.
FINGERPRINT = """
SELECT (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM spool.jobs t)
    || (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM spool.attempts t)
    || (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.name), '')) FROM spool.queues t)
"""


def http_settings(**changes: Any) -> Settings:
    return test_settings(http_port=free_port(), **changes)


@pytest.fixture
def settings() -> Settings:
    return http_settings()


@pytest.fixture
def base(app: App) -> str:
    return f"http://127.0.0.1:{app.http_port}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str:
        """The ErrorInfo reason of an error answer, in either form (REST or Connect)."""
        body = self.json()
        if "error" in body:
            return str(next(d["reason"] for d in body["error"]["details"] if d["@type"].endswith("ErrorInfo")))
        return connect_info(body).reason

    @property
    def field(self) -> str:
        details = self.json()["error"]["details"]
        info = next(d for d in details if d.get("@type", "").endswith("ErrorInfo"))
        return str(info.get("metadata", {}).get("field", ""))


def connect_info(body: dict[str, Any]) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo in the details of Connect error JSON (base64 of the message, unpadded)."""
    (value,) = [d["value"] for d in body.get("details", []) if d["type"] == "google.rpc.ErrorInfo"]
    return error_details_pb2.ErrorInfo.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))


def _answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # curl shows an interim 100 Continue first
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return Answer(int(lines[0].split()[1]), headers, body)


async def curl(*args: str, stdin: bytes | None = None) -> Answer:
    """Runs the real curl binary (with -i, so the status and headers come back too)."""
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "-sS",
        "-i",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode == 0, f"curl {args}: exit {proc.returncode}: {err.decode()}"
    return _answer(out)


async def fingerprint(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval(FINGERPRINT))
