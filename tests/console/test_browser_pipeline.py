"""The Pipeline page in a real headless Chromium: a pipeline made through the API, its steps as a
tree with their states and jobs linked, the Job page linking back to its pipeline, Pause, Resume
and Cancel; a step name of HTML shown as text; a read key sees it with the buttons disabled."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.console.browser import Page
from tests.console.conftest import Keys
from tests.console.jobs import call

PIPELINES = "/spool.v1.PipelineService/"
HTML_STEP = '<img src=x onerror="window.__xss=8">'


def step(name: str, *parents: str) -> dict[str, Any]:
    payload = base64.b64encode(json.dumps({"step": name}).encode()).decode()
    return {"name": name, "dependsOn": list(parents), "job": {"queue": "etl", "payload": payload}}


async def pipeline(base: str, key: str) -> dict[str, Any]:
    steps = [step("extract"), step("transform", "extract"), step(HTML_STEP, "transform"), step("report", "extract")]
    answer = await call(base, key, "EnqueuePipeline", {"name": "nightly-export", "steps": steps}, PIPELINES)
    result: dict[str, Any] = answer["pipeline"]
    return result


async def state(base: str, key: str, pipeline_id: str) -> dict[str, Any]:
    answer = await call(base, key, "GetPipeline", {"pipelineId": pipeline_id}, PIPELINES)
    result: dict[str, Any] = answer["pipeline"]
    return result


async def test_a_pipelines_steps_paused_resumed_and_cancelled(page: Page, base: str, keys: Keys) -> None:
    made = await pipeline(base, keys.admin)
    first = made["steps"][0]["job"]["id"]

    await page.sign_in(keys.admin)
    await page.go(f"#/job/{first}")
    await page.click("a[href^='#/pipeline/']")
    await page.wait_text("#pipeline-state", "RUNNING")
    assert await page.script("return location.hash") == f"#/pipeline/{made['id']}"
    await page.wait_text("tr[data-step='extract'] .state-cell", "PENDING")
    assert "WAITING" in await page.text("tr[data-step='transform'] .state-cell")
    assert "depth-2" in await page.script("return document.querySelector('th.step-name.depth-2').className")

    # a worker does the first step: the page shows the next ones ready, without a click
    leased = await call(base, keys.admin, "Lease", {"queues": ["etl"], "workerId": "etl-1", "maxJobs": 1})
    (held,) = leased["jobs"]
    assert held["job"]["id"] == first
    await call(base, keys.admin, "Ack", {"jobId": first, "leaseToken": held["leaseToken"]})
    await page.wait_text("tr[data-step='extract'] .state-cell", "SUCCEEDED")
    await page.wait_text("tr[data-step='transform'] .state-cell", "PENDING")
    await page.shot("pipeline")

    await page.click("#pipeline-toggle")
    await page.wait_text("#pipeline-paused", "paused")
    assert (await state(base, keys.admin, made["id"])).get("paused") is True
    await page.wait_text("#pipeline-toggle", "Resume")
    await page.click("#pipeline-toggle")
    await page.wait_text("main .notice.info", "Resumed")
    assert not (await state(base, keys.admin, made["id"])).get("paused")

    # the step named in HTML is text, and its link leads to its job
    names = await page.script("return [...document.querySelectorAll('th.step-name')].map((e) => e.textContent)")
    assert any(HTML_STEP in n for n in names)
    assert await page.script("return document.querySelectorAll('main img, main script').length") == 0
    assert await page.script("return window.__xss === undefined") is True

    await page.script("window.confirm = () => true")
    await page.click("#pipeline-cancel")
    await page.wait_text("#pipeline-state", "CANCELLED")
    assert (await state(base, keys.admin, made["id"]))["state"] == "STATE_CANCELLED"
    assert not await page.enabled("#pipeline-cancel")
    await page.click("tr[data-step='report'] a")
    await page.wait_text("#job-status", "CANCELLED")

    # the Jobs page searches the pipeline's steps
    await page.go(f"#/pipeline/{made['id']}")
    await page.click("a[href^='#/jobs?pipeline=']")
    await page.wait_text("main", "4 jobs")
    assert await page.script("return document.getElementById('f-pipeline').value") == made["id"]
    assert await page.console_errors() == []


async def test_a_read_key_sees_a_pipeline_with_the_buttons_disabled(page: Page, base: str, keys: Keys) -> None:
    made = await pipeline(base, keys.admin)

    await page.sign_in(keys.read)
    await page.go(f"#/pipeline/{made['id']}")
    await page.wait_text("#pipeline-state", "RUNNING")
    assert not await page.enabled("#pipeline-toggle")
    assert not await page.enabled("#pipeline-cancel")


SCRIPT_NAME = "<script>window.__xss=9</script>"


async def test_the_pipelines_page_lists_filters_and_links(page: Page, base: str, keys: Keys) -> None:
    running = await pipeline(base, keys.admin)
    named = await call(base, keys.admin, "EnqueuePipeline", {"name": SCRIPT_NAME, "steps": [step("only")]}, PIPELINES)
    hostile = named["pipeline"]
    await call(base, keys.admin, "CancelPipeline", {"pipelineId": hostile["id"]}, PIPELINES)

    await page.sign_in(keys.read)
    await page.click("nav a[data-page='pipelines']")
    await page.wait_text("#pipelines-count", "2 pipelines")
    assert await page.script("return location.hash") == "#/pipelines"
    assert (
        await page.script("return document.querySelector(\"nav a[aria-current='page']\").dataset.page") == "pipelines"
    )
    names = await page.script("return [...document.querySelectorAll('td.pipeline-name')].map((e) => e.textContent)")
    assert names == [SCRIPT_NAME, "nightly-export"]  # newest first, the script's name as text
    assert await page.script("return document.querySelectorAll('main script, main img').length") == 0
    assert await page.script("return window.__xss === undefined") is True
    assert "0/4" in await page.text(f"tr[data-pipeline='{running['id']}']")
    await page.shot("pipelines")

    # the state filter goes into the URL, and a pasted URL shows the same search
    await page.script("document.getElementById('f-state').value = 'cancelled'")
    await page.click("form.filters button[type='submit']")
    await page.wait_text("#pipelines-count", "1 pipelines")
    assert await page.script("return location.hash") == "#/pipelines?state=cancelled"
    assert "CANCELLED" in await page.text(f"tr[data-pipeline='{hostile['id']}'] .state-cell")
    await page.go("#/pipelines?state=running")
    await page.wait_text("main tbody", "nightly-export")
    assert await page.script("return document.getElementById('f-state').value") == "running"

    # each row leads to its Pipeline page
    await page.click(f"tr[data-pipeline='{running['id']}'] td.pipeline-name a")
    await page.wait_text("#pipeline-state", "RUNNING")
    assert await page.script("return location.hash") == f"#/pipeline/{running['id']}"
    await page.go("#/pipelines?state=bogus")
    await page.wait_text("main .notice", "states[0]")
    assert await page.console_errors() == []
