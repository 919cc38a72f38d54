"""The `spool` command with pipelines: list a pipeline's steps, and the waiting ones."""

from __future__ import annotations

import spool
from spool import step
from tests.cli.conftest import Spool, cli

__all__ = ["cli"]


async def test_ls_by_pipeline_and_waiting_state(cli: Spool, client: spool.AsyncClient) -> None:
    p = await client.pipeline("export", [step("extract"), step("render", after=["extract"])])
    await client.enqueue("other", {})
    listed = (await cli("ls", "--pipeline", p.id, "-o", "json")).json()
    assert sorted(j["step_name"] for j in listed) == ["extract", "render"]
    waiting = (await cli("ls", "-s", "waiting", "-o", "json")).json()
    assert [(j["step_name"], j["status"]) for j in waiting] == [("render", "waiting")]
    table = await cli("ls", "-s", "waiting")
    assert table.code == 0 and "waiting" in table.out
