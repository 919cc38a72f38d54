"""The pipeline REST routes: GET /v1/pipelines (ListPipelines, its filters as query parameters),
GET /v1/pipelines/{id}, and its events (WatchPipeline as Server-Sent Events, ending with `end`)."""

from __future__ import annotations

import asyncio
import json

import spool
from spool import step
from spoold.app import App
from tests.http.conftest import CURL, curl, needs_curl
from tests.http.test_bad_input import refused
from tests.http.test_seed_flow import finish

pytestmark = needs_curl


async def test_list_and_get_pipelines(app: App, base: str) -> None:
    async with spool.AsyncClient(f"127.0.0.1:{app.port}") as client:
        first = await client.pipeline("export-a", [step("one", "etl")])
        second = await client.pipeline("export-b", [step("one", "etl")])
        await client.pipelines.cancel(second.id)
    listed = (await curl(f"{base}/v1/pipelines")).json()
    assert [p["name"] for p in listed["pipelines"]] == ["export-b", "export-a"]
    assert listed["pipelines"][1]["stepCount"] == 1
    cancelled = (await curl(f"{base}/v1/pipelines?state=cancelled,failed&name=export-")).json()
    assert [p["id"] for p in cancelled["pipelines"]] == [second.id]
    page = (await curl(f"{base}/v1/pipelines?pageSize=1")).json()
    rest = (await curl(f"{base}/v1/pipelines?pageSize=1&pageToken={page['nextPageToken']}")).json()
    assert [p["id"] for p in rest["pipelines"]] == [first.id] and "nextPageToken" not in rest
    got = (await curl(f"{base}/v1/pipelines/{first.id}")).json()
    assert got["steps"][0]["name"] == "one" and got["state"] == "STATE_RUNNING"


async def test_bad_parameters_name_their_field(base: str) -> None:
    await refused(curl(f"{base}/v1/pipelines?state=nope"), 400, "INVALID_ARGUMENT", "state[0]")
    await refused(curl(f"{base}/v1/pipelines?paused=maybe"), 400, "INVALID_ARGUMENT", "paused")
    await refused(curl(f"{base}/v1/pipelines?pageSize=-1"), 400, "INVALID_ARGUMENT", "pageSize")
    await refused(curl(f"{base}/v1/pipelines?pageSize=5000"), 400, "INVALID_ARGUMENT", "page_size")
    await refused(curl(f"{base}/v1/pipelines?pageToken=zzz"), 400, "INVALID_ARGUMENT", "page_token")
    await refused(curl(f"{base}/v1/pipelines?color=red"), 400, "INVALID_ARGUMENT", "color")
    await refused(curl(f"{base}/v1/pipelines/abc/events"), 400, "INVALID_ARGUMENT", "pipeline_id")
    await refused(curl(f"{base}/v1/pipelines/424242/events"), 404, "PIPELINE_NOT_FOUND", "pipeline_id")


async def test_the_events_stream_shows_the_steps_then_ends(app: App, base: str) -> None:
    async with spool.AsyncClient(f"127.0.0.1:{app.port}") as client:
        p = await client.pipeline("watched", [step("a", "piped"), step("b", "piped", after=["a"])])
    assert CURL is not None
    follow = await asyncio.create_subprocess_exec(
        CURL, "-sS", "-N", f"{base}/v1/pipelines/{p.id}/events", stdout=asyncio.subprocess.PIPE
    )
    assert follow.stdout is not None
    first = await asyncio.wait_for(follow.stdout.readuntil(b"\r\n\r\n"), 30)
    assert b'"snapshot": true' in first
    await finish(app, "piped", {"n": 1})
    await finish(app, "piped", {"n": 2})
    rest, _ = await asyncio.wait_for(follow.communicate(), 30)  # curl exits: the server ended the stream
    events = [e for e in (first + rest).decode().split("\r\n\r\n") if e.strip() and not e.startswith(":")]
    data = [
        json.loads(line.removeprefix("data: ")) for e in events for line in e.split("\r\n") if line.startswith("data: ")
    ]
    finals = {s["name"]: s["job"]["state"] for d in data[:-1] for s in d["pipeline"].get("steps", [])}
    assert finals == {"a": "STATE_SUCCEEDED", "b": "STATE_SUCCEEDED"}
    assert data[-2]["pipeline"]["state"] == "STATE_SUCCEEDED"
    assert events[-1].startswith("event: end")
    assert follow.returncode == 0
